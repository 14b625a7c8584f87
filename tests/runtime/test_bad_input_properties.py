"""Property-based bad input: random mutations of a valid meta.json and random CLI option values
either load and run, or fail with one clear error (exit 2); never another exception, never a hang."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgepilot import cli
from edgepilot.runtime.bundle import load_bundle
from edgepilot.runtime.engines import load_engine
from edgepilot.runtime.errors import EdgepilotError
from edgepilot.runtime.processor import dry_run

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)
SETTINGS = settings(max_examples=int(__import__("os").environ.get("EDGEPILOT_HYPOTHESIS_EXAMPLES", "60")), deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture],
                    derandomize=True)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:  # type: ignore[type-arg]
    """Every key/index path in a JSON tree (the places a mutation can hit)."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _mutate(meta: dict, path: tuple, kind: str, value: Any) -> dict:  # type: ignore[type-arg]
    meta = copy.deepcopy(meta)
    parent: Any = meta
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if kind == "delete":
        del parent[last]
    elif kind == "wrap":
        parent[last] = [parent[last]]
    else:
        parent[last] = value
    return meta


def _check_loads_or_refuses(folder: Path, meta: dict) -> None:  # type: ignore[type-arg]
    (folder / "meta.json").write_text(json.dumps(meta))
    try:
        bundle = load_bundle(folder)
        engine = load_engine(bundle, "null")
        if bundle.task != "policy":
            dry_run(engine.make_processor(), (48, 64))
    except EdgepilotError as exc:
        assert exc.exit_code == 2 and "\n" not in str(exc), str(exc)


@pytest.mark.parametrize("name", ["seg", "centernet", "yolo", "policy"])
def test_mutated_meta_loads_or_is_one_clear_error(bundles: dict[str, Path], tmp_path: Path, name: str) -> None:
    folder = Path(shutil.copytree(bundles[name], tmp_path / "b"))
    valid = json.loads((folder / "meta.json").read_text())
    paths = _paths(valid)

    @SETTINGS
    @given(path=st.sampled_from(paths), kind=st.sampled_from(["replace", "delete", "wrap"]), value=JSON)
    def check(path: tuple, kind: str, value: Any) -> None:  # type: ignore[type-arg]
        _check_loads_or_refuses(folder, _mutate(valid, path, kind, value))

    check()


OPTIONS = {
    "--max-frames": st.one_of(st.integers(-5, 5).map(str), st.sampled_from(["1e3", "x", "", "nan", "9" * 30])),
    "--shape": st.one_of(st.from_regex(r"\A-?[0-9]{1,6}x-?[0-9]{1,6}\Z"), st.text(max_size=6)),
    "--device": st.sampled_from(["cpu", "cuda", "cuda:7", "tpu", "", "CPU", "cuda:-1", "cuda:x"]),
    "--engine-opt": st.one_of(
        st.sampled_from(["delay_ms=1", "delay_ms=-1", "delay_ms=nan", "nan=maybe", "threads=2", "=", "x"]),
        st.builds(lambda k, v: f"{k}={v}", st.sampled_from(["delay_ms", "nan", "zz"]), st.text(max_size=5))),
    "--precision": st.sampled_from(["fp32", "fp16", "int8", "fp64", ""]),
}


def test_random_cli_values_run_or_give_one_error_line(bundles: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    @SETTINGS
    @given(option=st.sampled_from(sorted(OPTIONS)), data=st.data())
    def check(option: str, data: st.DataObject) -> None:
        value = data.draw(OPTIONS[option])
        argv = ["run", "synthetic:64x48@500:3", "--model", str(bundles["seg"]), "--backend", "null",
                "--no-progress", f"{option}={value}"]
        code = cli.main(argv)
        err = capsys.readouterr().err
        errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
        assert "Traceback" not in err
        if code == 0:
            assert errors == []
        else:
            assert code == 2 and len(errors) == 1, (argv, err)

    check()
