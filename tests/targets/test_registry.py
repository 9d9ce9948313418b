"""The shipped descriptors and name / alias / path resolution."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import pytest
import yaml

from targets import registry
from targets.errors import TargetError
from targets.registry import DESCRIPTOR_DIR, TargetRegistry, load, load_file
from targets.schema import FEATURE_NAMES, TargetDescriptor

SHIPPED = sorted(DESCRIPTOR_DIR.glob("*.yaml"))
NAMES = [p.stem for p in SHIPPED]

# Every device setting of /work/shared/data (its README), written out independently of the YAMLs.
HELP_NB201 = [
    *(f"{gpu}_{b}" for gpu in ("1080ti", "2080ti", "titanx", "titanxp") for b in (1, 32, 256)),
    "gold_6240", "silver_4114", "silver_4210r", "pixel3", "samsung_a50", "samsung_s7", "essential_ph_1",
]
HELP_OFA = [f"{gpu}_{b}" for gpu in ("2080ti", "titan_rtx", "titan_xp", "v100") for b in (1, 32, 64)]
ONEPROXY = [
    "true_a76", "true_630", "true_640", "true_vpu", "eagle_gtx", "eagle_i7", "eagle_jetson", "eagle_jetson_16",
    "eagle_tpu", "eagle_cpu_855", "eagle_gpu_855", "eagle_dsp_855", "rice_edgegpu", "rice_edgetpu", "rice_pixel3",
]
UPSTREAM = [f"help:{d}" for d in HELP_NB201] + [f"help-ofa:{d}" for d in HELP_OFA] + [f"oneproxy:{d}" for d in ONEPROXY]

LOCAL = [
    "local-zen3-tvm-untuned-generic", "local-zen3-tvm-untuned-znver3", "local-zen3-tvm-tuned-znver3-t1",
    "local-zen3-tvm-tuned-znver3-t2", "local-zen3-onnxruntime-t1", "local-zen3-onnxruntime-t2",
    "local-zen3-pytorch-t1", "local-zen3-pytorch-t2",
]


def _data_root() -> Path:
    env = os.environ.get("TVM_LEDG_DATA_ROOT")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"


# ------------------------------------------------------------------------ shipped files


def test_registry_lists_every_shipped_file():
    assert registry.list_names() == NAMES
    assert len(NAMES) >= len(LOCAL) + 30


@pytest.mark.parametrize("path", SHIPPED, ids=NAMES)
def test_shipped_descriptor_validates_and_is_documented(path):
    d = load_file(path)
    assert d.name == path.stem
    assert d.sources, "every shipped spec needs a source"
    assert d.notes, "say where the setting comes from and what is unknown"
    raw = yaml.safe_load(path.read_text())
    assert set(raw) == set(d.to_dict()), "shipped files spell out every field (null = unknown)"


@pytest.mark.parametrize("path", SHIPPED, ids=NAMES)
def test_shipped_descriptor_loads_by_name_alias_and_path(path):
    by_path = load(path)
    by_str_path = load(str(path))
    by_name = load(path.stem)
    assert by_path == by_name == by_str_path
    for alias in by_name.aliases:
        assert load(alias) == by_name
        assert registry.resolve(alias) == by_name.name


def test_names_and_aliases_are_globally_unique():
    keys = []
    for path in SHIPPED:
        d = load_file(path)
        keys += [d.name, *d.aliases]
    assert len(keys) == len(set(keys))
    assert len(registry.aliases()) == len(keys) - len(NAMES)


@pytest.mark.parametrize("alias", UPSTREAM)
def test_every_upstream_data_file_has_a_target(alias):
    d = load(alias)
    device = alias.split(":", 1)[1]
    batch = re.fullmatch(r"(?:1080ti|2080ti|titanx|titanxp|titan_rtx|titan_xp|v100)_(\d+)", device)
    if batch:  # HELP GPU files: the suffix is the batch size
        assert d.batch_size == int(batch.group(1))
        assert d.runtime == "pytorch" and d.device_class.endswith("gpu")
    if device.startswith(("gold_", "silver_")):
        assert d.runtime == "pytorch" and d.device_class == "server-cpu"


def test_known_equalities_and_caveats():
    assert load("help:pixel3") == load("oneproxy:rice_pixel3")  # same measurements upstream
    assert load("help:2080ti_1") == load("help-ofa:2080ti_1")
    assert load("oneproxy:eagle_jetson").precision == "fp32"
    assert load("oneproxy:eagle_jetson_16").precision == "fp16"
    assert load("oneproxy:eagle_gtx") != load("oneproxy:eagle_i7")
    for alias in ("oneproxy:eagle_gtx", "oneproxy:eagle_i7"):
        assert "mislabeled" in load(alias).notes
    assert load("help:titanx_1").microarchitecture is None  # Maxwell or Pascal: unresolved


@pytest.mark.data
def test_every_file_in_the_data_root_resolves():
    root = _data_root()
    if not root.is_dir():
        pytest.skip(f"public data not found at {root}")
    files = {
        "help": sorted((root / "HELP/data/nasbench201/latency").glob("*.pt")),
        "help-ofa": sorted((root / "HELP/data/ofa/latency").glob("*.pt")),
        "oneproxy": sorted((root / "OneProxy/latency_data").glob("*.pickle")),
    }
    assert all(files.values()), f"unexpected layout under {root}"
    missing = [f"{prefix}:{f.stem}" for prefix, fs in files.items() for f in fs
               if f"{prefix}:{f.stem}" not in registry.aliases()]
    assert not missing


def test_local_targets_describe_this_machine():
    for name in LOCAL:
        d = load(name)
        assert d.microarchitecture == "Zen 3" and d.compute_units == 2
        assert d.precision == "fp32" and d.batch_size == 1
    generic, znver3 = load(LOCAL[0]), load(LOCAL[1])
    assert dict(generic.tvm.target) == {"kind": "llvm"} and not generic.tvm.tuned and generic.threads == 1
    assert dict(znver3.tvm.target) == {"kind": "llvm", "mcpu": "znver3"} and not znver3.tvm.tuned
    assert "TVM untuned" in generic.to_text() and "TVM untuned" in znver3.to_text()
    for t in (1, 2):
        tuned = load(f"local-zen3-tvm-tuned-znver3-t{t}")
        assert tuned.tvm.tuned and tuned.tvm.tuner == "metaschedule" and tuned.tvm.target["num-cores"] == t == tuned.threads
        assert load(f"local-zen3-onnxruntime-t{t}").threads == t
        assert load(f"local-zen3-pytorch-t{t}").threads == t


# ------------------------------------------------------------------------ model inputs of shipped targets


_LOG_SOURCES = {
    "log_compute_units": lambda d: d.compute_units,
    "log_shading_units": lambda d: d.shading_units,
    "log_hw_threads": lambda d: d.hw_threads,
    "log_clock_ghz": lambda d: d.clock_ghz,
    "log_peak_fp32_tops": lambda d: d.peak_tops.get("fp32"),
    "log_peak_fp16_tops": lambda d: d.peak_tops.get("fp16") or d.peak_tops.get("fp16_tensor"),
    "log_peak_int8_tops": lambda d: d.peak_tops.get("int8"),
    "log_memory_size_gb": lambda d: d.memory.size_gb,
    "log_memory_bandwidth_gbps": lambda d: d.memory.bandwidth_gbps,
    "log_l1d_kib_per_unit": lambda d: d.cache.l1d_kib_per_unit,
    "log_l2_kib_total": lambda d: d.cache.l2_kib_total,
    "log_l3_kib_total": lambda d: d.cache.l3_kib_total,
    "log_tdp_w": lambda d: d.tdp_w,
    "log_batch_size": lambda d: d.batch_size,
    "log_threads": lambda d: d.threads,
}


@pytest.mark.parametrize("name", NAMES)
def test_features_are_finite_and_masked_exactly_where_specs_are_null(name):
    d = load(name)
    values, mask = d.to_features()
    assert len(values) == len(mask) == len(FEATURE_NAMES)
    assert all(math.isfinite(v) for v in values)
    assert set(mask) <= {0.0, 1.0}
    assert all(v == 0.0 for v, m in zip(values, mask) if m == 0.0)
    m = dict(zip(FEATURE_NAMES, mask))
    assert set(_LOG_SOURCES) == {n for n in FEATURE_NAMES if n.startswith("log_")}
    for feature, source in _LOG_SOURCES.items():
        assert m[feature] == (0.0 if source(d) is None else 1.0), feature
    assert m["precision=fp32"] == (0.0 if d.precision is None else 1.0)
    assert m["runtime=tvm"] == (0.0 if d.runtime is None else 1.0)


@pytest.mark.parametrize("name", NAMES)
def test_text_is_deterministic_and_names_model_runtime_precision_batch(name):
    a, b = load_file(DESCRIPTOR_DIR / f"{name}.yaml"), load_file(DESCRIPTOR_DIR / f"{name}.yaml")
    text = a.to_text()
    assert text == b.to_text()
    assert a.model in text
    runtime_words = {"pytorch": "PyTorch", "tensorflow": "TensorFlow", "tflite": "TFLite", "tensorrt": "TensorRT",
                     "openvino": "OpenVINO", "onnxruntime": "ONNX Runtime", "tvm": "TVM", None: "unknown runtime"}
    assert runtime_words[a.runtime] in text
    assert (a.precision or "unknown precision") in text
    assert (f"batch {a.batch_size}" if a.batch_size else "batch unknown") in text
    assert a.content_hash() == b.content_hash()


def test_hashes_of_shipped_targets_are_distinct():
    hashes = [load(n).content_hash() for n in NAMES]
    assert len(set(hashes)) == len(hashes)


# ------------------------------------------------------------------------ user files and registries


def test_user_yaml_by_path(tmp_path, minimal, write_yaml, monkeypatch):
    path = write_yaml(minimal, "my_board.yml")
    assert load(path).name == "test-board"
    monkeypatch.chdir(tmp_path)
    assert load("my_board.yml") == load(path)  # relative path, recognized by its suffix


def test_to_yaml_output_loads_back(tmp_path):
    d = load("local-zen3-tvm-tuned-znver3-t2")
    path = tmp_path / "copy.yaml"
    path.write_text(d.to_yaml())
    assert load(path) == d


def test_unknown_name_suggests_close_matches():
    with pytest.raises(TargetError, match=r"unknown target 'help:1080ti_2'.*did you mean.*'help:1080ti_1'"):
        load("help:1080ti_2")


def test_registry_rejects_duplicate_aliases(tmp_path, minimal):
    for name in ("board-a", "board-b"):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump({**minimal, "name": name, "aliases": ["lab:x"]}))
    with pytest.raises(TargetError, match=r"board-b\.yaml: 'lab:x' is already used by target 'board-a'"):
        TargetRegistry(tmp_path).list_names()


def test_registry_requires_file_name_to_match_target_name(tmp_path, minimal):
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(minimal))
    with pytest.raises(TargetError, match=r"other\.yaml: field 'name': 'test-board' must match the file name"):
        TargetRegistry(tmp_path).list_names()


def test_registry_of_a_missing_directory(tmp_path):
    with pytest.raises(TargetError, match="directory not found"):
        TargetRegistry(tmp_path / "absent").list_names()


def test_exponent_numbers_read_as_numbers(write_yaml, minimal):
    text = yaml.safe_dump(minimal) + "clock_ghz: 1.5e0\nmemory: {bandwidth_gbps: 2e1, size_gb: 4E-0}\n"
    d = load_file(write_yaml(text))
    assert (d.clock_ghz, d.memory.bandwidth_gbps, d.memory.size_gb) == (1.5, 20.0, 4.0)
    numeric_name = TargetDescriptor.from_dict({**minimal, "model": "1e9"})
    assert load_file(write_yaml(numeric_name.to_yaml())) == numeric_name  # to_yaml quotes it


@pytest.mark.parametrize("nested", ["[" * 5000 + "]" * 5000, "".join(f"\n{' ' * (i + 1)}k{i}:" for i in range(5000))],
                         ids=["flow", "block"])
def test_deeply_nested_yaml_is_a_target_error(write_yaml, nested):
    path = write_yaml(f"name: {nested}\n")
    with pytest.raises(TargetError, match=rf"{re.escape(str(path))}: invalid YAML: .*nested too deeply"):
        load_file(path)
