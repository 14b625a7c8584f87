"""README numbers come from committed JSON: every marked table equals what benchmarks/summarize.py renders."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _summarize():
    spec = importlib.util.spec_from_file_location("summarize", ROOT / "benchmarks" / "summarize.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_tables_match_the_committed_json() -> None:
    mod = _summarize()
    readme = (ROOT / "README.md").read_text()
    for name in mod.TABLES:
        assert mod.render(name) in readme, f"README table {name!r} is stale: run python benchmarks/summarize.py --write README.md"


def test_readme_shows_the_setup_commands_first() -> None:
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("##", 1)[0]
    assert re.search(r"^make demo", quick, re.M) and re.search(r"^make test", quick, re.M)
