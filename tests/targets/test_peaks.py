"""Derived peak compute and bandwidth, the cited table, and the roofline inputs of every shipped target."""

from __future__ import annotations

from pathlib import Path

import pytest

from targets import DESCRIPTOR_DIR, TargetError, list_names, load
from targets.peaks import (
    Cluster,
    derived_peak_tops,
    dram_bandwidth_gbps,
    load_microarchitectures,
    roofline_gaps,
)

NAMES = list_names()

# How each derived number of a shipped descriptor is computed; the test recomputes it from the table,
# so a typo in a YAML, a changed table row or an unmarked derived value fails here.
_SD855_A76 = [Cluster("cortex-a76", 1, 2.84), Cluster("cortex-a76", 3, 2.42)]
_SD855 = _SD855_A76 + [Cluster("cortex-a55", 4, 1.8)]
_ZEN3 = {1: [Cluster("zen3", 1, 2.445)], 2: [Cluster("zen3", 2, 2.445)]}
_LOCAL = {"local-zen3-onnxruntime-t1": 1, "local-zen3-onnxruntime-t2": 2, "local-zen3-pytorch-t1": 1,
          "local-zen3-pytorch-t2": 2, "local-zen3-tvm-tuned-znver3-t1": 1, "local-zen3-tvm-tuned-znver3-t2": 2,
          "local-zen3-tvm-untuned-generic": 1, "local-zen3-tvm-untuned-znver3": 1}
_GPU_FMA = ["gtx1080ti-pytorch-fp32-b1", "gtx1080ti-pytorch-fp32-b256", "gtx1080ti-pytorch-fp32-b32",
            "gtx1080ti-tensorflow-fp32-b1", "titanxp-pytorch-fp32-b1", "titanxp-pytorch-fp32-b256",
            "titanxp-pytorch-fp32-b32", "titanxp-pytorch-fp32-b64", "jetson-tx2-tensorrt-fp32-b1",
            "jetson-nano-gpu-fp16", "jetson-nano-gpu-fp32"]
RECIPES: dict[str, dict[str, float]] = {
    "xeon-gold-6240-pytorch-fp32": {
        "peak_tops.fp32": derived_peak_tops([Cluster("skylake-sp-avx512-2fma", 18, 3.9)], "fp32"),
        "memory.bandwidth_gbps": dram_bandwidth_gbps(2933, 6 * 64)},
    "xeon-silver-4114-pytorch-fp32": {
        "peak_tops.fp32": derived_peak_tops([Cluster("skylake-sp-avx512-1fma", 10, 3.0)], "fp32"),
        "memory.bandwidth_gbps": dram_bandwidth_gbps(2400, 6 * 64)},
    "xeon-silver-4210r-pytorch-fp32": {
        "peak_tops.fp32": derived_peak_tops([Cluster("skylake-sp-avx512-1fma", 10, 2.4)], "fp32"),
        "memory.bandwidth_gbps": dram_bandwidth_gbps(2400, 6 * 64)},
    "core-i7-7820x-tensorflow-fp32-b1": {"memory.bandwidth_gbps": dram_bandwidth_gbps(2666, 4 * 64)},
    **{name: {"peak_tops.fp32": derived_peak_tops(_ZEN3[cores], "fp32"), "memory.bandwidth_gbps": 8 * 64 * 3200 / 8e3}
       for name, cores in _LOCAL.items()},
    "pixel4-tflite-cpu": {"peak_tops.fp32": derived_peak_tops(_SD855_A76, "fp32"),
                          "memory.bandwidth_gbps": dram_bandwidth_gbps(4266, 64)},
    "snapdragon855-cpu-int8": {"peak_tops.fp32": derived_peak_tops(_SD855, "fp32"),
                               "memory.bandwidth_gbps": dram_bandwidth_gbps(4266, 64)},
    "snapdragon855-gpu-int8": {"memory.bandwidth_gbps": dram_bandwidth_gbps(4266, 64)},
    "snapdragon855-dsp-int8": {"memory.bandwidth_gbps": dram_bandwidth_gbps(4266, 64)},
    "mi9-tflite-gpu": {"memory.bandwidth_gbps": dram_bandwidth_gbps(4266, 64)},
    # Adreno 630: 768 FP32 units of the Adreno 640 / 1.5, at 0.71 GHz; fp16 at twice the rate
    "pixel3xl-tflite-gpu": {"peak_tops.fp32": 512 * 2 * 0.71e9 / 1e12, "peak_tops.fp16": 2 * 512 * 2 * 0.71e9 / 1e12,
                            "memory.bandwidth_gbps": dram_bandwidth_gbps(3733, 64)},
    "pixel3-tflite": {"peak_tops.fp32": derived_peak_tops([Cluster("cortex-a75", 4, 2.8), Cluster("cortex-a55", 4, 1.8)],
                                                          "fp32"),
                      "memory.bandwidth_gbps": dram_bandwidth_gbps(3733, 64)},
}

