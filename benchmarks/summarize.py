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


def _load(name: str, folder: Path = RESULTS) -> dict:
    return json.loads((folder / name).read_text())


def engines_table() -> str:
    d = _load("bench_cpu.json")
    lines = ["| backend | precision | input | p50 ms | p99 ms | max ms | FPS |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in d["rows"]:
        if r["status"] != "ok" or r["backend"] == "null":
            continue
        s = r["latency_ms"]
        ip = (r.get("engine") or {}).get("inference_precision")  # openvino: the arithmetic fp16 ran in
        prec = f"{r['precision']} ({ip})" if ip and ip != "f32" else r["precision"]
        lines.append(f"| {r['backend']} | {prec} | {r['shape']} | {s['p50']:.2f} | {s['p99']:.2f} | "
                     f"{s['max']:.2f} | {r['fps']:.0f} |")
    cpu = d["system"]["device_classes"]["cpu"]
    threads = d["settings"].get("engine_options", {}).get("threads")
    lines.append("")
    lines.append(f"`make bench` → `benchmarks/results/bench_cpu.json` ({cpu}, {d['date'][:10]}, "
                 f"tiny untrained segmentation net, engine option threads = {threads} for every backend).")
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


def fastest_round_ratio(rows: list[dict], model: str, slow: tuple[str, str], fast: tuple[str, str]) -> float:
    """``slow``'s fastest round p50 over ``fast``'s ((backend, precision), default variant): each row at
    its least disturbed round, as ``edgepilot bench``'s gate levels a row (load only adds time)."""
    def best(backend: str, precision: str) -> float:
        r = next(r for r in rows if r["model"] == model and r["backend"] == backend and r["precision"] == precision
                 and r["variant"] == "default")
        return min(r["engine_round_p50s_ms"])
    return best(*slow) / best(*fast)


def cpu_table(results_file: str = "cpu_compare.json") -> str:
    d = _load(results_file)
    rows = [r for r in d["rows"] if r["variant"] == "default"]
    lines = ["| model | input | precision | ort p50 ms | openvino p50 ms | openvino / ort speed | ort loop FPS | "
             "openvino loop FPS |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    models = d["setup"]["models"]
    for m in dict.fromkeys(r["model"] for r in rows):
        for p in ("fp32", "fp16", "int8"):
            by = {r["backend"]: r for r in rows if r["model"] == m and r["precision"] == p}
            if set(by) != {"ort", "openvino"}:
                continue
            o, v = by["ort"], by["openvino"]
            hw = "x".join(str(x) for x in models.get(m, {}).get("input", []))
            ip = v["describe"].get("inference_precision", "")
            lines.append(f"| {m} | {hw} | {p} | {o['engine']['p50_ms']:.2f} | {v['engine']['p50_ms']:.2f}"
                         f"{f' ({ip})' if ip and ip != 'f32' else ''} | "
                         f"{o['engine']['p50_ms'] / v['engine']['p50_ms']:.2f}x | {o['loop_fps']:.1f} | {v['loop_fps']:.1f} |")
    t = d["targets"]
    e = t["yolov8n_engine"]
    peer = t["yolov8n_loop_vs_peer"]
    ov = e["best_openvino_float"].split()[1]  # "openvino fp16 (bf16)" -> fp16
    lines += ["", "| target (yolov8n-class, 384x640) | measured | target |", "| --- | --- | --- |",
              f"| engine: best openvino ({e['best_openvino_float']}) over ort fp32 | {e['over_ort_fp32']:.2f}x "
              f"(fastest rounds: {fastest_round_ratio(d['rows'], 'yolov8n', ('ort', 'fp32'), ('openvino', ov)):.2f}x) | "
              f">= {e['target_over_ort_fp32']}x |",
              f"| engine: openvino int8 over openvino fp32 | {e['openvino_int8_over_openvino_fp32']:.2f}x "
              f"(fastest rounds: {fastest_round_ratio(d['rows'], 'yolov8n', ('openvino', 'fp32'), ('openvino', 'int8')):.2f}x)"
              f" | >= {e['target_int8_over_fp32']}x |"]
    own_cpu = t.get("loop_cpu_ms_per_frame_where_the_engine_runs_in_its_own_threads", {})  # since session 10
    for name, ratio in t["loop_over_engine_for_engines_of_10ms_or_more"].items():
        if name.endswith(" default") or "throughput" in name:
            c = own_cpu.get(name)
            extra = (f" (loop threads' CPU a frame: capture {c['capture']:.2f}, preprocess {c['preprocess']:.2f}, "
                     f"inference {c['inference']:.2f} ms)") if c else ""
            lines.append(f"| loop FPS / engine FPS, {name} | {ratio:.2f}{extra} | >= 0.95 |")
    for name, ratio in t.get("file_loop_over_bench_engine_fps", {}).items():
        lines.append(f"| file loop FPS / engine-only FPS (1000 / p50, one call at a time), {name} | {ratio:.2f} | >= 0.95 |")
    lines.append(f"| loop: best edgepilot ({peer['best_edgepilot_row']}, {peer['best_edgepilot_fps']:.1f} FPS) over "
                 f"the peer loop ({peer['peer_fps']:.1f} FPS) | {peer['over_peer']:.2f}x | >= {peer['target_over_peer']}x |")
    for m, b in t["bundles_engine"].items():
        lines.append(f"| {m}: fastest openvino ({b['best_openvino']}) over fastest ort ({b['best_ort']}) | "
                     f"{b['openvino_over_ort']:.2f}x | > 1x |")
    for m, b in t["bundles_engine"].items():
        if m in ("seg", "det") and "ort_int8_over_ort_fp32" in b:
            lines.append(f"| {m}: ort int8 (`{b['ort_int8_model']}`) over ort fp32, 2 threads | "
                         f"{b['ort_int8_over_ort_fp32']:.2f}x (fastest rounds: "
                         f"{fastest_round_ratio(d['rows'], m, ('ort', 'fp32'), ('ort', 'int8')):.2f}x) | >= 1.5x (issue 9) |")
    lines.append("")
    source = (f"`{d['command']}` (also run by `make bench`)" if results_file == "cpu_compare.json"
              else f"`{d['command']} --out benchmarks/results/{results_file}`")
    # files written before the CPU class was recorded (commit b6b5395) name the model only
    cpu = d["device"].get("cpu_class", d["device"]["cpu"] + ", ISA not recorded")
    lines.append(f"{source} → `benchmarks/results/{results_file}` "
                 f"({cpu}, {d['device']['cores']} cores, {d['date'][:10]}; threads = "
                 f"{d['setup']['threads']} for both backends; {d['setup']['rounds']} interleaved rounds; ratios paired "
                 "within each round, median over rounds: the script's docstring says how; \"fastest rounds\": each "
                 "row's fastest round p50 over the other's, the least disturbed estimate, as `edgepilot bench`'s "
                 "gate levels a row).")
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


DRIVE_RUNS = (("scripted baseline (privileged)", "drive_baseline.json", None),
              ("agent (policy + emergency brake), privileged (ground-truth view)", "drive_privileged.json", None),
              ("agent, perception in the loop (INT8, ORT CPU)", "drive_perception.json", None),
              ("  same, latency-aware (x1)", "drive_perception.json", "latency_aware"),
              ("  same, latency-aware (x4: a 4x slower device)", "drive_perception_x4.json", "latency_aware"),
              ("policy alone (`--no-emergency-brake`), privileged", "drive_privileged_nobrake.json", None),
              ("policy alone, perception in the loop", "drive_perception_nobrake.json", None))
# the privileged drivers on 20 held-out seeds per scenario (five is a small sample), with the
# scripted driver that changes lanes (--driver overtaking, stage 7's expert)
DRIVE20_RUNS = (DRIVE_RUNS[0], ("scripted, overtaking (privileged)", "drive_overtaking.json", None), DRIVE_RUNS[1],
                DRIVE_RUNS[5])
DRIVE20_COMMAND = ("PYTHONPATH=. python benchmarks/eval_drive.py --only baseline overtaking privileged privileged_nobrake "
                   "--episodes 20 --workers 2 "
                   "--out benchmarks/results/drive20")
# fresh held-out seeds 4000-4019, first run with the shipped agent (stage 13 + brake)
DRIVE4000_RUNS = (DRIVE_RUNS[0], DRIVE_RUNS[1], DRIVE_RUNS[5])
DRIVE4000_COMMAND = ("PYTHONPATH=. python benchmarks/eval_drive.py --only baseline privileged privileged_nobrake "
                     "--episodes 20 --seed 4000 --workers 2 --out benchmarks/results/drive20_4000")
# validation B: the agent chosen on fresh seeds 3000-3039 (benchmarks/results/valb/README.md)
VALB_RUNS = (("scripted baseline (privileged)", "baseline.json", None),
             ("stage 12, privileged", "s12.json", None),
             ("stage 12 + emergency brake, privileged", "s12_brake.json", None),
             ("stage 13, privileged", "s13.json", None),
             ("stage 13 + emergency brake, privileged (shipped)", "s13_brake.json", None))
VALB_COMMAND = ("edgepilot drive --privileged [--driver scripted] [--policy BUNDLE] [--[no-]emergency-brake] "
                "--seed 3000 --episodes 40 --workers 2 --report benchmarks/results/valb/NAME.json")


def drive_table(runs: tuple = DRIVE_RUNS, folder: Path = RESULTS,
                command: str = "PYTHONPATH=. python benchmarks/eval_drive.py", seeds: str = "held-out",
                files: str = "drive_*.json") -> str:
    scenarios = ("highway", "racetrack", "roundabout", "merge")
    lines = ["| driver | " + " | ".join(scenarios) + " | overall | route | penalty | collisions | tick p99 ms |",
             "| --- | " + " | ".join("---" for _ in scenarios) + " | --- | --- | --- | --- | --- |"]
    first = None
    hosts: dict[str, list[str]] = {}  # cpu -> the rows run there (a table may mix machines)
    for label, name, section in runs:
        if not (folder / name).is_file():
            continue
        d = _load(name, folder)
        first = first or d
        if not section:
            hosts.setdefault(d["host"]["cpu"], []).append(name.removesuffix(".json").removeprefix("drive_"))
        scores = d[section]["scores"] if section else d["scores"]
        per = [f"{scores['per_scenario'][s]['driving_score']:.3f}" for s in scenarios]
        o = scores["overall"]
        tick = d["latency_ms"].get("tick", {}).get("p99") if d["mode"] == "perception" else None
        tick_text = f"{tick:.1f}" if tick is not None and not section else ""
        if d["episodes_per_scenario"] != first["episodes_per_scenario"]:
            label += f" ({d['episodes_per_scenario']} seeds)"
        collisions = sum(e["ended"] == "collision" for e in (d[section] if section else d).get("episodes", []))
        lines.append(f"| {label} | " + " | ".join(per) + f" | **{o['driving_score']:.3f}** | {o['route_completion']:.3f} | "
                     f"{o['infraction_penalty']:.3f} | {collisions} | {tick_text} |")
    if first is not None:
        lines.append("")
        lines.append(f"Driving score (route completion x infraction penalty), mean over {first['episodes_per_scenario']} "
                     f"{seeds} seeds ({first['seeds'][0]}-{first['seeds'][1]}) per scenario; "
                     f"`{command}` → `{folder.relative_to(RESULTS.parents[1])}/{files}` "
                     f"({first['date'][:10]}, " + ("; ".join(f"{cpu}: {', '.join(names)}" for cpu, names in hosts.items())
                                                   if len(hosts) > 1 else first["host"]["cpu"]) + ").")
    return "\n".join(lines)


def scale_table() -> str:
    d = _load("scale_drive.json")
    s = d["serial"]["wall_s"]
    runs = (("serial (`--workers 1`, no Ray)", d["serial"]),
            (f"{d['workers']} Ray workers, local Ray started and shut down (what the CLI does)", d["ray_cold"]),
            (f"{d['workers']} Ray workers, Ray already up (worker processes still start)", d["ray_warm"]))
    lines = [f"| {d['episodes']} episodes (builtin, scripted driver, full length) | wall s | episodes/s | vs serial |",
             "| --- | --- | --- | --- |"]
    lines += [f"| {label} | {r['wall_s']:.1f} | {r['episodes_per_s']:.3f} | {s / r['wall_s']:.2f}x |" for label, r in runs]
    c, h = d["cluster_estimate"], d["host"]
    perception = _load("drive_perception.json")
    per_s = perception["wall_s"] / (len(perception["episodes"]) * (2 if "latency_aware" in perception else 1))
    n, workers = c["episodes"], list(c["hours_ideal"])

    def minutes(seconds: float) -> str:
        return ", ".join(f"{w}: {n * seconds / int(w) / 60:.0f} min" for w in workers)

    lines += ["", f"`PYTHONPATH=. python benchmarks/bench_scale.py` → `benchmarks/results/scale_drive.json` "
              f"({d['date'][:10]}, {h['cpu']}, {h['cpu_count']} cores, load average {h['loadavg_before'][0]:.1f} "
              f"before and {h['loadavg_after'][0]:.1f} after; `ray.init` {d['ray_warm']['ray_init_s']:.1f} s; "
              f"same per-episode results serial and scaled: {'yes' if d['same_episode_results'] else 'NO'}).",
              "", f"Cluster figure: {c['seeds']} seeds x {c['scenarios']} scenarios = {n} episodes x S s / W "
              f"workers. Scripted driver (S = {c['seconds_per_episode']:.1f} s, this run), W = {minutes(c['seconds_per_episode'])}; "
              f"perception in the loop (S = {per_s:.1f} s, `drive_perception.json`), W = {minutes(per_s)}: with "
              f"every worker busy; divide these by the efficiency (here {c['scaling_efficiency_measured']:.2f} for 2 "
              "workers) and add Ray's start and one worker start per worker."]
    return "\n".join(lines)


def brake_tables() -> str:
    """The emergency brake: where it comes on for a standing car (synthetic) and what it changed on
    the validation seeds."""
    reach = _load("brake_reach.json")
    maps = sorted({tuple(r["map_hw"]) for r in reach["rows"]})
    speeds = sorted({r["speed_mps"] for r in reach["rows"]})
    cell = {(tuple(r["map_hw"]), r["speed_mps"]): r for r in reach["rows"]}
    lines = ["| standing car, ego at | " + " | ".join(f"{v:.0f} m/s" for v in speeds) + " |",
             "| --- | " + " | ".join("---" for _ in speeds) + " |"]
    lines.append("| needs the brake by (m) | " + " | ".join(f"{cell[(maps[0], v)]['needs_m']:.1f}" for v in speeds) + " |")
    for hw in maps:
        row = []
        for v in speeds:
            r = cell[(hw, v)]
            at = "never" if r["brakes_at_m"] is None else f"{r['brakes_at_m']:.1f}"
            row.append(at if r["stops"] else f"{at} (late)")
        lines.append(f"| brakes at (m), {hw[0]} x {hw[1]} map | " + " | ".join(row) + " |")
    lines += ["", "`PYTHONPATH=. python benchmarks/brake_reach.py --out benchmarks/results/brake_reach.json` (ranges from "
              "the ego's centre to the car's rear; 6 m/s^2 brake, 2.5 m to the bumper).", ""]
    labels = {"policy": "policy", "brake": "+ brake, no assist", "default": "+ brake, no assist",
              "assist": "+ brake with assist (default)", "assist2": "+ brake, assist at -0.2"}
    for file, what, command in (
            ("brake_validation.json", "validation", "PYTHONPATH=. python benchmarks/validate_brake.py --variant brake:assist_pedal=-1 "
             "--variant assist:assist_pedal=-0.3 --workers 2"),
            ("brake_dev.json", "development", "PYTHONPATH=. python benchmarks/validate_brake.py --seed 2000 --episodes 40 "
             "--mode privileged --variant default:assist_pedal=-1 --variant assist:assist_pedal=-0.3 "
             "--variant assist2:assist_pedal=-0.2 --workers 2 --out benchmarks/results/brake_dev.json"),
            ("brake_dev_perception.json", "development", "PYTHONPATH=. python benchmarks/validate_brake.py --seed 2000 "
             "--episodes 20 --mode perception --variant assist:assist_pedal=-0.3 --workers 2 "
             "--out benchmarks/results/brake_dev_perception.json")):
        val = _load(file)
        scenarios = ("highway", "racetrack", "roundabout", "merge")
        lines += ["| " + f"{what} (seeds {val['seeds'][0]}-{val['seeds'][1]}) | " + " | ".join(scenarios)
                  + " | overall | collisions |",
                  "| --- | " + " | ".join("---" for _ in scenarios) + " | --- | --- |"]
        for mode, runs in val["modes"].items():
            for name, r in runs.items():
                lines.append(f"| {labels.get(name, name)}, {mode} | "
                             + " | ".join(f"{r['per_scenario'][s]:.3f}" for s in scenarios)
                             + f" | **{r['overall']:.3f}** | {r.get('collisions', '')} |")
        lines += ["", f"`{command}` → `benchmarks/results/{file}` ({val['date'][:10]}, {val['host']['cpu']}"
                  + ("; perception: `models/seg` INT8 on ORT)." if "perception" in val["modes"] else ")."), ""]
    return "\n".join(lines).rstrip()


TABLES = {"engines": engines_table, "loop": loop_table, "cpu": cpu_table,
          "cpu_avx2": lambda: cpu_table("cpu_compare_avx2.json"), "cpu_amx": lambda: cpu_table("cpu_compare_amx.json"), "sim": sim_table, "driver": driver_table,
          "drive": drive_table, "drive20": lambda: drive_table(DRIVE20_RUNS, RESULTS / "drive20", DRIVE20_COMMAND),
          "drive4000": lambda: drive_table(DRIVE4000_RUNS, RESULTS / "drive20_4000", DRIVE4000_COMMAND),
          "valb": lambda: drive_table(VALB_RUNS, RESULTS / "valb", VALB_COMMAND, "validation B", "*.json"),
          "scale": scale_table, "brake": brake_tables}


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
