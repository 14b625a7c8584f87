"""``edgepilot bench``: latency table, JSON report, plot and regression gate for a bundle."""

from __future__ import annotations

import argparse
import sys

from edgepilot.commands.common import add_engine_arguments, float_in, int_in

NAME = "bench"
HELP = "benchmark a bundle per backend/precision/shape and gate latency regressions"
DESCRIPTION = """\
Benchmark a model bundle: for each (backend, precision, shape) row, build the
engine, warm up, then time R repeats x N calls of engine.infer on fixed sample
inputs (synchronising the device before each clock read). Prints p50/p90/p99/
p99.9/max/mean/std in ms (no outlier clipping), FPS (1000/mean: the back-to-back
rate; with --rate the latency includes queueing, so it is no throughput) and the share of
frames over --deadline-ms. A row that cannot be built (unsupported precision,
missing backend or file) is shown as skipped with the reason.

--rate HZ paces requests like a camera: request k arrives at t0 + k/HZ and
queues while the engine is busy; latency = completion - scheduled arrival, so a
slow engine shows growing queueing delay instead of its bare service time.

Gate (--baseline FILE): rows are matched on backend, precision, shape and device
kind. Calls preempted by another process (an involuntary context switch)
are left out of each repeat's p50; a row's level is its fastest repeat's clean
p50 (load only adds time, so one clean repeat is enough; a real slowdown slows
every call). It fails if
  current - baseline > max(tolerance * baseline, min(k * noise, max_band * baseline))
where noise = sqrt(s_base^2 + s_cur^2), s = 1.4826 * MAD of the clean per-repeat p50s.
A failing row is re-measured once and is a regression only if it fails again.
Exit 1 on a regression (the rows are printed); rows missing from the baseline
are reported but pass. A baseline from another device class (CPU model / GPU
name) or an unreadable one is an error (exit 2). --update-baseline writes this
run as the baseline instead of gating.

examples:
  edgepilot bench --model models/seg --backends ort,torch --precisions fp32,fp16 --out bench.json --plot bench.png
  edgepilot bench --model models/seg --shapes 256x512,512x1024 --deadline-ms 33.3
  edgepilot bench --model models/seg --rate 30                       # paced like a 30 FPS camera
  edgepilot bench --model models/seg --baseline base.json --update-baseline   # record a baseline
  edgepilot bench --model models/seg --baseline base.json --tolerance 0.10    # gate: exit 1 on a regression
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="BUNDLE", help="bundle folder")
    add_engine_arguments(p, many=True)
    p.add_argument("--iters", type=int_in(1, 1_000_000), default=100, help="timed calls per repeat (default: 100)")
    p.add_argument("--warmup", type=int_in(0, 100_000), default=10, help="untimed calls before timing (default: 10)")
    p.add_argument("--repeats", type=int_in(1, 1000), default=5, help="timing repeats per row (default: 5)")
    p.add_argument("--rate", type=float_in(0, 10_000, low_open=True), default=None, metavar="HZ", help="paced arrivals at HZ (default: back-to-back)")
    p.add_argument("--deadline-ms", type=float_in(0, 3_600_000, low_open=True), default=None, help="report the share of frames slower than this")
    p.add_argument("--out", default=None, help="write the JSON report here")
    p.add_argument("--plot", default=None, help="write a PNG of the latency distributions here")
    p.add_argument("--baseline", default=None, help="baseline report to gate against")
    p.add_argument("--tolerance", type=float_in(0, 100), default=0.10, help="allowed slowdown as a fraction (default: 0.10)")
    p.add_argument("--noise-k", type=float_in(0, 100), default=3.0, help="noise band multiplier k (default: 3)")
    p.add_argument("--max-band", type=float_in(0, 100), default=0.5,
                   help="cap of the noise band as a fraction of the baseline (default: 0.5)")
    p.add_argument("--update-baseline", action="store_true", help="write this run to --baseline instead of gating")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    from edgepilot.runtime.bench.gate import GateRule, format_result
    from edgepilot.runtime.bench.plot import check_plot_path, plot_latency
    from edgepilot.runtime.bench.report import format_table, load_report, write_report
    from edgepilot.runtime.bench.suite import BenchSettings, build_report, gate_run, run_bench
    from edgepilot.runtime.bundle import load_bundle
    from edgepilot.runtime.errors import EdgepilotError
    from edgepilot.runtime.outputs import check_outputs

    if args.update_baseline and not args.baseline:
        raise EdgepilotError("--update-baseline needs --baseline FILE to write", exit_code=2)
    gating = args.baseline and not args.update_baseline
    check_outputs({"--out": args.out, "--plot": args.plot,
                   "--baseline": args.baseline if args.update_baseline else None},
                  inputs={"--baseline": args.baseline if gating else None})
    if args.plot:
        check_plot_path(args.plot)
    bundle = load_bundle(args.model)
    baseline = load_report(args.baseline) if args.baseline and not args.update_baseline else None
    settings = BenchSettings(args.iters, args.warmup, args.repeats, args.device, args.rate, args.deadline_ms,
                             dict(args.engine_opt))
    rows = run_bench(bundle, args.backends, args.precisions, args.shapes, settings,
                     progress=not args.no_progress)
    print(format_table(rows))
    report = build_report(bundle, rows, settings, ["edgepilot", *sys.argv[1:]])
    if args.out:
        print(f"wrote {write_report(report, args.out)}")
    if args.plot and plot_latency(rows, args.plot, title=f"{bundle.name} latency"):
        print(f"wrote {args.plot}")
    if not any(r.ok for r in rows):
        print("error: no row could be measured (see the reasons above)", file=sys.stderr)
        return 1
    if args.update_baseline:
        print(f"baseline written to {write_report(report, args.baseline)}")
        return 0
    if baseline is None:
        return 0
    rule = GateRule(args.tolerance, args.noise_k, args.max_band)
    result = gate_run(bundle, baseline, rows, settings, rule)
    print(format_result(result, rule))
    return 0 if result.passed else 1
