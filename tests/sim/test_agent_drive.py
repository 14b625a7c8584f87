"""The driving policy end to end: a few training steps, export with parity, closed-loop drives, the CLI."""

from __future__ import annotations

import json
import math
import shutil

import cv2
import pytest

from edgepilot.cli import main
from edgepilot.sim.agent.drive import DriveOptions, drive, score_table, write_report
from edgepilot.sim.types import CameraConfig
from tests.sim.agent_fixtures import TinyPolicy, tiny_config, tiny_policy_bundle  # noqa: F401

CAMERA = CameraConfig(width=256, height=128)
STEPS = 30
ENDED = {"route_complete", "collision", "off_road", "timeout"}


def options(policy: TinyPolicy, **overrides: object) -> DriveOptions:
    """One short highway episode at 256x128, no progress bar, ``overrides`` applied."""
    base: dict[str, object] = {"scenarios": ("highway",), "episodes": 1, "policy": str(policy.bundle),
                               "privileged": True, "max_steps": STEPS, "progress": False, "camera": CAMERA}
    base.update(overrides)
    return DriveOptions(**base)  # type: ignore[arg-type]


def assert_episodes(episodes: list[dict], n: int = 1) -> None:
    """``n`` episodes, each ran ``STEPS`` ticks or ended early for a reason, scores in [0, 1]."""
    assert len(episodes) == n
    for ep in episodes:
        assert ep["ended"] in ENDED
        assert ep["ticks"] == STEPS if ep["ended"] == "timeout" else 1 <= ep["ticks"] <= STEPS
        assert 0.0 <= ep["driving_score"] <= 1.0
        assert 0.0 <= ep["route_completion"] <= 1.0


def test_a_few_training_steps_write_every_output(tiny_policy_bundle):  # noqa: F811
    """train_policy (1 DAgger round, 64 PPO steps) writes best/last checkpoints, history, curves and SB3's log."""
    run, summary = tiny_policy_bundle.run, tiny_policy_bundle.summary
    for name in ("best.pt", "last.pt", "history.json", "curves.png", "progress.csv", "config.json"):
        assert (run / name).is_file() and (run / name).stat().st_size > 0, name
    assert summary["timesteps"] >= 64
    assert summary["best"] == str(run / "best.pt")
    history = json.loads((run / "history.json").read_text())
    assert [h["phase"] for h in history][0] == "bc"
    assert any(h["phase"] == "ppo" and h["timesteps"] >= 64 for h in history)
    assert 0.0 <= summary["validation"]["driving_score"] <= 1.0


def test_export_writes_a_policy_bundle_with_ort_parity(tiny_policy_bundle):  # noqa: F811
    """export_policy: task policy, inputs view/vector, and ORT agreeing with PyTorch within 1e-4."""
    meta = json.loads((tiny_policy_bundle.bundle / "meta.json").read_text())
    assert meta["task"] == "policy"
    assert [i["name"] for i in meta["inputs"]] == ["view", "vector"]
    assert [o["name"] for o in meta["outputs"]] == ["action"]
    ort = meta["parity"]["backends"]["ort"]
    assert ort["ran"] and ort["passed"] and ort["observations"] == 20
    assert ort["max_abs_error"] <= 1e-4
    assert meta["parity"]["fp32"] == ort
    assert (tiny_policy_bundle.bundle / "model.onnx").is_file()
    # the observation it was trained on travels with it: a driver stacks the same frames
    from edgepilot.runtime.bundle import load_bundle
    from edgepilot.sim.agent.policy import observation_config

    assert meta["observation"]["frame_step"] == 3
    assert observation_config(load_bundle(tiny_policy_bundle.bundle)).frame_step == 3


def test_privileged_episode_is_scored_and_timed(tiny_policy_bundle, tmp_path):  # noqa: F811
    """A privileged drive: 30 ticks (or an early end), a driving score in [0, 1], per-stage latency, a report."""
    report = drive(options(tiny_policy_bundle))
    assert report["mode"] == "privileged" and report["sim"] == "builtin"
    assert_episodes(report["episodes"])
    ticks = report["episodes"][0]["ticks"]
    for stage in ("tick", "policy", "observation"):
        assert report["latency_ms"][stage]["n"] == ticks, stage
    assert not any(k.startswith("seg.") for k in report["latency_ms"])  # nothing perceived
    overall = report["scores"]["overall"]
    assert overall["episodes"] == 1 and 0.0 <= overall["driving_score"] <= 1.0
    assert "latency_aware" not in report
    assert "highway" in score_table(report) and "overall" in score_table(report)
    path = write_report(report, tmp_path / "drive.json")
    assert json.loads(path.read_text())["episodes"] == report["episodes"]


