"""The benchmark suite behind ``make bench``: engine latency on CPU, the loop benchmark, the CPU comparison.

Builds the tiny bundle named in the config into a temporary folder, benches
every (backend, precision, shape) row with ``runtime.bench`` (the code behind
``edgepilot bench``), writes the JSON report and a PNG, prints the table, then
runs ``benchmarks/bench_loop.py`` when it exists, then ``benchmarks/bench_cpu_compare.py``
(ort vs openvino and a hand-written OpenVINO loop, ``cpu_compare.json``; needs openvino).

    python benchmarks/run_all.py [--config configs/bench/default.yaml]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout, like `make bench`
    sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class SuiteConfig:
    """Defaults of the suite; ``configs/bench/default.yaml`` overrides them key by key."""

    model: str = "segmentation"
    backends: tuple[str, ...] = ("ort", "null")
    precisions: tuple[str, ...] = ("fp32",)
    shapes: tuple[str, ...] = ("128x256", "256x512")
    device: str = "cpu"
    iters: int = 200
    warmup: int = 20
    repeats: int = 5
    deadline_ms: float | None = None
    engine_options: dict[str, Any] = field(default_factory=dict)
    out: str = "benchmarks/results/bench_cpu.json"
    plot: str = "benchmarks/results/bench_cpu.png"


def load_config(path: Path) -> SuiteConfig:
    """SuiteConfig with the YAML's keys applied; unknown keys are an error naming them."""
    import yaml

    data = yaml.safe_load(path.read_text()) or {}
    known = {f.name for f in fields(SuiteConfig)}
    if unknown := set(data) - known:
        raise SystemExit(f"error: {path}: unknown keys {sorted(unknown)} (known: {sorted(known)})")
    cast = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    for key in ("backends", "precisions", "shapes"):
        if not all(isinstance(v, str) for v in cast.get(key, ())):
            raise SystemExit(f"error: {path}: {key} must be strings (quote null, yes, no): {cast[key]}")
    return replace(SuiteConfig(), **cast)


def build_bundle(model: str, folder: Path) -> Path:
    from edgepilot.export import tiny

    def torch_seg(p: Path) -> Path:
        from edgepilot.export.tiny_torch import torch_segmentation_bundle

        return torch_segmentation_bundle(p)

    builders = {"segmentation": lambda p: tiny.segmentation_bundle(p, hw=None), "segmentation-torch": torch_seg}
    if model not in builders:
        raise SystemExit(f"error: unknown suite model {model!r}: choose {sorted(builders)}")
    return builders[model](folder / model)


def bench_engines(cfg: SuiteConfig) -> int:
    """Bench every row, write the JSON and PNG under the repository root; returns an exit code."""
    from edgepilot.runtime.bench.plot import plot_latency
    from edgepilot.runtime.bench.report import format_table, write_report
    from edgepilot.runtime.bench.suite import BenchSettings, build_report, run_bench
    from edgepilot.runtime.bundle import load_bundle
    from edgepilot.runtime.options import parse_shape

    settings = BenchSettings(cfg.iters, cfg.warmup, cfg.repeats, cfg.device, None, cfg.deadline_ms,
                             dict(cfg.engine_options))
    with tempfile.TemporaryDirectory() as tmp:
        bundle = load_bundle(build_bundle(cfg.model, Path(tmp)))
        rows = run_bench(bundle, cfg.backends, cfg.precisions, [parse_shape(s) for s in cfg.shapes], settings)
        report = build_report(bundle, rows, settings, ["python", "benchmarks/run_all.py", *sys.argv[1:]])
    print(format_table(rows))
    print(f"wrote {write_report(report, ROOT / cfg.out)}")
    if cfg.plot and plot_latency(rows, ROOT / cfg.plot, title=f"tiny {cfg.model} on CPU"):
        print(f"wrote {cfg.plot}")
    return 0 if any(r.ok for r in rows) else 1


def bench_loop() -> int:
    """Run the loop benchmark a colleague maintains, if it is in this checkout."""
    script = ROOT / "benchmarks" / "bench_loop.py"
    if not script.is_file():
        print("benchmarks/bench_loop.py not present: loop benchmark skipped")
        return 0
    return subprocess.run([sys.executable, str(script)], cwd=ROOT, check=False).returncode


def bench_cpu_compare() -> int:
    """ort vs openvino (and the peer loop) on the same models: benchmarks/results/cpu_compare.json."""
    import importlib.util

    if importlib.util.find_spec("openvino") is None:
        print("openvino is not installed (pip install 'edgepilot[openvino]'): CPU comparison skipped")
        return 0
    script = ROOT / "benchmarks" / "bench_cpu_compare.py"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "bench" / "default.yaml")
    args = parser.parse_args(argv)
    cfg = load_config(args.config) if args.config.is_file() else SuiteConfig()
    return bench_engines(cfg) or bench_loop() or bench_cpu_compare()


if __name__ == "__main__":
    sys.exit(main())
