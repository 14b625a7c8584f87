"""Episodes per second: serial vs K Ray workers on this machine (builtin world, scripted driver).

  PYTHONPATH=. python benchmarks/bench_scale.py [--episodes 2] [--workers 2] [--seed 1000]

Runs ``edgepilot drive``'s library call, the same as

  edgepilot drive --driver scripted --episodes 2                  (serial)
  edgepilot drive --driver scripted --episodes 2 --workers 2      (local Ray, started and shut down)

over the four builtin scenarios at full length (fixed seeds), once more on a Ray started
beforehand ("warm": what a running cluster costs, worker processes still start per run),
checks that the per-episode results are the same, and writes
benchmarks/results/scale_drive.json with the host, its load average before and after (the
machine is shared: a busy neighbour shows there), and the derived cluster figure:
episodes x seconds per episode / workers.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from edgepilot.runtime.host import cpu_model  # noqa: E402
from edgepilot.runtime.outputs import write_text_atomic  # noqa: E402
from edgepilot.sim.agent.drive import DriveOptions, drive  # noqa: E402
from edgepilot.sim.scale import ScaleOptions, ray_session  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CLUSTER = {"seeds": 500, "scenarios": 4, "workers": (8, 32, 128)}  # the figure README quotes


def timed(opts: DriveOptions) -> tuple[dict, float]:
    t0 = time.perf_counter()
    report = drive(opts)
    return report, time.perf_counter() - t0


def row(report: dict, wall_s: float, episodes: int) -> dict:
    return {"wall_s": wall_s, "episodes": episodes, "episodes_per_s": episodes / wall_s,
            "ticks": sum(e["ticks"] for e in report["episodes"])}


def cluster(seconds_per_episode: float, efficiency: float) -> dict:
    """Hours for CLUSTER's episodes on W workers: ideal (every worker busy) and at the 2-worker
    efficiency measured here (serial time / (K x warm time))."""
    n = CLUSTER["seeds"] * CLUSTER["scenarios"]
    ideal = {str(w): n * seconds_per_episode / w / 3600 for w in CLUSTER["workers"]}
    return {"seeds": CLUSTER["seeds"], "scenarios": CLUSTER["scenarios"], "episodes": n,
            "seconds_per_episode": seconds_per_episode, "scaling_efficiency_measured": efficiency,
            "formula": "episodes x seconds_per_episode / workers (/ efficiency)",
            "hours_ideal": ideal, "hours_at_measured_efficiency": {w: h / efficiency for w, h in ideal.items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=2, help="episodes per scenario (4 scenarios)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--out", type=Path, default=RESULTS / "scale_drive.json")
    args = p.parse_args()

    base = DriveOptions(driver="scripted", episodes=args.episodes, seed=args.seed, progress=False)
    scaled = DriveOptions(driver="scripted", episodes=args.episodes, seed=args.seed, progress=False,
                          scale=ScaleOptions(workers=args.workers))
    n = len(base.scenarios) * args.episodes
    load_before = os.getloadavg()
    serial, serial_s = timed(base)
    cold, cold_s = timed(scaled)  # as the CLI: ray.init(num_cpus=K) ... ray.shutdown()
    t0 = time.perf_counter()
    with ray_session(ScaleOptions(workers=args.workers)):  # the CLI's local Ray, started once for the warm run
        ray_init_s = time.perf_counter() - t0
        warm, warm_s = timed(scaled)
    load_after = os.getloadavg()
    same = cold["episodes"] == serial["episodes"] == warm["episodes"]
    per_episode_s = serial_s / n
    efficiency = serial_s / warm_s / args.workers
    record = {
        "benchmark": "scale_drive",
        "command": f"edgepilot drive --driver scripted --episodes {args.episodes} --seed {args.seed} "
                   f"[--workers {args.workers}]",
        "sim": "builtin", "driver": "scripted", "scenarios": list(base.scenarios),
        "seeds": [args.seed, args.seed + args.episodes - 1], "episodes": n, "workers": args.workers,
        "serial": row(serial, serial_s, n),
        "ray_cold": {**row(cold, cold_s, n), "includes": "ray.init + worker start + episodes + ray.shutdown"},
        "ray_warm": {**row(warm, warm_s, n), "includes": "worker start + episodes (Ray already up)",
                     "ray_init_s": ray_init_s},
        "speedup_cold": serial_s / cold_s, "speedup_warm": serial_s / warm_s,
        "same_episode_results": same,
        "retries": cold["scale"]["retries"] + warm["scale"]["retries"],
        "cluster_estimate": cluster(per_episode_s, efficiency),
        "host": {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "cpu_affinity": sorted(os.sched_getaffinity(0)),
                 "loadavg_before": load_before, "loadavg_after": load_after},
        "versions": {"python": platform.python_version(), "ray": metadata.version("ray"),
                     "highway-env": metadata.version("highway-env")},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    write_text_atomic(args.out, json.dumps(record, indent=1) + "\n")
    print(f"{n} episodes: serial {serial_s:.1f} s ({n / serial_s:.2f}/s), {args.workers} Ray workers "
          f"{cold_s:.1f} s cold ({n / cold_s:.2f}/s), {warm_s:.1f} s warm ({n / warm_s:.2f}/s); "
          f"same results: {same} -> {args.out}")


if __name__ == "__main__":
    main()