def test_perception_episode_drives_on_predicted_classes(tiny_policy_bundle, tmp_path):  # noqa: F811
    """Without --privileged the tiny segmentation bundle's predictions feed the policy, and its stages are timed."""
    from edgepilot.export import tiny

    seg = tiny.segmentation_bundle(tmp_path / "seg", hw=(CAMERA.height, CAMERA.width), width=8)
    report = drive(options(tiny_policy_bundle, privileged=False, perception=(str(seg),), precision="fp32",
                           backend="ort"))
    assert report["mode"] == "perception"
    assert report["perception_precision"] == "fp32"
    assert_episodes(report["episodes"])
    for stage in ("seg.infer", "seg.total", "tick", "policy"):
        assert report["latency_ms"][stage]["n"] >= 1, stage
    assert report["bundles"]["perception"][0]["task"] == "segmentation"


def test_latency_aware_drive_reports_both_scores(tiny_policy_bundle):  # noqa: F811
    """--latency-aware drives the same seeds again with the measured latency as actuation delay; both scored.
    x1000 makes every decision (>= 0.1 ms here) at least 100 ms late, so frames are skipped."""
    report = drive(options(tiny_policy_bundle, latency_aware=True, latency_scale=1000.0))
    delayed = report["latency_aware"]
    assert delayed["latency_scale"] == 1000.0
    assert_episodes(report["episodes"])
    assert_episodes(delayed["episodes"])
    assert delayed["episodes"][0]["seed"] == report["episodes"][0]["seed"]
    assert 0.0 <= delayed["scores"]["overall"]["driving_score"] <= 1.0
    assert delayed["skipped_frames"] == delayed["episodes"][0]["skipped_frames"] > 0
    assert report["episodes"][0]["skipped_frames"] == 0  # the plain run sees every frame
    assert math.isclose(delayed["driving_score_drop"], report["scores"]["overall"]["driving_score"]
                        - delayed["scores"]["overall"]["driving_score"])
    assert "+delay x1000" in score_table(report)


def test_drive_writes_the_video(tiny_policy_bundle, tmp_path):  # noqa: F811
    """--out: one video frame per tick, readable back by OpenCV."""
    out = tmp_path / "drive.avi"
    report = drive(options(tiny_policy_bundle, out=str(out), max_steps=10))
    frames = report["video"]["frames"]
    assert frames == report["episodes"][0]["ticks"] > 0
    cap = cv2.VideoCapture(str(out))
    try:
        n = 0
        while cap.read()[0]:
            n += 1
    finally:
        cap.release()
    assert n == frames


def test_training_resumes_from_last_checkpoint(tiny_policy_bundle, tmp_path):  # noqa: F811
    """train_policy with last.pt in OUT continues from its step count (and history) up to the larger timesteps."""
    from edgepilot.sim.agent.train import train_policy

    saved = tiny_policy_bundle.summary["timesteps"]
    out = tmp_path / "resumed"
    out.mkdir()
    shutil.copy(tiny_policy_bundle.run / "last.pt", out / "last.pt")
    before = json.loads((tiny_policy_bundle.run / "history.json").read_text())
    summary = train_policy(tiny_config(out, timesteps=saved + 32))
    assert summary["timesteps"] == saved + 32 > saved
    history = json.loads((out / "history.json").read_text())
    assert history[:len(before)] == before  # carried over, no fresh warm start
    assert sum(h["phase"] == "bc" for h in history) == sum(h["phase"] == "bc" for h in before)
    assert history[-1]["timesteps"] == saved + 32


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def test_drive_cli_refuses_a_missing_policy(capsys):
    """`drive --policy /nonexistent` exits 2 with one error line naming the path."""
    assert main(["drive", "--privileged", "--policy", "/nonexistent", "--no-progress"]) == 2
    assert "/nonexistent" in one_error_line(capsys)


def test_drive_cli_refuses_an_unknown_scenario(capsys):
    """`drive --scenario nowhere` exits 2 and names the builtin scenarios."""
    assert main(["drive", "--scenario", "nowhere", "--no-progress"]) == 2
    err = one_error_line(capsys)
    assert "nowhere" in err and "highway" in err


