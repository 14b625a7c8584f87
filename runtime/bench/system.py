"""What the benchmark ran on: device names, clocks, peak memory, library versions.

No hostname, user name or environment is recorded. Versions come from package
metadata, so nothing heavy is imported; torch is imported only when a CUDA row
ran (it is already loaded then).
"""

from __future__ import annotations

import glob
import importlib.metadata
import platform
import resource
import shutil
import subprocess
import sys
from typing import Any

from edgepilot.runtime import host

LIBRARIES = ("numpy", "opencv-python-headless", "opencv-python", "onnxruntime", "onnxruntime-gpu",
             "torch", "tensorrt")


def gpu_name(cuda_used: bool) -> str | None:
    """CUDA device 0's name via torch.cuda when a CUDA row ran and torch has CUDA; else None."""
    if not cuda_used:
        return None
    try:
        import torch

        return str(torch.cuda.get_device_name(0)) if torch.cuda.is_available() else None
    except Exception:  # torch missing or CUDA broken: the name is informative only
        return None


def device_classes(cuda_used: bool) -> dict[str, str]:
    """Device class per device kind ({"cpu": class, "cuda": GPU name}); the gate refuses to mix classes.

    The CPU's class is :func:`edgepilot.runtime.host.cpu_class` (name, family/model, ISA
    extensions), not its name alone: VMs on a Zen 3 and a Zen 4 host both read "AMD EPYC".
    """
    out = {"cpu": host.cpu_class()}
    gpu = gpu_name(cuda_used)
    if gpu:
        out["cuda"] = gpu
    return out


def cpu_description() -> dict[str, Any]:
    """The CPU's model name, family/model numbers and kernel-relevant ISA extensions, for a result's device section."""
    info = host.cpu_info()
    return {"model": info.model, "family": info.family, "model_number": info.model_number, "isa": list(info.isa),
            "class": info.cls}


def cpu_clocks_mhz() -> list[float]:
    """Current CPU clocks in MHz from cpufreq, per core; empty where not readable (VMs, containers)."""
    out = []
    for path in sorted(glob.glob("/sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq")):
        try:
            with open(path) as f:
                out.append(int(f.read().strip()) / 1e3)
        except (OSError, ValueError):
            continue
    return out


def gpu_clocks() -> str | None:
    """``nvidia-smi`` SM and memory clocks as CSV text, or None without the binary."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        res = subprocess.run([exe, "--query-gpu=clocks.sm,clocks.mem", "--format=csv"],
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout.strip() or None


def peak_memory(cuda_used: bool) -> dict[str, float | None]:
    """Peak RSS of this process in MB (ru_maxrss) and torch's peak CUDA allocation in MB."""
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_mb = rss_kb / 1024 / (1024 if sys.platform == "darwin" else 1)  # macOS reports bytes
    cuda_mb = None
    if cuda_used and "torch" in sys.modules:
        torch = sys.modules["torch"]
        if torch.cuda.is_available():
            cuda_mb = torch.cuda.max_memory_allocated() / 2**20
    return {"peak_rss_mb": rss_mb, "cuda_max_allocated_mb": cuda_mb}


def library_versions() -> dict[str, str | None]:
    """Versions of python and the libraries a benchmark depends on (None when not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def system_info(cuda_used: bool = False) -> dict[str, Any]:
    """Everything above, for the report's ``system`` key."""
    import os

    return {
        "device_classes": device_classes(cuda_used),
        "cpu": cpu_description(),
        "cpu_count": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "clocks": {"cpu_mhz": cpu_clocks_mhz(), "gpu": gpu_clocks()},
        "memory": peak_memory(cuda_used),
        "versions": library_versions(),
    }
