"""The SQLite measurement store: unique keys, export/import, validation, what training reads."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

import targets
from cost_model.graph import OpGraph, OpNode, TensorSpec
from cost_model.measurement_store import Measurement, MeasurementStore
from targets.errors import DataError


def _graph(channels: int) -> OpGraph:
    t = TensorSpec((1, channels, 8, 8), "float32")
    nodes = [OpNode(0, "nn.relu", inputs=[t], outputs=[t], flops=t.numel),
             OpNode(1, "add", inputs=[t, t], outputs=[t], flops=t.numel)]
    return OpGraph(nodes=nodes, edges=[(0, 1)], output_nodes=[1], name=f"g{channels}")


def _measurement(spec: str, graph_hash: str, target_hash: str, ms: float, cv: float = 0.01) -> Measurement:
    return Measurement(spec, graph_hash, target_hash, "p1", ms, ms, ms * cv, ms * 0.9, cv, 10,
                       environment={"cpu": "test"})


@pytest.fixture
def filled(tmp_path: Path) -> MeasurementStore:
    store = MeasurementStore(tmp_path / "m.sqlite")
    t1 = store.add_target(targets.load("local-zen3-onnxruntime-t1"))
    t2 = store.add_target(targets.load("local-zen3-pytorch-t1"))
    for i, spec in enumerate(["a", "b", "c"]):
        g = store.add_graph(_graph(4 + i))
        store.add_network(spec, g, "test", numerics_ok=spec != "c", max_rel_err=0.0 if spec != "c" else 0.5)
        store.add_measurement(_measurement(spec, g, t1, 1.0 + i))
        store.add_measurement(_measurement(spec, g, t2, 2.0 + i))
    store.add_failure("d", t1, "p1", "build", "ModelImportError: bad")
    return store


def test_one_row_per_graph_target_protocol(filled: MeasurementStore) -> None:
    g = filled.graph_hash_of("a")
    t1 = targets.load("local-zen3-onnxruntime-t1").content_hash()
    assert not filled.add_measurement(_measurement("a", g, t1, 99.0))  # ignored, the first one stays
    assert filled.has_measurement("a", t1, "p1") and not filled.has_measurement("a", t1, "p2")
    assert [m.median_ms for m in filled.measurements() if m.spec == "a" and m.target_hash == t1] == [1.0]
    stats = filled.stats()
    assert stats["measurements"] == 6 and stats["numerics_flagged"] == 1 and stats["failures"] == {"build": 1}


def test_a_measurement_clears_an_earlier_failure(filled: MeasurementStore) -> None:
    t1 = targets.load("local-zen3-onnxruntime-t1").content_hash()
    g = filled.add_graph(_graph(9))
    filled.add_network("d", g, "test")
    assert filled.has_failure("d", t1, "p1")
    filled.add_measurement(_measurement("d", g, t1, 3.0))
    assert not filled.has_failure("d", t1, "p1")


def test_training_rows_leave_out_flagged_networks(filled: MeasurementStore) -> None:
    graphs, descs, rows = filled.training_rows()
    assert len(rows) == 4 and set(descs) == {"local-zen3-onnxruntime-t1", "local-zen3-pytorch-t1"}
    assert all(g in graphs and graphs[g].content_hash() == g for g, _, _ in rows)
    assert len(filled.training_rows(include_flagged=True)[2]) == 6


def test_export_import_round_trip(filled: MeasurementStore, tmp_path: Path) -> None:
    counts = filled.export_jsonl(tmp_path / "x.jsonl.gz")
    assert counts == {"graph": 3, "target": 2, "network": 3, "measurement": 6, "failure": 1}
    fresh = MeasurementStore(tmp_path / "fresh.sqlite")
    assert fresh.import_jsonl(tmp_path / "x.jsonl.gz") == counts
    assert fresh.import_jsonl(tmp_path / "x.jsonl.gz") == dict.fromkeys(counts, 0)
    assert sorted(fresh.training_rows()[2]) == sorted(filled.training_rows()[2])
    assert fresh.stats()["per_target"] == filled.stats()["per_target"]


def test_bad_files_are_refused_by_name(tmp_path: Path, filled: MeasurementStore) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database" * 100)
    with pytest.raises(DataError, match="junk.sqlite"):
        MeasurementStore(junk)
    with pytest.raises(DataError, match="no measurement store"):
        MeasurementStore(tmp_path / "missing.sqlite", readonly=True)
    bad = tmp_path / "bad.jsonl.gz"
    with gzip.open(bad, "wt") as f:
        f.write('{"kind": "measurement", "spec": "x"}\n')
    with pytest.raises(DataError, match="bad.jsonl.gz:1"):
        filled.import_jsonl(bad)
    export = tmp_path / "x.jsonl.gz"
    filled.export_jsonl(export)
    lines = gzip.open(export, "rt").read().splitlines()
    tampered = tmp_path / "tampered.jsonl.gz"
    with gzip.open(tampered, "wt") as f:  # a graph whose content no longer matches its hash
        f.write("\n".join(line.replace('"g4"', '"g4-changed"')
                          .replace("[1,4,8,8]", "[1,5,8,8]") for line in lines) + "\n")
    with pytest.raises(DataError, match="does not match"):
        MeasurementStore(tmp_path / "t.sqlite").import_jsonl(tampered)
    assert MeasurementStore(tmp_path / "t.sqlite").stats()["measurements"] == 0  # nothing half-imported


def test_training_config_reads_a_store_and_its_export(filled: MeasurementStore, tmp_path: Path) -> None:
    from cost_model.training import load_latency_data, load_run_config

    filled.export_jsonl(tmp_path / "x.jsonl.gz")
    for source in (filled.path, tmp_path / "x.jsonl.gz"):
        data = load_latency_data(load_run_config({"data": {"sources": [], "measured": [str(source)]}}))
        rows = [r for part in data.rows.values() for r in part]
        assert len(rows) == 4 and {r[1] for r in rows} == {"local-zen3-onnxruntime-t1", "local-zen3-pytorch-t1"}
        assert all(data.graphs[r[0]].content_hash() == r[0] for r in rows)
    with pytest.raises(DataError, match="does not exist"):
        load_latency_data(load_run_config({"data": {"sources": [], "measured": [str(tmp_path / "nope.sqlite")]}}))
