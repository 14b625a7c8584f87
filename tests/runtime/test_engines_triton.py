"""The triton backend against an in-process KServe v2 gRPC stand-in (tests/runtime/kserve_stub.py, not Triton).

The repository is what ``edgepilot export triton`` writes; the stand-in runs
its model.onnx with ONNX Runtime, so the triton backend's outputs, and what
the decoders make of them, must equal the local ort backend's.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tritonclient.grpc")
pytest.importorskip("onnxruntime")

from edgepilot.cli import main  # noqa: E402
from edgepilot.export import tiny  # noqa: E402
from edgepilot.export.triton import TritonModel, write_triton_model  # noqa: E402
from edgepilot.runtime.engines import choose_backend, describe_options, load_engine  # noqa: E402
from edgepilot.runtime.engines.ops_triton import TritonEngine, parse_url, served_name  # noqa: E402
from edgepilot.runtime.errors import EngineError  # noqa: E402
from edgepilot.runtime.frame import Detections, Frame, SegMap  # noqa: E402
from tests.runtime.kserve_stub import serve  # noqa: E402

SERVED = ("seg", "seg_logits", "centernet", "yolo")


@pytest.fixture(scope="module")
def repo(bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository with the tiny bundles, plus tiny-seg batched up to 8 as seg8."""
    root = tmp_path_factory.mktemp("triton") / "repo"
    for key in SERVED:
        write_triton_model(bundles[key], root, TritonModel(name=key))
    write_triton_model(bundles["seg"], root, TritonModel(max_batch=8, name="seg8"))
    return root


@pytest.fixture(scope="module")
def url(repo: Path) -> Iterator[str]:
    with serve(repo) as (address, _):
        yield address


