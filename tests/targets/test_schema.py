"""Validation, hashing, text and features of a single descriptor."""

from __future__ import annotations

import hashlib
import math

import pytest

from targets.errors import TargetError
from targets.registry import load_file
from targets.schema import DEVICE_CLASSES, FEATURE_NAMES, PRECISIONS, RUNTIMES, TargetDescriptor


def _desc(data, origin="<test>"):
    return TargetDescriptor.from_dict(data, origin=origin)


# ------------------------------------------------------------------------ validation


def _set(path, value):
    def mutate(d):
        *parents, leaf = path.split(".")
        for p in parents:
            d = d.setdefault(p, {})
        d[leaf] = value

    return mutate


def _drop(key):
    return lambda d: d.pop(key)


TVM = {"target": {"kind": "llvm", "mcpu": "znver3", "num-cores": 2}, "tuned": True, "tuner": "metaschedule"}

BROKEN = [
    # (id, mutation, field named in the message, phrase in the message)
    ("unknown-field", _set("colour", "red"), "colour", "unknown field"),
    ("bandwidth-not-number", _set("memory.bandwidth_gbps", "fast"), "memory.bandwidth_gbps", "expected a number, got 'fast'"),
    ("typo-in-section", _set("memory.bandwith_gbps", 10), "memory.bandwith_gbps", "unknown field"),
    ("bad-device-class", _set("device_class", "laptop"), "device_class", "expected one of"),
    ("bad-precision", _set("precision", "fp8"), "precision", "expected one of"),
    ("negative-clock", _set("clock_ghz", -1.0), "clock_ghz", "expected a number > 0"),
    ("nan-tdp", _set("tdp_w", float("nan")), "tdp_w", "finite"),
    ("negative-cache", _set("cache.l2_kib_total", -4), "cache.l2_kib_total", ">= 0"),
    ("missing-model", _drop("model"), "model", "missing required field"),
    ("missing-precision", _drop("precision"), "precision", "write null if unknown"),
    ("null-model", _set("model", None), "model", "must not be null"),
    ("fractional-batch", _set("batch_size", 2.5), "batch_size", "expected an integer"),
    ("zero-batch", _set("batch_size", 0), "batch_size", ">= 1"),
    ("bool-as-int", _set("compute_units", True), "compute_units", "expected an integer, got True (bool)"),
    ("unquoted-version", _set("runtime_version", 2.1), "runtime_version", "quote version numbers"),
    ("unknown-peak-precision", _set("peak_tops", {"fp8": 1.0}), "peak_tops.fp8", "unknown precision"),
    ("schema-version", _set("schema_version", 2), "schema_version", "unsupported schema version"),
    ("bad-name", _set("name", "My Board"), "name", "lower-case name"),
    ("bad-alias", _set("aliases", ["help-1080ti"]), "aliases[0]", "'<dataset>:<upstream name>'"),
    ("duplicate-alias", _set("aliases", ["a:b", "a:b"]), "aliases[1]", "duplicate entry"),
    ("sources-not-list", _set("sources", "datasheet"), "sources", "expected a list"),
    ("base-above-boost", lambda d: d.update(clock_ghz=1.0, base_clock_ghz=2.0), "base_clock_ghz", "exceeds clock_ghz"),
    ("tvm-runtime-without-section", _set("runtime", "tvm"), "tvm", "required when runtime is tvm"),
    ("tvm-section-other-runtime", _set("tvm", TVM), "tvm", "only allowed when runtime is tvm"),
    (
        "num-cores-vs-threads",
        lambda d: d.update(runtime="tvm", tvm=TVM, threads=1),
        "tvm.target.num-cores",
        "disagrees with threads=1",
    ),
    (
        "tvm-target-without-kind",
        lambda d: d.update(runtime="tvm", tvm={"target": {"mcpu": "znver3"}, "tuned": False}),
        "tvm.target.kind",
        "missing required field",
    ),
    (
        "tuner-on-untuned",
        lambda d: d.update(runtime="tvm", tvm={"target": {"kind": "llvm"}, "tuned": False, "tuner": "metaschedule"}),
        "tvm.tuner",
        "must be null",
    ),
]


