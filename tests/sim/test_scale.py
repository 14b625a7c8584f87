"""Episodes on Ray (sim.scale): the same results as serial, retries on worker death, CARLA failover.

The argument checks and the fresh-process test come first; the Ray tests then share one local
Ray with 2 CPUs (``local_ray``). Episodes are tiny (scripted driver, short max_steps).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from edgepilot.cli import main
from edgepilot.runtime.errors import EdgepilotError
from edgepilot.sim.agent.drive import DriveOptions, drive
from edgepilot.sim.datagen import DatagenConfig, generate
from edgepilot.sim.scale import CRASH_ENV, ScaleOptions, Server, load_servers, ray_session
from tests.sim.scale_helpers import FakeFleet
from tests.sim.sim_helpers import CAM

ray = pytest.importorskip("ray", reason="the [scale] extra (ray) is not installed")

ROOT = Path(__file__).resolve().parents[2]
K2 = ScaleOptions(workers=2)


@pytest.fixture(scope="module")
def local_ray():
    """run_jobs uses a Ray that is already up (and leaves it up): one start for the module."""
    with ray_session(K2):
        yield


def scripted(**overrides: object) -> DriveOptions:
    base: dict[str, object] = {"driver": "scripted", "scenarios": ("highway", "roundabout"), "episodes": 3,
                               "max_steps": 25, "progress": False}
    base.update(overrides)
    return DriveOptions(**base)  # type: ignore[arg-type]


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("text", "message"), [
    ("- {name: a, host: h, port: 2000}\n- {name: a, host: h, port: 2001}\n", "name a listed twice"),
    ("- {name: a, host: h, port: 2000}\n- {name: b, host: h, port: 2000}\n", "host:port h:2000 listed twice"),
    ("- {name: a, host: h}\n", "entry 1: missing port"),
    ("- {name: a, host: h, port: 70000}\n", "port 70000 is not a port number"),
    ("- {name: a, host: h, port: 2000, gpu: 0}\n", "unknown key(s) gpu"),
    ("servers: []\n", "give a non-empty list of servers"),
    ("- [a, b]\n", "entry 1 is not a mapping"),
    ("- {name: a, host: h, port: [\n", "not valid YAML"),
])
def test_bad_servers_files_are_one_clear_error(tmp_path, text, message):
    path = tmp_path / "servers.yaml"
    path.write_text(text)
    with pytest.raises(EdgepilotError, match="--servers .*servers.yaml") as info:
        load_servers(path)
    assert message in str(info.value) and info.value.exit_code == 2


def test_a_servers_file_parses_with_default_tm_ports(tmp_path):
    path = tmp_path / "servers.yaml"
    path.write_text("servers:\n  - {name: a, host: 10.0.0.5, port: 2000}\n  - {name: b, host: 10.0.0.6, port: 2002,"
                    " tm_port: 9000}\n")
    assert load_servers(path) == (Server("a", "10.0.0.5", 2000, 8000), Server("b", "10.0.0.6", 2002, 9000))


@pytest.mark.parametrize(("args", "message"), [
    (["drive", "--workers", "0"], "--workers: 0 is out of range"),
    (["drive", "--workers", "two"], "--workers: 'two' is not an integer"),
    (["drive", "--driver", "scripted", "--workers", "2", "--out", "x.mp4"], "the video is written by serial runs only"),
    (["drive", "--driver", "scripted", "--ray", "auto"], "--ray auto needs --workers 2 or more"),
    (["drive", "--sim", "carla", "--privileged", "--workers", "2"], "needs --servers FILE"),
    (["drive", "--driver", "scripted", "--servers", "SERVERS"], "use it with --sim carla"),
    (["drive", "--sim", "carla", "--privileged", "--servers", "SERVERS", "--workers", "3"],
     "--workers 3, but SERVERS lists 2 server(s)"),
    (["datagen", "--out", "OUT", "--workers", "2", "--sim", "carla"], "needs --servers FILE"),
    (["drive", "--sim", "carla", "--privileged", "--servers", "MISSING"], "cannot read it"),
])
def test_bad_scale_arguments_are_one_error_line(tmp_path, capsys, args, message):
    servers = tmp_path / "servers.yaml"
    servers.write_text("- {name: a, host: h, port: 2000}\n- {name: b, host: h, port: 2002}\n")
    subs = {"SERVERS": str(servers), "OUT": str(tmp_path / "ds"), "MISSING": str(tmp_path / "nope.yaml")}
    argv = [subs.get(a, a) for a in args] + ["--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert message.replace("SERVERS", str(servers)) in err, err
    assert not (tmp_path / "ds").exists()


PROBE = """
import os, sys
from edgepilot.cli import main

