"""The SQLite measurement store: unique keys, export/import, validation, what training reads."""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

import pytest

import targets
from cost_model.graph import OpGraph, OpNode, TensorSpec
from cost_model.measurement_store import Measurement, MeasurementStore
from targets.errors import ArgumentError, DataError, OutputError


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


def test_a_refined_descriptor_resumes_under_the_stored_hash(filled: MeasurementStore) -> None:
    old = targets.load("local-zen3-onnxruntime-t1")
    stored = old.content_hash()
    refined = dataclasses.replace(old, tdp_w=999.0) if old.tdp_w is None else None
    assert refined is not None and refined.refines(old) and refined.content_hash() != stored
    assert filled.add_target(refined) == stored  # same setting: "a" is not measured again
    assert filled.has_measurement("a", filled.add_target(refined), "p1")
    other = dataclasses.replace(old, threads=2)  # a changed (not filled-in) field is another setting
    assert filled.add_target(other) == other.content_hash() != stored


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
    cut = _write(tmp_path / "cut.jsonl.gz", _lines(tmp_path / "x.jsonl.gz")[:-1])
    with pytest.raises(DataError, match="cut.jsonl.gz: ends at line .* without its end record"):
        load_latency_data(load_run_config({"data": {"sources": [], "measured": [str(cut)]}}))


def _lines(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return f.read().splitlines()


def _write(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))
    return path


def _exported(store: MeasurementStore, path: Path) -> list[str]:
    store.export_jsonl(path)
    return _lines(path)


def _edited(filled: MeasurementStore, tmp_path: Path, kind: str, changes: dict[str, object]) -> tuple[Path, int]:
    """An export of ``filled`` whose last ``kind`` record has ``changes`` (``None`` sets null; the ``_drop``
    key removes a field); returns the file and the edited line number."""
    lines = _exported(filled, tmp_path / "whole.jsonl.gz")
    n = max(i for i, line in enumerate(lines) if json.loads(line)["kind"] == kind)
    rec = json.loads(lines[n])
    changes = dict(changes)
    rec.pop(str(changes.pop("_drop", "")), None)
    rec.update(changes)
    lines[n] = json.dumps(rec)
    return _write(tmp_path / "edited.jsonl.gz", lines), n + 1


def _counts(store: MeasurementStore) -> tuple[int, ...]:
    s = store.stats()
    return s["graphs"], s["networks"], s["targets"], s["measurements"], sum(s["failures"].values())


@pytest.mark.parametrize(("kind", "changes", "message"), [
    ("measurement", {"median_ms": None}, "measurement field 'median_ms' is null, expected a finite number > 0"),
    ("measurement", {"median_ms": float("nan")}, "field 'median_ms' is nan, expected a finite number"),
    ("measurement", {"median_ms": "abc"}, "field 'median_ms' is 'abc', expected a finite number > 0"),
    ("measurement", {"median_ms": -5}, "field 'median_ms' is -5, expected a finite number > 0"),
    ("measurement", {"min_ms": 1e9}, "field 'min_ms' is 1000000000.0, above 'median_ms'"),
    ("measurement", {"runs": 2.5}, "field 'runs' is 2.5, expected an integer >= 1"),
    ("measurement", {"runs": True}, "field 'runs' is True"),
    ("measurement", {"environment": []}, "field 'environment' is \\[\\], expected a JSON object"),
    ("measurement", {"_drop": "cv"}, "measurement field 'cv' is missing"),
    ("measurement", {"latency": 1.0}, "unknown field 'latency'"),
    ("measurement", {"target_hash": "0" * 64}, "field 'target_hash' names target 0+, which is neither in the export"),
    ("measurement", {"graph_hash": "feed"}, "field 'graph_hash' names graph feed, which is neither"),
    ("network", {"numerics_ok": "yes"}, "network field 'numerics_ok' is 'yes', expected true, false, 1 or 0"),
    ("network", {"graph_hash": "feed"}, "network field 'graph_hash' names graph feed"),
    ("failure", {"target_hash": "beef"}, "failure field 'target_hash' names target beef"),
    ("failure", {"protocol": ""}, "failure field 'protocol' is '', expected a non-empty string"),
    ("graph", {"hash": "feed"}, "graph field 'hash' feed does not match its content"),
    ("graph", {"graph": {"edges": []}}, "not an operator graph"),
    ("target", {"descriptor": {"name": "t"}}, "field 'schema_version': missing required field"),
    ("measurement", {"kind": "measurment"}, "unknown record kind 'measurment'"),
])
def test_import_checks_every_field_and_writes_nothing_on_error(filled: MeasurementStore, tmp_path: Path, kind: str,
                                                               changes: dict[str, object], message: str) -> None:
    """Each bad value is refused with file:line and the field; the store is left as it was (one transaction,
    checked before anything is written), also when the bad record comes after good ones."""
    bad, line = _edited(filled, tmp_path, kind, changes)
    fresh = MeasurementStore(tmp_path / "fresh.sqlite")
    with pytest.raises(DataError, match=f"^{bad}:{line}: .*{message}"):
        fresh.import_jsonl(bad)
    assert _counts(fresh) == (0, 0, 0, 0, 0)
    before = _counts(filled)
    with pytest.raises(DataError, match=f"{bad}:{line}"):
        filled.import_jsonl(bad)
    assert _counts(filled) == before


