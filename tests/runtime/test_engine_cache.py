"""Engine fingerprints and the engine cache, with fake TensorRT/GPU values and a fake builder."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from edgepilot.runtime.build.cache import (
    Fingerprint,
    cache_paths,
    read_sidecar,
    resolve_engine,
    sidecar_of,
)
from edgepilot.runtime.bundle import Bundle, load_bundle
from edgepilot.runtime.errors import EngineError


class FakeBuilder:
    """Counts calls and returns distinct fake engine bytes each time."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> bytes:
        self.calls += 1
        return f"engine-{self.calls}".encode()


@pytest.fixture()
def bundle(bundles: dict[str, Path], tmp_path: Path) -> Bundle:
    """A private copy of the tiny seg bundle, so cache files do not leak between tests."""
    return load_bundle(shutil.copytree(bundles["seg"], tmp_path / "seg"))


def fp(bundle: Bundle, **change: object) -> Fingerprint:
    base = dict(onnx_sha256=bundle.onnx_sha256(), tensorrt_version="10.3.0", gpu_name="Fake GPU A",
                compute_capability="8.7", precision="fp16", input_shapes={"image": (1, 3, 128, 256)},
                calibration_sha256=None)
    base.update(change)
    return Fingerprint.make(**base)  # type: ignore[arg-type]


def test_key_is_stable_and_order_independent(bundle: Bundle) -> None:
    a = Fingerprint.make("h", "10.0", "g", "8.6", "fp32", {"a": (1, 2), "b": (3,)})
    b = Fingerprint.make("h", "10.0", "g", "8.6", "fp32", {"b": (3,), "a": (1, 2)})
    assert a == b and a.key() == b.key() and len(a.key()) == 16
    assert Fingerprint.from_json(json.loads(json.dumps(a.to_json()))) == a
    assert a.key() != Fingerprint.make("h", "10.0", "g", "8.6", "fp16", {"a": (1, 2), "b": (3,)}).key()


def test_match_loads_without_rebuild(bundle: Bundle) -> None:
    build = FakeBuilder()
    first = resolve_engine(bundle, fp(bundle), build)
    assert first.built and build.calls == 1
    engine, sidecar = cache_paths(bundle, fp(bundle))
    assert first.path == engine and engine.read_bytes() == b"engine-1"
    assert read_sidecar(sidecar) == fp(bundle)
    again = resolve_engine(bundle, fp(bundle), build, rebuild=False)
    assert not again.built and build.calls == 1 and again.path == engine


def test_changed_onnx_rebuilds(bundle: Bundle) -> None:
    build = FakeBuilder()
    old = resolve_engine(bundle, fp(bundle), build)
    with open(bundle.file(), "ab") as f:
        f.write(b"\0")  # any byte change makes a different graph hash
    new = resolve_engine(bundle, fp(bundle), build)
    assert new.built and build.calls == 2 and new.path != old.path
    assert new.path.read_bytes() == b"engine-2"


@pytest.mark.parametrize("field,value", [
    ("gpu_name", "Fake GPU B"), ("tensorrt_version", "11.0.0"), ("precision", "int8"),
    ("input_shapes", {"image": (1, 3, 256, 512)}), ("calibration_sha256", "c" * 64),
    ("compute_capability", "9.0"),
])
def test_changed_environment_is_refused_with_field_named(bundle: Bundle, field: str, value: object) -> None:
    build = FakeBuilder()
    resolve_engine(bundle, fp(bundle, precision="int8" if field == "precision" else "fp16"), build)
    current = fp(bundle, **{field: value}) if field != "precision" else fp(bundle, precision="fp16")
    with pytest.raises(EngineError) as err:
        resolve_engine(bundle, current, build, rebuild=False)
    assert err.value.exit_code == 2 and build.calls == 1
    if field == "precision":
        # other-precision engines are not candidates: the message says nothing matches
        assert "no cached engine" in str(err.value)
    else:
        assert field in str(err.value) and "--engine-opt rebuild=false" in str(err.value)
    rebuilt = resolve_engine(bundle, current, build)
    assert rebuilt.built and build.calls == 2