def children(pid):
    kids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            kids += [int(entry), *children(int(entry))]
    return kids

drive = ["drive", "--driver", "scripted", "--scenario", "merge", "--episodes", "2", "--max-steps", "5", "--no-progress"]
code = main([*drive, "--workers", "1"])
print("SERIAL", code, "ray" in sys.modules)
code = main([*drive, "--workers", "2", "--report", sys.argv[1]])
import ray
print("SCALED", code, ray.is_initialized(), children(os.getpid()))
"""


def test_workers_1_needs_no_ray_and_a_local_ray_is_shut_down_after(tmp_path):
    """In a fresh process: --workers 1 never imports ray; --workers 2 starts a local Ray, writes the
    report's scale section and leaves no Ray process (raylet, GCS, workers) nor Ray session files
    behind when it returns."""
    import os
    import subprocess
    import sys

    # the process's TMPDIR, where a local Ray's session files go and from where they go; short,
    # since Ray's socket paths below it must fit in 107 bytes (a long one is tested below)
    temp = Path(tempfile.mkdtemp(prefix="ep-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(temp)}
    env.pop(CRASH_ENV, None)
    report = tmp_path / "k2.json"
    p = subprocess.run([sys.executable, "-c", PROBE, str(report)], capture_output=True, text=True, env=env, cwd=ROOT,
                       timeout=180)
    assert "SERIAL 0 False" in p.stdout and "SCALED 0 False []" in p.stdout, p.stdout + p.stderr
    try:  # (Ray's own default would be TMPDIR/ray; onnxruntime keeps a one-line TMPDIR/.ses of its own)
        assert not [q.name for q in temp.iterdir() if "ray" in q.name], list(temp.iterdir())
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    scale = json.loads(report.read_text())["scale"]
    assert scale["workers"] == 2 and scale["ray"] == "local" and len(scale["placement"]) == 2


@pytest.mark.usefixtures("local_ray")
def test_drive_on_two_workers_scores_every_episode_as_the_serial_run():
    """K=2: the same per-episode results and scores, in seed order, and both workers used."""
    serial, scaled = drive(scripted()), drive(scripted(scale=K2))
    assert scaled["episodes"] == serial["episodes"]  # everything but latency: seeds, ticks, scores
    assert scaled["scores"] == serial["scores"]
    assert [(e["scenario"], e["seed"]) for e in scaled["episodes"]] == [
        (s, 1000 + k) for s in ("highway", "roundabout") for k in range(3)]
    scale = scaled["scale"]
    assert scale["workers"] == 2 and scale["retries"] == [] and scale["servers_down"] == []
    assert {p["worker"] for p in scale["placement"]} == {"w0", "w1"}
    assert "scale" not in serial


def test_a_datagen_worker_sends_its_frames_back_and_writes_nothing(tmp_path):
    """A worker on another machine sees no --out: it encodes its episode and returns the files."""
    from edgepilot.sim.datagen import DatagenWorker

    out = tmp_path / "not-here"  # no such folder where the worker runs
    worker = DatagenWorker(DatagenConfig(out=out, scenario="highway", frames=2, seed=3, height=64, width=128,
                                         frames_per_episode=2), None)
    try:
        part = worker.run(0)
    finally:
        worker.close()
    assert not out.exists() and part["frames"] == 2
    names = {im[key] for im in part["images"] for key in ("file_name", "label_file")}
    assert set(part["files"]) == names and len(names) == 4
    assert all(data[:8] == b"\x89PNG\r\n\x1a\n" for data in part["files"].values())


@pytest.mark.usefixtures("local_ray")
def test_datagen_on_two_workers_writes_the_serial_bytes(tmp_path):
    """K=2 through the CLI: every file (images, labels, annotations.json, manifest.json) byte-identical,
    the last episode cut to the frames asked for (7 frames, 2 per episode)."""
    cfg = DatagenConfig(out=tmp_path / "serial", scenario="highway", frames=7, seed=3, height=64, width=128,
                        frames_per_episode=2)
    generate(cfg, progress=False)
    assert main(["datagen", "--scenario", "highway", "--frames", "7", "--seed", "3", "--size", "64x128",
                 "--frames-per-episode", "2", "--out", str(tmp_path / "k2"), "--workers", "2", "--no-progress"]) == 0
    serial, scaled = files(tmp_path / "serial"), files(tmp_path / "k2")
    assert sorted(scaled) == sorted(serial) and len(serial) == 2 * 7 + 2
    assert all(scaled[name] == serial[name] for name in serial), [n for n in serial if scaled[n] != serial[n]]
    assert [e["frames"] for e in json.loads(serial["manifest.json"])["episodes"]] == [2, 2, 2, 1]


@pytest.mark.usefixtures("local_ray")
def test_a_killed_worker_has_its_episode_retried_on_another(monkeypatch):
    """The process running highway seed 1001 exits on the first attempt: retried once elsewhere,
    listed in the report, and still exactly one result per episode with the serial scores."""
    monkeypatch.setenv(CRASH_ENV, "scenario highway seed 1001")
    opts = {"scenarios": ("highway",), "episodes": 4}
    report = drive(scripted(**opts, scale=K2))
    assert report["episodes"] == drive(scripted(**opts))["episodes"]
    (retry,) = report["scale"]["retries"]
    assert retry["seed"] == 1001 and retry["attempt"] == 1 and "worker process died" in retry["error"]
    placed = {p["seed"]: p for p in report["scale"]["placement"]}
    assert sorted(placed) == [1000, 1001, 1002, 1003]
    assert placed[1001]["attempts"] == 2 and placed[1001]["worker"] != retry["worker"]
    assert all(placed[s]["attempts"] == 1 for s in (1000, 1002, 1003))


@pytest.mark.usefixtures("local_ray")
def test_retries_are_bounded(monkeypatch):
    """--retries 0: the first death is the run's error, naming the episode."""
    monkeypatch.setenv(CRASH_ENV, "scenario highway seed 1000")
    with pytest.raises(EdgepilotError, match=r"scenario highway seed 1000 failed 1 times \(--retries 0\)"):
        drive(scripted(scenarios=("highway",), episodes=1, scale=ScaleOptions(workers=2, retries=0)))


