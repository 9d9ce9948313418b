"""A target descriptor as text: the hardware prompt the cost model's text encoder reads.

Deterministic (the same descriptor always gives the same text, so embeddings
cache by text) and made of known specs only: a null field is left out, never
guessed. Kept apart from :mod:`targets.schema` so the wording, the part most
often tuned, is one short module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from targets.validation import PEAK_KEYS, thaw

if TYPE_CHECKING:
    from targets.schema import TargetDescriptor

__all__ = ["hardware_prompt"]

# Display names used by to_text(); deterministic and independent of dict order.
_CLASS_TEXT = {
    "server-cpu": "server CPU",
    "desktop-cpu": "desktop CPU",
    "embedded-cpu": "embedded CPU",
    "mobile-cpu": "mobile CPU",
    "server-gpu": "server GPU",
    "desktop-gpu": "desktop GPU",
    "embedded-gpu": "embedded GPU",
    "mobile-gpu": "mobile GPU",
    "dsp": "DSP",
    "npu": "NPU",
    "tpu": "TPU",
    "vpu": "VPU",
    "fpga": "FPGA",
    "asic": "ASIC",
}
_RUNTIME_TEXT = {
    "pytorch": "PyTorch",
    "tensorflow": "TensorFlow",
    "tflite": "TFLite",
    "tensorrt": "TensorRT",
    "openvino": "OpenVINO",
    "snpe": "SNPE",
    "onnxruntime": "ONNX Runtime",
    "tvm": "TVM",
    "other": "other runtime",
}


def hardware_prompt(desc: TargetDescriptor, *, throughput: bool = True) -> str:
    """``<hardware specs>; <software setting>``, e.g. ``desktop GPU NVIDIA GeForce GTX 1080 Ti, ..., TDP 250 W;
    PyTorch (cuda), fp32, batch 1``. ``throughput=False`` leaves out the peak compute figures and the
    thread count, for a model that receives them through a roofline bound instead."""
    return ", ".join(_hardware(desc, throughput)) + "; " + ", ".join(_software(desc, throughput))


def _hardware(desc: TargetDescriptor, throughput: bool = True) -> list[str]:
    """Class, vendor and model, then every known hardware spec with its unit (peak compute if ``throughput``)."""
    hw = [" ".join(x for x in (_CLASS_TEXT[desc.device_class], desc.vendor, desc.model) if x)]
    if desc.microarchitecture:
        hw.append(desc.microarchitecture)
    if desc.soc:
        hw.append(f"SoC {desc.soc}")
    if desc.core_config:
        hw.append(desc.core_config)
    for value, unit in (
        (desc.compute_units, "compute units"),
        (desc.shading_units, "shading units"),
        (desc.hw_threads, "hardware threads"),
    ):
        if value is not None:
            hw.append(f"{value} {unit}")
    if desc.clock_ghz is not None:
        hw.append(f"{_num(desc.clock_ghz)} GHz")
    for key in PEAK_KEYS if throughput else ():
        value = desc.peak_tops.get(key)
        if value is not None:
            unit = "TOP/s" if key.startswith("int") else "TFLOP/s"
            hw.append(f"{_num(value)} {unit} {key.replace('_', ' ')}")
    mem = " ".join(
        x
        for x in (
            f"{_num(desc.memory.size_gb)} GB" if desc.memory.size_gb is not None else None,
            desc.memory.type,
            f"at {_num(desc.memory.bandwidth_gbps)} GB/s" if desc.memory.bandwidth_gbps is not None else None,
        )
        if x
    )
    if mem:
        hw.append(mem if desc.memory.size_gb is not None or desc.memory.type else f"memory {mem}")
    for value, label in (
        (desc.cache.l1d_kib_per_unit, "L1D {} per unit"),
        (desc.cache.l2_kib_total, "L2 {}"),
        (desc.cache.l3_kib_total, "L3 {}"),
    ):
        if value is not None:
            hw.append(label.format(_kib(value)))
    if desc.tdp_w is not None:
        hw.append(f"TDP {_num(desc.tdp_w)} W")
    return hw


def _software(desc: TargetDescriptor, throughput: bool = True) -> list[str]:
    """Runtime (TVM: untuned or tuned, and its target), precision, batch size, threads (if ``throughput``)."""
    rt = _RUNTIME_TEXT[desc.runtime] if desc.runtime else "unknown runtime"
    if desc.tvm is not None:  # "TVM untuned" must be unmistakable: it is a baseline, not a deployment
        rt += " untuned" if not desc.tvm.tuned else f" tuned ({desc.tvm.tuner})" if desc.tvm.tuner else " tuned"
    if desc.runtime_version:
        rt += f" {desc.runtime_version}"
    if desc.runtime_backend:
        rt += f" ({desc.runtime_backend})"
    sw = [rt]
    if desc.tvm is not None:
        sw.append("target " + " ".join(f"{k}={thaw(v)}" for k, v in sorted(desc.tvm.target.items())))
    sw.append(desc.precision or "unknown precision")
    sw.append(f"batch {desc.batch_size}" if desc.batch_size is not None else "batch unknown")
    if throughput and desc.threads is not None:
        sw.append(f"{desc.threads} thread{'s' if desc.threads != 1 else ''}")
    return sw


def _num(x: float) -> str:
    """Stable short number text: integers as such, else up to 4 significant digits."""
    return str(int(x)) if float(x).is_integer() else f"{x:.4g}"


def _kib(x: float) -> str:
    """Cache size in KiB or, from 1 MiB up, in MiB."""
    return f"{_num(x / 1024)} MiB" if x >= 1024 else f"{_num(x)} KiB"