def test_a_renamed_target_cannot_relabel_measurements(filled: MeasurementStore, tmp_path: Path) -> None:
    """The target hash is recomputed from the descriptor: an edited name (same hash) is refused."""
    lines = _exported(filled, tmp_path / "x.jsonl.gz")
    renamed = [line.replace('"name":"local-zen3-pytorch-t1"', '"name":"local-zen3-pytorch-t9"') for line in lines]
    assert renamed != lines
    with pytest.raises(DataError, match=r"renamed.jsonl.gz:\d+: target field 'hash' \w+ does not match the "
                                        "descriptor of 'local-zen3-pytorch-t9'"):
        MeasurementStore(tmp_path / "t.sqlite").import_jsonl(_write(tmp_path / "renamed.jsonl.gz", renamed))


def test_references_may_point_into_the_store(filled: MeasurementStore, tmp_path: Path) -> None:
    """An export holding only measurements imports into a store that has their graphs and targets."""
    lines = _exported(filled, tmp_path / "x.jsonl.gz")
    kept = [line for line in lines[1:-1] if json.loads(line)["kind"] == "measurement"]
    counts = {"graph": 0, "target": 0, "network": 0, "measurement": len(kept), "failure": 0}
    end = json.dumps({"kind": "end", "counts": counts})
    part = _write(tmp_path / "part.jsonl.gz", [lines[0], *kept, end])
    with pytest.raises(DataError, match="part.jsonl.gz:2: measurement field 'graph_hash' names graph"):
        MeasurementStore(tmp_path / "empty.sqlite").import_jsonl(part)
    other = MeasurementStore(tmp_path / "other.sqlite")
    other.import_jsonl(_write(tmp_path / "base.jsonl.gz", [lines[0], *(
        line for line in lines[1:-1] if json.loads(line)["kind"] in ("graph", "target")), json.dumps(
        {"kind": "end", "counts": counts | {"graph": 3, "target": 2, "measurement": 0}})]))
    assert other.import_jsonl(part) == counts


def test_a_cut_or_padded_export_is_refused(filled: MeasurementStore, tmp_path: Path) -> None:
    lines = _exported(filled, tmp_path / "x.jsonl.gz")
    assert json.loads(lines[-1]) == {"kind": "end", "counts": {"graph": 3, "target": 2, "network": 3,
                                                               "measurement": 6, "failure": 1}}
    store = MeasurementStore(tmp_path / "t.sqlite")
    for name, cut, message in [
        ("prefix", lines[:-3], f"prefix.jsonl.gz: ends at line {len(lines) - 3} without its end record: the file "
                               "was cut short"),
        ("dropped", lines[:-3] + lines[-2:], f"dropped.jsonl.gz:{len(lines) - 1}: the end record counts 6 "
                                             "measurement records, the file holds 5"),
        ("padded", lines + lines[-2:-1], f"padded.jsonl.gz:{len(lines)}: 1 more lines after the end record"),
        ("headless", lines[1:], "headless.jsonl.gz:1: not a tvm-ledg export"),
        ("empty", [], "empty.jsonl.gz: empty file"),
        ("older", ['{"kind": "meta", "store_version": 1}', *lines[1:-1]],
         "older.jsonl.gz: written by an older tvm-ledg, without the end record .*export it again"),
        ("twice", lines[:2] + lines[1:], "twice.jsonl.gz:3: graph \\w+ appears twice \\(first on line 2\\)"),
    ]:
        with pytest.raises(DataError, match=message):
            store.import_jsonl(_write(tmp_path / f"{name}.jsonl.gz", cut))
    (tmp_path / "plain.jsonl.gz").write_text("\n".join(lines))
    raw = (tmp_path / "x.jsonl.gz").read_bytes()
    (tmp_path / "torn.jsonl.gz").write_bytes(raw[:len(raw) // 2])
    for name in ("plain", "torn", "missing"):
        with pytest.raises(DataError, match=f"{name}.jsonl.gz: cannot read a gzip JSON-lines export"):
            store.import_jsonl(tmp_path / f"{name}.jsonl.gz")
    assert _counts(store) == (0, 0, 0, 0, 0)


def test_export_is_atomic_and_replaces_only_when_asked(filled: MeasurementStore, tmp_path: Path) -> None:
    out = tmp_path / "out" / "x.jsonl.gz"
    filled.export_jsonl(out)
    first = out.read_bytes()
    out.write_bytes(b"the user's file")
    with pytest.raises(ArgumentError, match="x.jsonl.gz: already exists .*--force"):
        filled.export_jsonl(out)
    assert out.read_bytes() == b"the user's file"
    filled.export_jsonl(out, replace=True)
    assert out.read_bytes() == first  # reproducible: no time stamp, no temporary name in the gzip header
    assert sorted(p.name for p in out.parent.iterdir()) == ["x.jsonl.gz"]  # no temporary file left


def test_a_failed_export_leaves_nothing(filled: MeasurementStore, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("cost_model.measurement_store.os.fsync", broken)
    with pytest.raises(OutputError, match=r"x.jsonl.gz: cannot write the export \(disk full\)"):
        filled.export_jsonl(tmp_path / "out" / "x.jsonl.gz")
    assert list((tmp_path / "out").iterdir()) == []
    with pytest.raises(ArgumentError, match="out: is a directory"):
        filled.export_jsonl(tmp_path / "out", replace=True)
