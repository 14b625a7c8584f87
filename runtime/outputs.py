"""Output files: checked before any work starts, written whole.

:func:`check_outputs` is called by every command before it builds an engine
or opens a source, so a bad ``--report`` path fails in a second, not after
the whole run with the report lost. :func:`write_text_atomic` writes a
report, baseline or JSON result to a temporary file beside the target and
renames it over the target, so an interrupted write leaves the old file or
the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from edgepilot.runtime.errors import SinkError


def _check_one(option: str, path: Path, *, folder: bool) -> None:
    if folder:
        if path.exists() and not path.is_dir():
            raise SinkError(f"{option} {path}: is a file, not a folder; give a folder")
        parent = path if path.is_dir() else path.parent
    else:
        if path.is_dir():
            raise SinkError(f"{option} {path}: is a folder; give a file name")
        parent = path.parent
    if not parent.is_dir():
        what = "its parent folder" if parent != path else "the folder"
        raise SinkError(f"{option} {path}: {what} {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise SinkError(f"{option} {path}: not writable here; choose another path or fix the permissions")


def check_outputs(outputs: Mapping[str, str | Path | None], *, inputs: Mapping[str, str | Path | None] | None = None,
                  folders: Mapping[str, str | Path | None] | None = None) -> None:
    """Refuse unusable output paths, naming the option (SinkError, exit 2).

    ``outputs`` and ``folders`` map an option name (``"--report"``) to its path
    (None: not asked for). Each file's folder must exist and be writable, a
    file path must not be a folder, and no two outputs, nor an output and one
    of ``inputs`` (the source video, the baseline being gated), may be the
    same file.
    """
    seen: dict[Path, str] = {}
    for name, value in (inputs or {}).items():
        if value is not None and Path(value).exists():
            seen[Path(value).resolve()] = name
    for table, is_folder in ((outputs, False), (folders or {}, True)):
        for option, value in table.items():
            if value is None:
                continue
            path = Path(value)
            _check_one(option, path, folder=is_folder)
            real = path.resolve()
            if real in seen:
                raise SinkError(f"{option} {path}: is also {seen[real]}; give each output its own file")
            seen[real] = option


def _mode(path: Path) -> int:
    """The target's permissions if it exists, else what a plain open() would give (0o666 less umask)."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and a rename; returns the path."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, _mode(path))
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
