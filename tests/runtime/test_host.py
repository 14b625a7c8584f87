"""The CPU class: model name, family/model and the ISA extensions that pick kernels."""

from __future__ import annotations

import pytest

from edgepilot.runtime import host
from edgepilot.runtime.host import CpuInfo, parse_cpuinfo

# Two VMs that both read "AMD EPYC": a Zen 3 host (AVX2) and a Zen 4 host (AVX-512 with VNNI and BF16).
ZEN3 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC
flags\t\t: fpu sse sse2 ssse3 fma avx f16c avx2 bmi2 sha_ni vaes

processor\t: 1
model name\t: something else entirely
"""
ZEN4 = ZEN3.replace("model\t\t: 1", "model\t\t: 17").replace(
    "avx2 bmi2", "avx2 bmi2 avx512f avx512dq avx512_vnni avx512_bf16")
GRAVITON = """processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes asimdhp asimddp sve i8mm bf16
CPU implementer\t: 0x41
"""


def test_same_name_other_isa_is_another_class() -> None:
    zen3, zen4 = parse_cpuinfo(ZEN3), parse_cpuinfo(ZEN4)
    assert zen3.model == zen4.model == "AMD EPYC"  # the first processor block decides
    assert zen3.isa == ("avx2", "fma")
    assert zen4.isa == ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16")
    assert zen3.cls == "AMD EPYC (family 25 model 1; avx2 fma)"
    assert zen4.cls != zen3.cls and "model 17" in zen4.cls and "avx512_bf16" in zen4.cls


def test_aarch64_features_and_a_missing_name() -> None:
    info = parse_cpuinfo(GRAVITON, fallback_model="aarch64")
    assert info == CpuInfo("aarch64", None, None, ("asimd", "asimddp", "asimdhp", "bf16", "i8mm", "sve"))
    assert info.cls == "aarch64 (asimd asimddp asimdhp bf16 i8mm sve)"
    assert parse_cpuinfo("", "x86_64").cls == "x86_64 (no vector extensions listed)"


def test_this_host_is_described() -> None:
    info = host.cpu_info()
    assert info.model and host.cpu_class() == info.cls and info.cls.startswith(info.model)
    assert set(info.isa) <= set(host.KERNEL_FLAGS)


@pytest.fixture
def zen4_host(monkeypatch: pytest.MonkeyPatch) -> CpuInfo:
    """Pretend this process runs on the Zen 4 host (cpu_class() reads host.cpu_info)."""
    info = parse_cpuinfo(ZEN4)
    monkeypatch.setattr(host, "cpu_info", lambda: info)
    return info


def test_device_classes_and_auto_key_follow_the_isa(bundles: dict, zen4_host: CpuInfo,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from edgepilot.runtime.bench.system import device_classes, system_info
    from edgepilot.runtime.bundle import load_bundle
    from edgepilot.runtime.engines.auto import decision_key

    assert device_classes(False) == {"cpu": zen4_host.cls}
    assert system_info()["cpu"]["isa"] == list(zen4_host.isa)
    bundle = load_bundle(bundles["seg"])
    on_zen4 = decision_key(bundle, "fp32", None, {"ort": {"threads": 1}})
    zen3 = parse_cpuinfo(ZEN3)
    monkeypatch.setattr(host, "cpu_info", lambda: zen3)
    assert decision_key(bundle, "fp32", None, {"ort": {"threads": 1}}) != on_zen4
