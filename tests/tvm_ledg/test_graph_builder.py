"""build_graphs: lowers what is missing, logs failures, and resumes without redoing work."""

import pytest

from cost_model.graph_store import GraphStore
from tvm_ledg.graph_builder import build_graphs

CELL = "nb201:|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
BAD = "nb201:|nor_conv_3x3~0|"


def test_build_resume_and_failure(tmp_path):
    store = GraphStore(tmp_path)
    calls = []
    report = build_graphs([CELL, BAD, CELL], store, progress=lambda done, total: calls.append((done, total)))
    assert report.built == 1 and report.skipped == 0
    assert list(report.failed) == [BAD] and "nb201" in report.failed[BAD]
    assert calls[-1] == (2, 2)
    assert store[CELL].num_nodes > 50
    again = build_graphs([CELL], store)
    assert again.built == 0 and again.skipped == 1


def test_an_interrupt_stops_the_workers_lowering(tmp_path):
    store = GraphStore(tmp_path)
    specs = [f"zoo:resnet:{seed}" for seed in range(16)]

    def interrupt(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_graphs(specs, store, workers=2, progress=interrupt)
    assert 1 <= len(store) < 8  # the first one and those in flight, not everything queued