# Targets whose spec sheets do not settle a roofline input, with the reason their notes give. Filling
# one (with a source) must remove it from here; a new gap in a shipped target fails the test below.
UNRESOLVED: dict[str, str] = {
    "core-i7-7820x-tensorflow-fp32-b1": "one or two AVX-512 FMA units: not settled by the sources read",
    "edgetpu-tflite-int8-brpnas": "no published memory bandwidth (weights sit in 8 MB of on-chip SRAM)",
    "edgetpu-tflite-int8-hwnasbench": "no published memory bandwidth (weights sit in 8 MB of on-chip SRAM)",
    "essential-ph1-tflite": "no cited Cortex-A73 FLOP/cycle or Snapdragon 835 memory figures",
    "galaxy-a50-tflite": "no cited Cortex-A73 FLOP/cycle or Exynos 9610 memory figures",
    "galaxy-s7-tflite": "SoC unknown (Exynos 8890 or Snapdragon 820)",
    "ncs2-openvino-vpu": "Myriad X: '1 TOPS' of unnamed precision, no memory bandwidth",
    "snapdragon855-cpu-int8": "no cited int8 dot-product throughput for Cortex-A76/A55",
    "snapdragon855-dsp-int8": "no int8 peak published for the Hexagon 690 alone",
    "snapdragon855-gpu-int8": "no int8 rate published for the Adreno 640",
    "titanx-pytorch-fp32-b1": "Maxwell or Pascal TITAN X: not stated",
    "titanx-pytorch-fp32-b256": "Maxwell or Pascal TITAN X: not stated",
    "titanx-pytorch-fp32-b32": "Maxwell or Pascal TITAN X: not stated",
    "v100-pytorch-fp32-b1": "PCIe (14) or SXM2 (15.7 TFLOP/s) V100: not stated",
    "v100-pytorch-fp32-b32": "PCIe (14) or SXM2 (15.7 TFLOP/s) V100: not stated",
    "v100-pytorch-fp32-b64": "PCIe (14) or SXM2 (15.7 TFLOP/s) V100: not stated",
}


def _value(desc, path: str) -> float | None:
    section, key = path.split(".")
    return desc.peak_tops.get(key) if section == "peak_tops" else getattr(desc.memory, key)


# ------------------------------------------------------------------------ derivation


def test_skylake_sp_peak_by_hand():
    # Xeon Gold 6240: 18 cores x 2 AVX-512 FMA units x 16 fp32 lanes x 2 FLOP x 3.9 GHz = 4.4928 TFLOP/s
    assert derived_peak_tops([Cluster("skylake-sp-avx512-2fma", 18, 3.9)], "fp32") == pytest.approx(4.4928)
    # Xeon Silver 4114: one FMA unit: 10 x 1 x 16 x 2 x 3.0 GHz = 0.96 TFLOP/s
    assert derived_peak_tops([Cluster("skylake-sp-avx512-1fma", 10, 3.0)], "fp32") == pytest.approx(0.96)


def test_heterogeneous_clusters_are_summed():
    # Snapdragon 855: (1 x 2.84 + 3 x 2.42) GHz x 16 (A76) + 4 x 1.8 GHz x 8 (A55) = 161.6 + 57.6 GFLOP/s
    assert derived_peak_tops(_SD855, "fp32") == pytest.approx(0.2192)


