"""Program tuning records: gzip JSON-lines round trip, validation with file:line errors, training rows."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from cost_model.graph import OpGraph, OpNode, TensorSpec
from cost_model.training import load_latency_data, load_run_config
from cost_model.tuning_records import (
    ProgramRecord,
    read_tuning_records,
    training_rows,
    write_tuning_records,
)
from targets.errors import DataError

T1, T2 = "local-zen3-tvm-tuned-znver3-t1", "local-zen3-tvm-tuned-znver3-t2"


def _program(extent: int) -> OpGraph:
    loop = OpNode(0, "tir.loop.parallel", attrs={"extent": extent}, outputs=[TensorSpec((extent,), "int32")])
    block = OpNode(1, "tir.block", attrs={"iters": "SSR"}, inputs=[TensorSpec((64, 64), "float32")],
                   outputs=[TensorSpec((64, 64), "float32")], flops=2 * 64 ** 3)
    return OpGraph(nodes=[loop, block], edges=[(0, 1)], output_nodes=[1], meta={"kind": "tir-program"})


def _records() -> list[ProgramRecord]:
    return [ProgramRecord("mm", T1, _program(8), (1e-3, 3e-3)), ProgramRecord("mm", T2, _program(16), (5e-4,)),
            ProgramRecord("mm", T2, _program(8), (2e-3,))]


def test_round_trip_keeps_everything_and_is_compact_and_deterministic(tmp_path: Path):
    path = tmp_path / "records.jsonl.gz"
    assert write_tuning_records(path, _records()) == 3
    back = read_tuning_records(path)
    assert [(r.workload, r.target, r.run_secs) for r in back] == [(r.workload, r.target, r.run_secs)
                                                                    for r in _records()]
    assert [r.graph.content_hash() for r in back] == [r.graph.content_hash() for r in _records()]
    assert back[0].mean_run_secs == pytest.approx(2e-3)
    first = path.read_bytes()
    write_tuning_records(path, _records())
    assert path.read_bytes() == first  # gzip without a timestamp: the committed file only changes with its data
    assert gzip.decompress(first).splitlines()[-1] == b'{"kind":"end","records":3}'


def test_training_rows_key_graphs_by_content_hash_in_ms():
    graphs, rows = training_rows(_records())
    assert len(graphs) == 2  # the extent-8 program on both targets is one graph
    assert rows[0] == (_program(8).content_hash(), T1, pytest.approx(2.0))
    assert {r[1] for r in rows} == {T1, T2} and all(k in graphs for k, _, _ in rows)


def test_failed_run_times_are_rejected_with_the_record_named():
    with pytest.raises(DataError, match="'mm' on 'x': run_secs must be finite and positive"):
        ProgramRecord("mm", "x", _program(8), (0.0,))
    with pytest.raises(DataError, match="finite and positive"):
        ProgramRecord("mm", "x", _program(8), ())


def test_malformed_files_name_the_file_and_line(tmp_path: Path):
    with pytest.raises(DataError, match="no such tuning-records file"):
        read_tuning_records(tmp_path / "missing.jsonl.gz")
    plain = tmp_path / "plain.jsonl.gz"
    plain.write_text("{}\n")
    with pytest.raises(DataError, match="not a gzip JSON-lines file"):
        read_tuning_records(plain)
    good = _records()[0].to_json()
    for line, message in [("{", "invalid JSON"), (json.dumps({**good, "format_version": 9}), "format_version 9"),
                          (json.dumps({**good, "graph": {"nodes": []}}), "malformed tuning record")]:
        path = tmp_path / "bad.jsonl.gz"
        path.write_bytes(gzip.compress((json.dumps(good) + "\n" + line + "\n").encode()))
        with pytest.raises(DataError, match=f"bad.jsonl.gz:2: .*{message}"):
            read_tuning_records(path)


def test_a_cut_or_padded_file_is_refused(tmp_path: Path):
    """The end record's count guards against a file cut at a line boundary (which gzip and JSON accept)."""
    path = tmp_path / "records.jsonl.gz"
    write_tuning_records(path, _records())
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    for name, kept, message in [
        ("cut", lines[:2], "cut.jsonl.gz: ends at line 2 without its end record: the file was cut short"),
        ("older", lines[:3], "older.jsonl.gz: ends at line 3 without its end record.*write it again"),
        ("dropped", lines[:2] + lines[3:], "dropped.jsonl.gz:3: the end record counts 3 records, the file holds 2"),
        ("padded", lines + lines[:1], "padded.jsonl.gz:4: lines after the end record"),
    ]:
        bad = tmp_path / f"{name}.jsonl.gz"
        bad.write_bytes(gzip.compress(("\n".join(kept) + "\n").encode()))
        with pytest.raises(DataError, match=message):
            read_tuning_records(bad)


def test_training_config_reads_tuning_records_without_a_graph_store(tmp_path: Path):
    records = [ProgramRecord(f"w{i % 3}", (T1, T2)[i % 2], _program(4 + i), (1e-3 * (1 + i),)) for i in range(40)]
    path = tmp_path / "records.jsonl.gz"
    write_tuning_records(path, records)
    data = load_latency_data(load_run_config({"data": {"sources": [], "tuning_records": [str(path)]}}))
    rows = [r for split in ("train", "val", "test") for r in data.rows[split]]
    assert len(rows) == 40 and set(data.targets) == {T1, T2}
    assert all(key in data.graphs for key, _, _ in rows)
    assert sorted(r[2] for r in rows) == pytest.approx([1.0 * (1 + i) for i in range(40)])
    with pytest.raises(DataError, match="data.tuning_records names .*nope.jsonl.gz, which does not exist"):
        missing = str(tmp_path / "nope.jsonl.gz")
        load_latency_data(load_run_config({"data": {"sources": [], "tuning_records": [missing]}}))
