"""``predict_table``: the batched array API gives the one-at-a-time predictions, streams, and stores nothing."""

from __future__ import annotations

import csv
import random
import sys

import numpy as np
import pytest

from cost_model.graph import OpGraph
from tvm_ledg.networks import network_graph
from tvm_ledg.predict import PredictionTable, _RecentGraphs, load_predictor, predict_latency, predict_table
from tvm_ledg.spaces import nb201

from tiny_checkpoint import train_tiny_checkpoint

TARGETS = ["pixel3-tflite", "gtx1080ti-pytorch-fp32-b1"]


def _random_cells(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    ops = nb201.OPS
    specs: set[str] = set()
    while len(specs) < n:
        e = [rng.choice(ops) for _ in range(6)]
        specs.add(f"nb201:|{e[0]}~0|+|{e[1]}~0|{e[2]}~1|+|{e[3]}~0|{e[4]}~1|{e[5]}~2|")
    return sorted(specs)


SPECS = _random_cells(24, seed=19)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    graphs = {spec: network_graph(spec) for spec in SPECS[:4]}
    return train_tiny_checkpoint(graphs, TARGETS, tmp_path_factory.mktemp("ckpt") / "tiny", epochs=2)


def test_batched_table_equals_one_at_a_time_predictions(checkpoint, tmp_path):
    store = tmp_path / "graphs"
    done: list[tuple[int, int]] = []
    table = predict_table(SPECS, TARGETS, checkpoint=checkpoint, graph_store=store, chunk_models=5,
                          progress=lambda d, t: done.append((d, t)))
    assert table.latency_ms.shape == (len(SPECS), len(TARGETS))
    assert table.models == SPECS and table.targets == TARGETS
    load_predictor(checkpoint).feature_cache.clear()  # featurize again, from the graphs, one model at a time
    single = np.array([[p.latency_ms for p in predict_latency(spec, TARGETS, checkpoint=checkpoint,
                                                              graph_store=store)] for spec in SPECS])
    np.testing.assert_allclose(table.latency_ms, single, rtol=1e-5)
    assert len(set(np.round(table.latency_ms[:, 0], 6))) > 1  # the models are told apart
    assert done[-1] == (len(SPECS), len(SPECS)) and [d for d, _ in done] == sorted(d for d, _ in done)
    assert not store.exists()  # space strings from block templates are never written to the graph store


def test_records_csv_and_list_match_the_arrays(checkpoint, tmp_path):
    table = predict_table(SPECS[:3], TARGETS, checkpoint=checkpoint)
    records = table.records()
    assert len(records) == len(table) == 6
    assert [(r["model"], r["target"]) for r in records] == [(m, t) for m in SPECS[:3] for t in TARGETS]
    assert [r["latency_ms"] for r in records] == table.latency_ms.ravel().tolist()
    out = tmp_path / "p.csv"
    table.to_csv(out)
    with out.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["model", "target", "latency_ms", "std_log"]
    np.testing.assert_allclose([float(r["latency_ms"]) for r in rows], table.latency_ms.ravel(), rtol=1e-5)
    assert [p.latency_ms for p in table.predictions()] == table.latency_ms.ravel().tolist()


def test_to_pandas_without_pandas_names_the_missing_package(checkpoint, monkeypatch):
    table = PredictionTable(["m"], ["t"], np.ones((1, 1)), None, np.zeros(1, dtype=bool))
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas raises ImportError
    with pytest.raises(ImportError, match="needs pandas"):
        table.to_pandas()


def test_graphs_with_one_name_are_featurized_by_content(checkpoint):
    """A process-wide feature cache keyed by name would serve the second graph the first one's features."""
    first, second = (network_graph(spec) for spec in SPECS[:2])
    renamed = OpGraph.from_json({**second.to_json(), "name": first.name})
    a = predict_table([first], TARGETS, checkpoint=checkpoint).latency_ms
    b = predict_table([renamed], TARGETS, checkpoint=checkpoint).latency_ms
    c = predict_table([second], TARGETS, checkpoint=checkpoint).latency_ms
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(b, c)


def test_feature_cache_keeps_the_most_recent_graphs():
    cache = _RecentGraphs(3)
    for i in range(5):
        cache[str(i)] = i
    assert list(cache) == ["2", "3", "4"]


def test_cli_prints_small_tables_and_writes_large_ones(checkpoint, tmp_path, capsys):
    from tvm_ledg.cli import main

    listing = tmp_path / "many.txt"
    listing.write_text("\n".join(SPECS) + "\n")  # 24 models x 3 targets = 72 rows, over the printing limit
    three = [*TARGETS, "galaxy-a50-tflite"]
    base = ["predict", f"@{listing}", "-t", *three, "--checkpoint", str(checkpoint)]
    assert main([*base, "--csv", str(tmp_path / "p.csv"), "--json", str(tmp_path / "p.json")]) == 0
    out = capsys.readouterr()
    assert SPECS[0] not in out.out and "latency ms" not in out.out  # no row per model
    with (tmp_path / "p.csv").open(newline="") as f:
        assert len(list(csv.DictReader(f))) == 72
    import json

    assert len(json.loads((tmp_path / "p.json").read_text())) == 72
    assert main(base) == 0
    assert "72 predictions" in capsys.readouterr().err
    assert main([*base, "--show"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 73  # header + one row per prediction
    assert main(["predict", SPECS[0], "-t", *TARGETS, "--checkpoint", str(checkpoint)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_the_prediction_path_imports_neither_scipy_nor_tvm():
    """Both cost a cold `tvm-ledg predict` seconds; a space string needs neither."""
    import subprocess

    code = ("import sys; import tvm_ledg.cli, tvm_ledg.predict, cost_model.predictor, tvm_ledg.spaces.synth; "
            "print(sorted(m for m in ('scipy', 'tvm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
