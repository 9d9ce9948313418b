"""The committed tuning-record database and the program-level checkpoint trained on it: the records
cover the whole workload suite on both tuned targets as the manifest says, and the shipped checkpoint orders
schedules it never saw better than chance (so a featurizer or checkpoint change that breaks it fails here)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from cost_model.metrics import pairwise_accuracy
from cost_model.predictor import LatencyPredictor
from cost_model.training import load_latency_data, load_run_config
from cost_model.tuning_records import ProgramRecord, read_tuning_records
from tvm_ledg.tuning import PROGRAM_CHECKPOINT, list_workloads
from tvm_ledg.tuning.program import BLOCK_OP, LOOP_OPS

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "datasets" / "tuning-records.jsonl.gz"
MANIFEST = ROOT / "datasets" / "tuning-records.manifest.json"
TUNED_TARGETS = {"local-zen3-tvm-tuned-znver3-t1", "local-zen3-tvm-tuned-znver3-t2"}


@pytest.fixture(scope="module")
def records() -> list[ProgramRecord]:
    return read_tuning_records(RECORDS)


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads(MANIFEST.read_text())


def test_records_cover_every_suite_workload_on_both_tuned_targets(records: list[ProgramRecord], manifest: dict) -> None:
    per_pair: dict[tuple[str, str], int] = defaultdict(int)
    for r in records:
        per_pair[(r.workload, r.target)] += 1
    assert set(per_pair) == {(w, t) for w in list_workloads() for t in TUNED_TARGETS}
    assert min(per_pair.values()) >= 100  # 128 trials each; a few candidates may fail to build or run
    assert manifest["records"] == len(records)
    assert {(p["workload"], p["target"]): p["measured"] for p in manifest["pairs"]} == per_pair


def test_each_record_is_a_scheduled_program_with_its_best_time_in_the_manifest(records: list[ProgramRecord],
                                                                               manifest: dict) -> None:
    best: dict[tuple[str, str], float] = {}
    for r in records:
        ops = {n.op for n in r.graph.nodes}
        assert BLOCK_OP in ops and ops & set(LOOP_OPS), (r.workload, ops)
        key = (r.workload, r.target)
        best[key] = min(best.get(key, np.inf), r.mean_run_secs * 1e3)
    for pair in manifest["pairs"]:
        assert best[(pair["workload"], pair["target"])] == pytest.approx(pair["best_ms"], rel=1e-9)


def test_shipped_program_checkpoint_orders_held_out_schedules_better_than_chance(
        records: list[ProgramRecord], monkeypatch: pytest.MonkeyPatch) -> None:
    """Pairwise accuracy within each (workload, target) on the config's test split, which it was not trained on."""
    monkeypatch.chdir(ROOT)  # the config names its records relative to the repository root
    data = load_latency_data(load_run_config(ROOT / "examples" / "configs" / "ledg-program.yaml"))
    workload_of = {r.graph.content_hash(): r.workload for r in records}
    rows = data.rows["test"]
    predicted = LatencyPredictor.from_pretrained(PROGRAM_CHECKPOINT).predict(data.graphs, data.targets,
                                                                     [(a, t) for a, t, _ in rows])
    groups: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for (arch, target, ms), pred in zip(rows, predicted):
        groups[(workload_of[arch], target)].append((ms, float(pred)))
    accuracies = [pairwise_accuracy(*np.array(pairs).T) for pairs in groups.values() if len(pairs) >= 5]
    assert len(accuracies) >= 20
    assert np.mean(accuracies) > 0.65  # 0.77 when shipped; random order scores 0.5
