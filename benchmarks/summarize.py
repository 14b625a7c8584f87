"""Print the README's result tables from the committed JSON in benchmarks/results/.

The README's numbers are this script's output, pasted between the markers
``<!-- results:NAME -->`` and ``<!-- /results:NAME -->``; ``tests/test_readme.py``
checks that they still match the JSON. Regenerate after re-running a benchmark:

    python benchmarks/summarize.py --write README.md
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _load(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def engines_table() -> str:
    d = _load("bench_cpu.json")
    lines = ["| backend | precision | input | p50 ms | p99 ms | max ms | FPS |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in d["rows"]:
        if r["status"] != "ok" or r["backend"] == "null":
            continue
        s = r["latency_ms"]
        lines.append(f"| {r['backend']} | {r['precision']} | {r['shape']} | {s['p50']:.2f} | {s['p99']:.2f} | "
                     f"{s['max']:.2f} | {r['fps']:.0f} |")
    cpu = d["system"]["device_classes"]["cpu"]
    threads = d["settings"].get("engine_options", {}).get("threads")
    lines.append("")
    lines.append(f"`make bench` → `benchmarks/results/bench_cpu.json` ({cpu}, {d['date'][:10]}, "
                 f"tiny untrained segmentation net, engine option threads = {threads} for ort and torch).")
    return "\n".join(lines)


def loop_table() -> str:
    d = _load("loop_cpu.json")
    lines = ["| loop target (CPU, ort) | measured | target | |", "| --- | --- | --- | --- |"]
    for t in d["targets"]:
        lines.append(f"| {t['name']} | {t['measured']:.3f} | {t['target']} | {'pass' if t['pass'] else 'FAIL'} |")
    for t in d.get("informational", []):
        lines.append(f"| {t['name']} (informational) | {t['measured']:.3f} | {t['target']} | "
                     f"{'pass' if t['pass'] else 'over'} |")
    lines.append("")
    lines.append(f"`python benchmarks/bench_loop.py` (also run by `make bench`) → `benchmarks/results/loop_cpu.json` "
                 f"({d['date'][:10]}; {d['setup']['bundle']}).")
    return "\n".join(lines)


def sim_table() -> str:
    d = _load("sim_builtin.json")
    return (f"Built-in world: **{d['steps_per_s']:.1f} rendered steps/s** at {d['height']}x{d['width']} "
            f"(RGB + labels + boxes, one core; target 100): `python benchmarks/bench_sim.py` → "
            "`benchmarks/results/sim_builtin.json`.")


def driver_table() -> str:
    d = _load("baseline_driver.json")
    lines = ["| scenario | driving score | route completion | collisions / km | off-road share |",
             "| --- | --- | --- | --- | --- |"]
    for name, sc in d["scenarios"].items():
        m = sc["mean"]
        lines.append(f"| {name} | {m['driving_score']:.3f} | {m['route_completion']:.3f} | "
                     f"{m['collisions_per_km']:.2f} | {m['off_road_share']:.3f} |")
    return "\n".join(lines)


TABLES = {"engines": engines_table, "loop": loop_table, "sim": sim_table, "driver": driver_table}


def render(name: str) -> str:
    return f"<!-- results:{name} -->\n{TABLES[name]()}\n<!-- /results:{name} -->"


def write(readme: Path) -> None:
    text = readme.read_text()
    for name in TABLES:
        pattern = re.compile(rf"<!-- results:{name} -->.*?<!-- /results:{name} -->", re.S)
        text = pattern.sub(lambda _m, n=name: render(n), text)
    readme.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, metavar="README", help="replace the marked tables in this file")
    args = parser.parse_args()
    if args.write:
        write(args.write)
    else:
        print("\n\n".join(render(n) for n in TABLES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
