"""``--backend auto`` on a CPU: the installed backend measured fastest for *this* bundle, here.

Which CPU backend is faster depends on the graph, not only on the library: on
the benchmarks' YOLOv8n-class detector OpenVINO's fp16 (bf16 arithmetic) is
about twice ONNX Runtime's fp32, while on a tiny 3-conv net ONNX Runtime wins
at every precision (``benchmarks/results/cpu_compare.json``, a Zen 4 host with
AVX512-BF16); and it depends on the CPU: on an AVX2-only host the two are level
on that detector and ort's int8 leads on ``models/seg``
(``cpu_compare_avx2.json``). A static order
is therefore wrong for some bundle whichever way it points, so ``auto``
measures:

1. every installed candidate is loaded (a candidate that cannot run this
   graph drops out, as before);
2. each is warmed up and then timed on the same random inputs in interleaved
   rounds (so a burst of machine load hits all of them alike): back-to-back
   latency, or for an engine that overlaps requests in the loop (openvino with
   ``overlap``, on by default with ``hint=throughput``) the time per frame at
   its throughput with the loop's requests in flight; the lowest median wins
   and the others are closed;
3. the decision is kept in ``<bundle>/engines/auto.json`` under a key of
   everything that could change it (the graph's SHA-256, precision, input
   size, options, library versions, the CPU's class (model, family, ISA
   extensions: ``runtime.host.cpu_class``) and the cores this process may
   use), so the next run loads only the winner. A read-only bundle is measured
   every time; a stale or unreadable record is measured again.

``EDGEPILOT_AUTO_MEASURE=0`` skips the measurement and takes the static order
(:data:`edgepilot.runtime.engines.CPU_PREFERENCE`), for start-up-critical uses.

Timing here is deliberately short (about 30 calls an engine): enough to tell
apart backends that differ by more than the noise, which is the only case
where the choice matters. ``edgepilot bench`` is the tool for numbers.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgepilot.runtime.bundle import Bundle, file_sha256
from edgepilot.runtime.engines.base import Engine
from edgepilot.runtime.host import cpu_class, usable_cores
from edgepilot.runtime.outputs import write_text_atomic

RECORD = "auto.json"
ENV = "EDGEPILOT_AUTO_MEASURE"
WARMUP = 3
ROUNDS = 6
CALLS = 5
# the library whose version changes a backend's kernels
DISTRIBUTIONS = {"ort": ("onnxruntime", "onnxruntime-gpu"), "openvino": ("openvino",)}


def enabled() -> bool:
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def _version(backend: str) -> str:
    for dist in DISTRIBUTIONS.get(backend, ()):
        try:
            return f"{dist}=={importlib.metadata.version(dist)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def decision_key(bundle: Bundle, precision: str, hw: tuple[int, int] | None,
                 options: dict[str, dict[str, Any]]) -> str:
    """A hash of everything that could change which backend is fastest (``options``: per backend, as validated)."""
    graph = bundle.file("int8" if precision == "int8" else "fp32")
    parts = {"graph_sha256": file_sha256(graph), "precision": precision, "hw": list(hw) if hw else None,
             "options": {b: {k: repr(v) for k, v in sorted(o.items())} for b, o in sorted(options.items())},
             "backends": {b: _version(b) for b in sorted(options)}, "cpu": cpu_class(),
             "cores": usable_cores()}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def records(bundle: Bundle) -> dict[str, Any]:
    """Every stored decision of the bundle, by key (empty when none or unreadable)."""
    try:
        data = json.loads((bundle.path_of("engines") / RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def cached_choice(bundle: Bundle, key: str, backends: Sequence[str]) -> dict[str, Any] | None:
    """The stored decision for ``key`` if it names one of ``backends``."""
    rec = records(bundle).get(key)
    if isinstance(rec, dict) and rec.get("backend") in backends and isinstance(rec.get("p50_ms"), dict):
        return rec
    return None


def store_choice(bundle: Bundle, key: str, record: dict[str, Any]) -> bool:
    """Keep the decision in the bundle; False where the bundle is not writable."""
    folder = bundle.path_of("engines")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        data = records(bundle)
        data[key] = record
        write_text_atomic(folder / RECORD, json.dumps(data, indent=2, sort_keys=True) + "\n")
    except OSError:
        return False
    return True


def measure(engines: dict[str, Engine]) -> dict[str, float]:
    """Median ms per call of each engine, interleaved rounds on the same inputs."""
    feeds = {name: e.sample_inputs(0) for name, e in engines.items()}
    for name, e in engines.items():
        for _ in range(WARMUP):
            e.infer(feeds[name])
    samples: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(ROUNDS):
        for name, e in engines.items():
            fps = e.throughput_fps(feeds[name], CALLS)
            if fps is not None:  # it overlaps requests in the loop: its per-frame cost is 1 / throughput
                samples[name].append(1e3 / fps)
                continue
            for _ in range(CALLS):
                t0 = time.perf_counter()
                e.infer(feeds[name])
                samples[name].append((time.perf_counter() - t0) * 1e3)
    return {name: float(np.median(s)) for name, s in samples.items()}


def pick(bundle: Bundle, precision: str, hw: tuple[int, int] | None, engines: dict[str, Engine]) -> tuple[str, str]:
    """(backend, why) among loaded ``engines`` (insertion order: the static preference); closes no engine."""
    names = list(engines)
    key = decision_key(bundle, precision, hw, {n: dict(e.options) for n, e in engines.items()})
    rec = cached_choice(bundle, key, names)
    where = f"{bundle.path_of('engines').name}/{RECORD}"
    if rec is not None:
        return rec["backend"], _why(rec["backend"], precision, rec["p50_ms"], f"measured {rec['measured']}, "
                                    f"kept in the bundle's {where}")
    p50 = measure(engines)
    best = min(names, key=lambda n: p50[n])
    record = {"backend": best, "precision": precision, "p50_ms": p50,
              "measured": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    kept = store_choice(bundle, key, record)
    return best, _why(best, precision, p50, f"measured now, kept in the bundle's {where}" if kept
                      else "measured now; the bundle is read-only, so it is measured on every load")


def _why(best: str, precision: str, p50: dict[str, float], how: str) -> str:
    others = ", ".join(f"{n} {v:.2f} ms" for n, v in p50.items() if n != best)
    return (f"auto: {best} is the fastest installed CPU backend for this bundle at {precision} "
            f"(engine p50 {p50[best]:.2f} ms vs {others}; {how})")