def test_dram_bandwidth_by_hand():
    assert dram_bandwidth_gbps(4266, 64) == pytest.approx(34.128)          # LPDDR4X-4266, 4 x 16 bit
    assert dram_bandwidth_gbps(2933, 6 * 64) == pytest.approx(140.784)     # hexa-channel DDR4-2933
    with pytest.raises(TargetError, match="must be positive"):
        dram_bandwidth_gbps(0, 64)


def test_unknown_row_or_uncited_precision_is_an_error():
    with pytest.raises(TargetError, match="unknown microarchitecture 'pentium'"):
        derived_peak_tops([Cluster("pentium", 1, 1.0)], "fp32")
    with pytest.raises(TargetError, match="no cited int8"):
        derived_peak_tops([Cluster("zen3", 1, 1.0)], "int8")
    with pytest.raises(TargetError, match="no clusters"):
        derived_peak_tops([], "fp32")


def test_every_table_row_is_cited_and_positive():
    table = load_microarchitectures()
    assert {"skylake-sp-avx512-2fma", "skylake-sp-avx512-1fma", "zen3", "cortex-a76", "cortex-a75", "cortex-a55",
            "cortex-a53"} <= set(table)
    for row in table.values():
        assert row.sources and all(s.strip() for s in row.sources), row.name
        assert row.ops_per_cycle["fp32"] and row.ops_per_cycle["fp32"] > 0, row.name


def test_a_broken_table_names_the_file_and_row(tmp_path: Path):
    bad = tmp_path / "t.yaml"
    bad.write_text("schema_version: 1\nmicroarchitectures:\n  x: {ops_per_cycle: {fp32: 8, fp16: null, int8: null}}\n")
    with pytest.raises(TargetError, match=r"t.yaml: microarchitectures.x.sources"):
        load_microarchitectures(bad)


# ------------------------------------------------------------------------ shipped descriptors


@pytest.mark.parametrize("name", NAMES)
def test_derived_values_are_marked_and_recompute(name):
    desc = load(name)
    recipe = RECIPES.get(name, {})
    expected_derived = set(recipe) | ({"peak_tops.fp32"} if name in _GPU_FMA else set())
    assert set(desc.derived) == expected_derived
    for path, value in recipe.items():
        assert _value(desc, path) == pytest.approx(value, rel=1e-3), path
    if name in _GPU_FMA:  # CUDA cores x 2 FLOP per FMA x boost clock
        assert desc.peak_tops["fp32"] == pytest.approx(desc.shading_units * 2 * desc.clock_ghz / 1e3, rel=1e-3)


@pytest.mark.parametrize("name", NAMES)
def test_every_shipped_target_has_peak_and_bandwidth_unless_documented(name):
    desc = load(name)
    gaps = roofline_gaps(desc)
    if name in UNRESOLVED:
        assert gaps, f"{name} is complete now: remove it from UNRESOLVED"
        notes = desc.notes or ""
        assert "null" in notes and ("peak" in notes or "bandwidth" in notes or "every hardware spec" in notes), \
            "the notes must say why a roofline input is null"
    else:
        assert not gaps, gaps
        assert desc.peak_flops_per_s() > 0 and desc.memory_bandwidth_bytes_per_s() > 0


def test_committed_local_descriptors_are_refined_by_the_registry():
    """datasets/local-zen3.jsonl.gz embeds the descriptors it was measured under; each shipped one refines them."""
    import gzip
    import json

    from targets.schema import TargetDescriptor

    dataset = DESCRIPTOR_DIR.parents[1] / "datasets" / "local-zen3.jsonl.gz"
    with gzip.open(dataset, "rt", encoding="utf-8") as f:
        stored = [TargetDescriptor.from_dict(r["descriptor"]) for r in map(json.loads, f) if r.get("kind") == "target"]
    assert len(stored) == 6
    for old in stored:
        new = load(old.name)
        assert new.content_hash() != old.content_hash() and new.refines(old), old.name
        assert old.peak_flops_per_s() is None and new.peak_flops_per_s() > 0