def test_refusal_lists_every_differing_field(bundle: Bundle) -> None:
    resolve_engine(bundle, fp(bundle), FakeBuilder())
    current = fp(bundle, gpu_name="Orin", tensorrt_version="11.1")
    with pytest.raises(EngineError, match=r"gpu_name: engine has 'Fake GPU A', now 'Orin'.*tensorrt_version"):
        resolve_engine(bundle, current, FakeBuilder(), rebuild=False)
    assert current.diff(fp(bundle)).keys() == {"gpu_name", "tensorrt_version"}


@pytest.mark.parametrize("content", ["{not json", "[]", '{"onnx_sha256": "x"}', ""])
def test_corrupted_sidecar_rebuilds_or_refuses(bundle: Bundle, content: str) -> None:
    build = FakeBuilder()
    resolve_engine(bundle, fp(bundle), build)
    engine, sidecar = cache_paths(bundle, fp(bundle))
    sidecar.write_text(content)
    assert read_sidecar(sidecar) is None
    with pytest.raises(EngineError):
        resolve_engine(bundle, fp(bundle), build, rebuild=False)
    again = resolve_engine(bundle, fp(bundle), build)
    assert again.built and build.calls == 2 and read_sidecar(sidecar) == fp(bundle)


def test_explicit_engine_needs_matching_sidecar(bundle: Bundle, tmp_path: Path) -> None:
    build = FakeBuilder()
    cached = resolve_engine(bundle, fp(bundle), build).path
    explicit = tmp_path / "given.engine"
    shutil.copy(cached, explicit)
    with pytest.raises(EngineError, match="no readable fingerprint sidecar"):
        resolve_engine(bundle, fp(bundle), build, engine_path=explicit)
    shutil.copy(sidecar_of(cached), sidecar_of(explicit))
    ok = resolve_engine(bundle, fp(bundle), build, engine_path=explicit)
    assert ok.path == explicit and not ok.built
    with pytest.raises(EngineError, match="gpu_name"):
        resolve_engine(bundle, fp(bundle, gpu_name="Other"), build, engine_path=explicit)
    assert build.calls == 1


def test_empty_build_output_is_an_error(bundle: Bundle) -> None:
    with pytest.raises(EngineError, match="no data"):
        resolve_engine(bundle, fp(bundle), lambda: b"")
    assert not cache_paths(bundle, fp(bundle))[0].exists()


def _flags_in(message: str) -> set[str]:
    return set(re.findall(r"(--[a-z][a-z-]*)", message))


def test_cache_errors_name_only_real_options(bundle: Bundle, tmp_path: Path) -> None:
    """Regression: the messages used to name --no-rebuild and --engine, which no command has."""
    from edgepilot.cli import build_parser

    run_parser = build_parser()._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    real = {s for a in run_parser._actions for s in a.option_strings}
    build = FakeBuilder()
    messages = []
    with pytest.raises(EngineError) as refused:
        resolve_engine(bundle, fp(bundle), build, rebuild=False)
    messages.append(str(refused.value))
    cached = resolve_engine(bundle, fp(bundle), build).path
    explicit = tmp_path / "given.engine"
    shutil.copy(cached, explicit)
    with pytest.raises(EngineError) as no_sidecar:
        resolve_engine(bundle, fp(bundle), build, engine_path=explicit)
    messages.append(str(no_sidecar.value))
    shutil.copy(sidecar_of(cached), sidecar_of(explicit))
    with pytest.raises(EngineError) as stale:
        resolve_engine(bundle, fp(bundle, gpu_name="Other"), build, engine_path=explicit)
    messages.append(str(stale.value))
    assert "--engine-opt rebuild=false" in messages[0]
    assert all("--engine-opt engine=PATH" in m for m in messages[1:])
    for m in messages:
        assert _flags_in(m) <= real, f"{m!r} names options that do not exist"
