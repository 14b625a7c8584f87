"""Facts about this host that engines and benchmarks both record (no heavy imports).

A CPU's model name does not tell its kernels apart. Cloud VMs often show a
generic name (``AMD EPYC`` for both a Zen 3 and a Zen 4 host), while the
instruction-set extensions behind it decide what ONNX Runtime, OpenVINO and
torch run: on the development machine's Zen 4 host (AVX-512 with VNNI and
BF16) OpenVINO's fp16 ran bf16 at about twice ONNX Runtime's fp32 on the
YOLOv8n-class model, and on its Zen 3 host (AVX2 only) the two were level and
``models/seg``'s INT8 barely beat its FP32 (``benchmarks/results/cpu_compare.json``
against ``cpu_compare_avx2.json``). So whatever compares or caches by CPU
(the latency gate's device class, ``auto``'s decision, OpenVINO's compiled
models) keys on :func:`cpu_class`: the model name, the family and model
numbers, and the :data:`KERNEL_FLAGS` present.
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass

# Extensions that change which kernels the CPU backends pick (x86 /proc/cpuinfo "flags",
# aarch64 "Features"); the rest of the flag list does not move a latency.
KERNEL_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni",
                "amx_tile", "amx_bf16", "amx_int8", "amx_fp16",
                "asimd", "asimddp", "asimdhp", "bf16", "i8mm", "sve", "sve2")
_MODEL_KEYS = ("model name", "hardware", "cpu model")


@dataclass(frozen=True, slots=True)
class CpuInfo:
    """What /proc/cpuinfo says of the first CPU: name, family/model numbers, kernel-relevant flags."""

    model: str
    family: str | None
    model_number: str | None
    isa: tuple[str, ...]  # the KERNEL_FLAGS present, in KERNEL_FLAGS order

    @property
    def cls(self) -> str:
        """One string naming the CPU class, e.g. ``AMD EPYC (family 25 model 1; avx2 fma)``."""
        ident = f"family {self.family} model {self.model_number}; " if self.family and self.model_number else ""
        return f"{self.model} ({ident}{' '.join(self.isa) or 'no vector extensions listed'})"


def parse_cpuinfo(text: str, fallback_model: str = "") -> CpuInfo:
    """:class:`CpuInfo` from the text of /proc/cpuinfo (the first processor block is enough)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        key, value = (s.strip() for s in line.split(":", 1))
        fields.setdefault(key.lower(), value)
    model = next((fields[k] for k in _MODEL_KEYS if fields.get(k)), fallback_model)
    flags = set((fields.get("flags") or fields.get("features") or "").split())
    return CpuInfo(model=model, family=fields.get("cpu family"), model_number=fields.get("model"),
                   isa=tuple(f for f in KERNEL_FLAGS if f in flags))


@functools.lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """This host's :class:`CpuInfo` (read once)."""
    fallback = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            return parse_cpuinfo(f.read(), fallback)
    except OSError:
        return CpuInfo(fallback, None, None, ())


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    return cpu_info().model


def cpu_class() -> str:
    """Model name, family/model and kernel-relevant ISA extensions: what CPU latencies are comparable within."""
    return cpu_info().cls


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