@pytest.mark.parametrize("mutate,field,phrase", [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN])
def test_broken_yaml_names_file_and_field(minimal, write_yaml, mutate, field, phrase):
    mutate(minimal)
    path = write_yaml(minimal)
    with pytest.raises(TargetError) as err:
        load_file(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: field '{field}':"), msg
    assert phrase in msg, msg


@pytest.mark.parametrize(
    "text,phrase",
    [
        ("name: [unclosed\n", "invalid YAML (line"),
        ("name: a\nname: b\n", "duplicate key 'name'"),
        ("- just\n- a list\n", "field '<top level>': expected a mapping"),
        ("", "field '<top level>': expected a mapping, got None"),
    ],
    ids=["syntax", "duplicate-key", "not-a-mapping", "empty"],
)
def test_malformed_files_name_the_file(write_yaml, text, phrase):
    path = write_yaml(text)
    with pytest.raises(TargetError) as err:
        load_file(path)
    assert str(err.value).startswith(str(path)), err.value
    assert phrase in str(err.value)


def test_missing_file_is_a_target_error(tmp_path):
    with pytest.raises(TargetError, match="no such target file"):
        load_file(tmp_path / "nope.yaml")


def test_minimal_descriptor_defaults_unknowns_to_null(minimal):
    d = _desc(minimal)
    assert d.clock_ghz is None and d.memory.bandwidth_gbps is None and d.tvm is None
    assert d.aliases == () and d.sources == () and dict(d.peak_tops) == {}


def test_to_dict_round_trips(minimal):
    minimal.update(
        runtime="tvm",
        threads=2,
        tvm={"target": {"kind": "llvm", "mattr": ["+avx2", "+fma"], "num-cores": 2}, "tuned": True},
        peak_tops={"fp32": 0.5, "int8": None},
        memory={"type": "LPDDR4", "size_gb": 4},
        aliases=["x:y"],
        sources=["a datasheet"],
    )
    d = _desc(minimal)
    again = _desc(d.to_dict())
    assert again == d
    assert again.to_dict() == d.to_dict()
    assert again.tvm.target["mattr"] == ("+avx2", "+fma")


# ------------------------------------------------------------------------ hashing


def test_content_hash_pins_the_canonical_json(minimal):
    # Written out by hand: changing the canonical form must be a deliberate, visible change
    # because the measurement database is keyed on this hash.
    canonical = (
        '{"base_clock_ghz":null,"batch_size":1,"cache":{"l1d_kib_per_unit":null,"l2_kib_total":null,'
        '"l3_kib_total":null},"clock_ghz":null,"compute_units":null,"core_config":null,'
        '"device_class":"embedded-cpu","hw_threads":null,"memory":{"bandwidth_gbps":null,'
        '"bus_width_bits":null,"size_gb":null,"type":null},"microarchitecture":null,"model":"Board 1",'
        '"name":"test-board","peak_tops":{},"precision":"fp32","runtime":"tflite","runtime_backend":null,'
        '"runtime_version":null,"schema_version":1,"shading_units":null,"soc":null,"tdp_w":null,'
        '"threads":null,"tvm":null,"vendor":null}'
    )
    assert _desc(minimal).content_hash() == hashlib.sha256(canonical.encode()).hexdigest()


def test_content_hash_is_stable_across_key_order_and_int_vs_float(minimal, write_yaml):
    minimal["clock_ghz"] = 2
    a = load_file(write_yaml(minimal, "a.yaml"))
    reordered = dict(reversed(list(minimal.items())))
    reordered["clock_ghz"] = 2.0
    b = load_file(write_yaml(reordered, "b.yaml"))
    assert a.content_hash() == b.content_hash()
    assert hash(a) == hash(b)


@pytest.mark.parametrize(
    "key,value",
    [("clock_ghz", 1.5), ("runtime_version", "2.1"), ("threads", 4), ("batch_size", 8), ("precision", None),
     ("memory", {"bandwidth_gbps": 12.8})],
)
def test_content_hash_changes_with_any_spec(minimal, key, value):
    before = _desc(minimal).content_hash()
    minimal[key] = value
    assert _desc(minimal).content_hash() != before


def test_content_hash_changes_with_the_tvm_target(minimal):
    minimal.update(runtime="tvm", threads=1, tvm={"target": {"kind": "llvm"}, "tuned": False})
    generic = _desc(minimal).content_hash()
    minimal["tvm"]["target"]["mcpu"] = "znver3"
    assert _desc(minimal).content_hash() != generic


def test_content_hash_ignores_documentation_fields(minimal):
    before = _desc(minimal).content_hash()
    minimal.update(notes="measured on a Tuesday", sources=["somewhere"], aliases=["lab:board"])
    assert _desc(minimal).content_hash() == before
    minimal.update(peak_tops={"fp32": 1.0})
    with_peak = _desc(minimal).content_hash()
    minimal.update(derived=["peak_tops.fp32"])
    assert _desc(minimal).content_hash() == with_peak


# ------------------------------------------------------------------------ roofline inputs


def test_derived_lists_filled_roofline_fields(minimal):
    minimal.update(peak_tops={"fp32": 0.5}, memory={"bandwidth_gbps": 25.6},
                   derived=["peak_tops.fp32", "memory.bandwidth_gbps"])
    d = _desc(minimal)
    assert d.derived == ("peak_tops.fp32", "memory.bandwidth_gbps")
    assert TargetDescriptor.from_dict(d.to_dict()) == d


@pytest.mark.parametrize(
    "derived, match",
    [(["peak_tops.fp16"], r"field 'derived\[0\]': 'peak_tops.fp16' is marked derived but has no value"),
     (["memory.bandwidth_gbps"], r"field 'derived\[0\]': 'memory.bandwidth_gbps' is marked derived"),
     (["clock_ghz"], r"field 'derived\[0\]': expected one of peak_tops.fp64"),
     (["peak_tops.fp32", "peak_tops.fp32"], r"field 'derived\[1\]': duplicate entry")],
)
def test_derived_must_name_a_filled_roofline_field(minimal, derived, match):
    minimal.update(peak_tops={"fp32": 0.5}, derived=derived)
    with pytest.raises(TargetError, match=match):
        _desc(minimal)


@pytest.mark.parametrize(
    "precision, peaks, expected",
    [("fp32", {"fp32": 2.0}, 2e12),
     (None, {"fp32": 2.0, "fp16": 4.0}, 2e12),                    # unknown precision: fp32
     ("fp16", {"fp32": 2.0, "fp16": 4.0, "fp16_tensor": 64.0}, 4e12),  # vector rate, not tensor cores
     ("int8", {"fp32": 2.0}, None),                               # no int8 peak: unknown, not fp32
     ("fp16", {"fp16_tensor": 64.0}, None)],
)
def test_peak_flops_per_s_reads_the_precision(minimal, precision, peaks, expected):
    minimal.update(precision=precision, peak_tops=peaks)
    assert _desc(minimal).peak_flops_per_s() == expected


def test_memory_bandwidth_bytes_per_s(minimal):
    assert _desc(minimal).memory_bandwidth_bytes_per_s() is None
    minimal["memory"] = {"bandwidth_gbps": 25.6}
    assert _desc(minimal).memory_bandwidth_bytes_per_s() == pytest.approx(25.6e9)


def test_refines_accepts_filled_nulls_only(minimal):
    old = _desc(minimal)
    minimal.update(peak_tops={"fp32": 0.5}, memory={"bandwidth_gbps": 25.6, "type": "LPDDR4"},
                   notes="new note", sources=["a spec sheet"], derived=["peak_tops.fp32"])
    new = _desc(minimal)
    assert new.refines(old) and old.refines(old)
    assert not old.refines(new)                         # dropping known specs is not a refinement
    minimal["batch_size"] = 8
    assert not _desc(minimal).refines(old)              # a changed known field is another setting
    minimal.update(batch_size=1, peak_tops={"fp32": 0.6})
    assert not _desc(minimal).refines(new)              # a changed peak too


def test_refines_compares_the_tvm_target_whole(minimal):
    minimal.update(runtime="tvm", threads=1, tvm={"target": {"kind": "llvm"}, "tuned": False})
    generic = _desc(minimal)
    minimal["tvm"]["target"]["mcpu"] = "znver3"
    assert not _desc(minimal).refines(generic)


# ------------------------------------------------------------------------ text


def test_to_text_lists_known_specs_in_a_fixed_order(minimal):
    minimal.update(
        device_class="mobile-gpu",
        vendor="Qualcomm",
        model="Adreno 640",
        clock_ghz=0.585,
        memory={"type": "LPDDR4X", "size_gb": 6},
        runtime_version="2.1",
        runtime_backend="gpu-delegate",
        precision="fp16",
        threads=1,
    )
    assert _desc(minimal).to_text() == (
        "mobile GPU Qualcomm Adreno 640, 0.585 GHz, 6 GB LPDDR4X; TFLite 2.1 (gpu-delegate), fp16, batch 1, 1 thread"
    )


def test_to_text_spells_out_unknown_precision_and_batch(minimal):
    minimal.update(precision=None, batch_size=None, runtime=None)
    assert _desc(minimal).to_text().endswith("; unknown runtime, unknown precision, batch unknown")


def test_to_text_labels_untuned_tvm(minimal):
    minimal.update(runtime="tvm", runtime_version="0.27", threads=1, tvm={"target": {"kind": "llvm"}, "tuned": False})
    assert "TVM untuned 0.27, target kind=llvm" in _desc(minimal).to_text()


# ------------------------------------------------------------------------ features


def test_feature_vector_layout(minimal):
    values, mask = _desc(minimal).to_features()
    assert len(values) == len(mask) == len(FEATURE_NAMES) == len(set(FEATURE_NAMES))
    assert FEATURE_NAMES[-1] == "tvm_tuned"


def test_log_features_follow_the_documented_formula(minimal):
    minimal.update(clock_ghz=0.6, batch_size=32, cache={"l3_kib_total": 0}, threads=512)
    values, mask = _desc(minimal).to_features()
    f = dict(zip(FEATURE_NAMES, values))
    m = dict(zip(FEATURE_NAMES, mask))
    assert f["log_clock_ghz"] == pytest.approx(math.log10(6) / math.log10(60))  # range [0.1, 6]
    assert f["log_batch_size"] == pytest.approx(0.5)  # log2(32) / log2(1024)
    assert f["log_threads"] == pytest.approx(math.log10(512) / math.log10(256))  # above hi: > 1, not clipped
    assert (f["log_l3_kib_total"], m["log_l3_kib_total"]) == (0.0, 1.0)  # a real zero is known
    assert (f["log_tdp_w"], m["log_tdp_w"]) == (0.0, 0.0)  # unknown


def test_one_hot_groups_and_their_masks(minimal):
    minimal.update(precision=None)
    values, mask = _desc(minimal).to_features()
    f = dict(zip(FEATURE_NAMES, values))
    m = dict(zip(FEATURE_NAMES, mask))
    assert [c for c in DEVICE_CLASSES if f[f"device_class={c}"] == 1.0] == ["embedded-cpu"]
    assert all(m[f"device_class={c}"] == 1.0 for c in DEVICE_CLASSES)
    assert all(f[f"precision={p}"] == 0.0 and m[f"precision={p}"] == 0.0 for p in PRECISIONS)
    assert [r for r in RUNTIMES if f[f"runtime={r}"] == 1.0] == ["tflite"]
    assert (f["tvm_tuned"], m["tvm_tuned"]) == (0.0, 0.0)


def test_fp16_feature_takes_the_larger_of_vector_and_tensor_peaks(minimal):
    minimal["peak_tops"] = {"fp16": 10.0, "fp16_tensor": 100.0}
    f = dict(zip(FEATURE_NAMES, _desc(minimal).to_features()[0]))
    assert f["log_peak_fp16_tops"] == pytest.approx((math.log10(100.0) + 3) / 6)  # range [1e-3, 1e3]