@pytest.mark.usefixtures("local_ray")
def test_a_carla_server_that_stops_answering_is_reported_and_its_episodes_move():
    """Server b hangs after 6 ticks (mid-episode): reported by name, every episode driven by a, none lost or doubled."""
    servers = (Server("a", "127.0.0.1", 2000, 8000), Server("b", "127.0.0.1", 2002, 8002))
    fleet = FakeFleet(silent_ports=frozenset({2002}))
    opts = DriveOptions(sim="carla", scenarios=("town01",), episodes=3, policy=str(ROOT / "models" / "policy"),
                        privileged=True, max_steps=8, camera=CAM, progress=False,
                        sim_options={"carla_module": fleet, "n_vehicles": 3, "warmup_ticks": 2,
                                     "sensor_timeout_s": 0.5, "tick_timeout_s": 0.2},
                        scale=ScaleOptions(workers=2, servers=servers))
    report = drive(opts)
    assert [(e["seed"], e["ticks"]) for e in report["episodes"]] == [(1000, 8), (1001, 8), (1002, 8)]
    (down,) = report["scale"]["servers_down"]
    assert down["name"] == "b" and down["port"] == 2002 and "127.0.0.1:2002" in down["error"]
    assert [r["worker"] for r in report["scale"]["retries"]] == ["b"]
    assert {p["worker"] for p in report["scale"]["placement"]} == {"a"}


def test_a_local_rays_session_folder_fits_its_socket_paths(monkeypatch, tmp_path):
    """Under a long TMPDIR (pytest's own tmp_path is one) the folder goes to /tmp instead."""
    from edgepilot.sim import scale

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / ("x" * 60)))
    (tmp_path / ("x" * 60)).mkdir()
    folder = scale.ray_temp_dir()
    try:
        assert folder.startswith("/tmp/edgepilot-ray-") and len(folder) + 64 <= 107
    finally:
        os.rmdir(folder)
    short = tempfile.mkdtemp(prefix="ep-", dir="/tmp")  # a short TMPDIR is used as it is
    monkeypatch.setattr(tempfile, "tempdir", short)
    try:
        assert Path(scale.ray_temp_dir()).parent == Path(short)
    finally:
        shutil.rmtree(short)