def frames(n: int = 4, hw: tuple[int, int] = (120, 160)) -> list[np.ndarray]:
    """Camera-like BGR frames: noise with a bright square that moves."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        img = rng.integers(0, 255, (*hw, 3), dtype=np.uint8)
        img[20:60, 10 + 20 * i:50 + 20 * i] = 250
        out.append(img)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("key", SERVED)
def test_round_trip_matches_the_local_ort_backend(bundles: dict[str, Path], url: str, key: str) -> None:
    with load_engine(bundles[key], "triton", url=url, model=key) as remote, load_engine(bundles[key], "ort") as local:
        for seed in range(3):
            feeds = local.sample_inputs(seed)
            got, want = remote.infer(feeds), local.infer(feeds)
            assert set(got) == set(want)
            for name in want:
                assert got[name].shape == want[name].shape and got[name].dtype == want[name].dtype
                np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)
        p_remote, p_local = remote.make_processor(), local.make_processor()
        for i, image in enumerate(frames()):
            a, b = p_remote(Frame.captured(i, image)), p_local(Frame.captured(i, image))
            assert type(a) is type(b)
            if isinstance(a, SegMap):
                assert isinstance(b, SegMap) and np.array_equal(a.class_ids, b.class_ids)
            else:
                assert isinstance(a, Detections) and isinstance(b, Detections) and len(b) > 0
                assert np.array_equal(a.class_ids, b.class_ids)
                np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
                np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)


def test_a_batched_model_serves_single_frames(bundles: dict[str, Path], url: str) -> None:
    with load_engine(bundles["seg"], "triton", url=url, model="seg8") as remote, \
            load_engine(bundles["seg"], "ort") as local:
        feeds = local.sample_inputs(7)
        assert np.array_equal(remote.infer(feeds)["class_ids"], local.infer(feeds)["class_ids"])


def test_the_repositorys_version_folder_is_a_bundle_that_names_its_model(repo: Path, url: str) -> None:
    with load_engine(repo / "seg8" / "1", "triton", url=url) as engine:
        info = engine.describe()
    assert (info["backend"], info["model"], info["version"], info["versions"]) == ("triton", "seg8", "1", ["1"])
    assert info["platform"] == "onnxruntime_onnx" and info["served_precision"] == "fp32" and info["url"] == url


def test_server_down_says_the_url_and_what_to_do(bundles: dict[str, Path]) -> None:
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(EngineError, match=f"cannot reach a Triton server at {address} .*start one on the "
                                          "repository .*--engine-opt url=HOST:PORT") as info:
        load_engine(bundles["seg"], "triton", url=address, timeout_s=5)
    assert "\n" not in str(info.value)


def test_a_model_the_server_lacks_is_named_with_what_it_serves(bundles: dict[str, Path], url: str) -> None:
    with pytest.raises(EngineError, match="has no ready model 'tiny-seg' \\(it serves centernet, seg, seg8, "
                                          "seg_logits, yolo\\): pass --engine-opt model=NAME") as info:
        load_engine(bundles["seg"], "triton", url=url)  # exported under --name seg, not the bundle's name
    assert info.value.exit_code == 2
    with pytest.raises(EngineError, match="has no ready model 'seg' version 3"):
        load_engine(bundles["seg"], "triton", url=url, model="seg", version=3)


def test_a_shape_mismatch_is_refused_at_load(tmp_path: Path, url: str) -> None:
    small = tiny.segmentation_bundle(tmp_path / "small", hw=(64, 128))
    with pytest.raises(EngineError, match=r"input 'image': model 'seg' on the Triton server at .* takes "
                                          r"\[1, 3, 128, 256\] FP32, the bundle gives \[1, 3, 64, 128\] FP32") as info:
        load_engine(small, "triton", url=url, model="seg")
    assert info.value.exit_code == 2
    with pytest.raises(EngineError, match="has no output 'class_ids' .*its outputs: \\['logits'\\]"):
        load_engine(tiny.segmentation_bundle(tmp_path / "ids"), "triton", url=url, model="seg_logits")


def test_the_served_precision_must_be_the_one_asked_for(bundles: dict[str, Path], url: str) -> None:
    with pytest.raises(EngineError, match="serves the fp32 graph .*not fp16: run with --precision fp32"):
        load_engine(bundles["seg"], "triton", "fp16", url=url, model="seg")


def test_a_slow_server_is_a_timeout_error(repo: Path, bundles: dict[str, Path]) -> None:
    with serve(repo, delay_s=0.5) as (address, _):
        engine = load_engine(bundles["seg"], "triton", url=address, model="seg", timeout_s=0.1)
        with engine, pytest.raises(EngineError, match="no answer within timeout_s=0.1 s"):
            engine.infer(engine.sample_inputs())


def test_wrong_feeds_are_refused_before_the_wire(bundles: dict[str, Path], repo: Path) -> None:
    with serve(repo) as (address, stub), load_engine(bundles["seg"], "triton", url=address, model="seg") as engine:
        with pytest.raises(EngineError, match=r"input 'image' expects shape \[1, 3, 128, 256\]"):
            engine.infer({"image": np.zeros((1, 3, 64, 64), np.float32)})
        assert stub.infer_calls == 0


@pytest.mark.parametrize("options,match", [
    ({"url": "nowhere"}, "url='nowhere' for the triton backend: expected HOST:PORT"),
    ({"url": "http://localhost:8000"}, "this backend speaks gRPC"),
    ({"timeout_s": 0}, "engine option timeout_s=0 for the triton backend: expected float 0.01..3600"),
    ({"version": 0}, "engine option version=0"),
    ({"threads": 2}, "unknown engine option 'threads' for the triton backend"),
])
def test_bad_options_are_one_line_exit_2(bundles: dict[str, Path], options: dict[str, object], match: str) -> None:
    with pytest.raises(EngineError, match=match) as info:
        load_engine(bundles["seg"], "triton", **options)
    assert info.value.exit_code == 2


def test_auto_never_picks_triton(bundles: dict[str, Path]) -> None:
    for precision in ("fp32", "fp16", "int8"):
        assert "triton" not in [name for name, _ in choose_backend(precision, "cpu")]
        assert "triton" not in [name for name, _ in choose_backend(precision, "cuda")]
    with pytest.raises(EngineError, match="no backend auto can choose takes every engine option given \\(url\\)"):
        load_engine(bundles["seg"], "auto", url="localhost:8001")


def test_options_and_names() -> None:
    keys = [line.split(":")[0] for line in describe_options("triton")]
    assert keys == ["url", "model", "version", "timeout_s"]
    assert TritonEngine.devices == ("cpu",)
    assert parse_url("grpc://10.0.0.2:8001") == "10.0.0.2:8001" and parse_url("[::1]:8001") == "[::1]:8001"


def test_served_name_of_a_plain_bundle_is_its_name(bundles: dict[str, Path]) -> None:
    from edgepilot.runtime.bundle import load_bundle

    assert served_name(load_bundle(bundles["seg"])) == ("tiny-seg", None)


def test_edgepilot_run_against_the_stand_in_writes_what_ort_writes(bundles: dict[str, Path], url: str,
                                                                    clip: Path, tmp_path: Path) -> None:
    records = {}
    for backend, extra in (("triton", ["--engine-opt", f"url={url}", "--engine-opt", "model=yolo"]), ("ort", [])):
        jsonl, report = tmp_path / f"{backend}.jsonl", tmp_path / f"{backend}.json"
        assert main(["run", str(clip), "--model", str(bundles["yolo"]), "--backend", backend, *extra,
                     "--max-frames", "6", "--jsonl", str(jsonl), "--report", str(report), "--no-progress"]) == 0
        assert json.loads(report.read_text())["engine"]["backend"] == backend
        records[backend] = [json.loads(line) for line in jsonl.read_text().splitlines()]
    keep = ("frame_id", "source_pos_s", "detections")  # the rest are timings
    decoded = [[{k: r[k] for k in keep} for r in records[b]] for b in ("triton", "ort")]
    assert len(decoded[0]) == 6 and decoded[0] == decoded[1]
    assert sum(len(r["detections"]) for r in decoded[0]) > 0  # boxes were compared, not only empty lists


def test_edgepilot_drive_against_the_stand_in_drives_as_ort(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``drive`` has no --engine-opt: the url comes from $EDGEPILOT_TRITON_URL, the policy by its own name."""
    pytest.importorskip("highway_env", reason="the [sim] extra (highway-env) is not installed")
    policy = Path(__file__).resolve().parents[2] / "models" / "policy"
    if not (policy / "meta.json").is_file():
        pytest.skip("the shipped models/policy bundle is not in this checkout")
    write_triton_model(policy, tmp_path / "repo")
    args = ["drive", "--privileged", "--scenario", "merge", "--episodes", "1", "--max-steps", "10", "--no-progress"]
    scores = {}
    with serve(tmp_path / "repo") as (address, stub):
        monkeypatch.setenv("EDGEPILOT_TRITON_URL", address)
        for backend in ("triton", "ort"):
            report = tmp_path / f"{backend}.json"
            assert main([*args, "--backend", backend, "--report", str(report)]) == 0
            scores[backend] = json.loads(report.read_text())["scores"]["overall"]
        assert stub.infer_calls == 10  # one policy call per tick, all over the wire
    assert scores["triton"]["distance_m"] > 0
    assert scores["triton"].pop("ended") == scores["ort"].pop("ended")
    assert scores["triton"] == pytest.approx(scores["ort"], rel=1e-6)
