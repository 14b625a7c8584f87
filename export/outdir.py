"""The folder an export writes a bundle into: refused, or cleared of what an export wrote, before any work."""

from __future__ import annotations

from pathlib import Path

from edgepilot.runtime.bundle import FILES
from edgepilot.runtime.errors import EdgepilotError
from edgepilot.runtime.outputs import check_outputs

# what an export writes besides FILES (the FP16 sidecar); --force removes only these
WRITTEN = (*(v for k, v in FILES.items() if k != "engines"), "model.fp16.json")


def prepare_out(out: Path, force: bool) -> None:
    """Refuse a file, an unwritable or a non-empty folder without ``force`` (exit 2); with it,
    delete the files an export writes there. Creates the folder (and missing parents, as datagen)."""
    if out.exists() and not out.is_dir():
        raise EdgepilotError(f"--out {out} is a file, not a folder; give a folder", exit_code=2)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgepilotError(f"--out {out}: cannot create its parent folder ({exc.strerror or exc})",
                             exit_code=2) from exc
    check_outputs({}, folders={"--out": out})
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise EdgepilotError(f"--out {out} is not empty: pass --force to overwrite it", exit_code=2)
        for name in WRITTEN:
            (out / name).unlink(missing_ok=True)
    out.mkdir(exist_ok=True)