def test_export_cli_refuses_int8_for_a_policy(tiny_policy_bundle, tmp_path, capsys):  # noqa: F811
    """`export CKPT --task policy --int8` exits 2 before writing anything (a policy bundle is fp32)."""
    out = tmp_path / "policy"
    code = main(["export", str(tiny_policy_bundle.run / "best.pt"), "--task", "policy", "--int8", "--out", str(out)])
    assert code == 2
    assert "--int8" in one_error_line(capsys)
    assert not out.exists()


def test_several_ort_engines_in_one_tick_do_not_spin(tiny_policy_bundle, tmp_path):  # noqa: F811
    """Perception bundles + policy on ort: spinning off for each (their threads would fight over the
    cores between calls); the policy alone keeps onnxruntime's default; other backends get nothing."""
    from edgepilot.export import tiny
    from edgepilot.sim.agent.drive import build_agent, engine_options

    seg = tiny.segmentation_bundle(tmp_path / "seg", hw=(64, 128), width=8)
    alone = options(tiny_policy_bundle)
    both = options(tiny_policy_bundle, privileged=False, perception=(str(seg),), precision="fp32")
    assert engine_options(alone) == {} and engine_options(both) == {"spin": False}
    assert engine_options(options(tiny_policy_bundle, privileged=False, perception=(str(seg),),
                                  backend="openvino")) == {}
    assert build_agent(alone).policy.engine.describe()["spin"] is True
    agent = build_agent(both)
    assert agent.policy.engine.describe()["spin"] is False
    assert [m.engine.describe()["spin"] for m in agent.perception] == [False]


def test_the_overtaking_driver_drives_from_the_cli_and_says_so_in_the_report(tmp_path, capsys):
    """`drive --driver overtaking` runs the scripted driver with lane changes (no bundle needed) and
    its report names the mode and the driver; CARLA has no ground truth for it: one-line error."""
    report = tmp_path / "drive.json"
    code = main(["drive", "--driver", "overtaking", "--scenario", "highway", "--episodes", "1",
                 "--max-steps", str(STEPS), "--size", "128x256", "--report", str(report), "--no-progress"])
    assert code == 0
    data = json.loads(report.read_text())
    assert data["mode"] == "overtaking" and "lane changes" in data["agent"]["policy"]["driver"]
    assert_episodes(data["episodes"])
    capsys.readouterr()
    assert main(["drive", "--driver", "overtaking", "--sim", "carla", "--no-progress"]) == 2
    assert "--driver overtaking needs the builtin world" in one_error_line(capsys)


def test_the_emergency_brake_rides_along_and_is_reported(tiny_policy_bundle, tmp_path):  # noqa: F811
    """--emergency-brake: the guard runs every tick (timed as 'brake'), the report gives its settings
    and each episode the ticks it held the pedal; --no-emergency-brake drives the policy alone."""
    on, off = tmp_path / "on.json", tmp_path / "off.json"
    common = ["drive", "--policy", str(tiny_policy_bundle.bundle), "--privileged", "--scenario", "highway",
              "--episodes", "1", "--max-steps", str(STEPS), "--size", "128x256", "--no-progress"]
    assert main([*common, "--emergency-brake", "--report", str(on), "--out", str(tmp_path / "on.avi")]) == 0
    assert main([*common, "--no-emergency-brake", "--report", str(off)]) == 0
    data, plain = json.loads(on.read_text()), json.loads(off.read_text())
    assert data["agent"]["brake"]["trigger_mps2"] > 0 and plain["agent"]["brake"] is None
    episode = data["episodes"][0]
    assert 0 <= episode["brake_ticks"] <= episode["ticks"] and "brake_ticks" not in plain["episodes"][0]
    assert data["latency_ms"]["brake"]["n"] == episode["ticks"] and "brake" not in plain["latency_ms"]
    assert data["video"]["frames"] == episode["ticks"]
    assert data["agent"]["brake"]["assist_pedal"] == -0.3  # brake assist: on unless --no-brake-assist
    no_assist = tmp_path / "no_assist.json"
    assert main([*common, "--emergency-brake", "--no-brake-assist", "--report", str(no_assist)]) == 0
    assert json.loads(no_assist.read_text())["agent"]["brake"]["assist_pedal"] == -1.0
