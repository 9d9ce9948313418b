"""Training on a measured dataset reads the registered descriptor when it refines the stored one."""

from __future__ import annotations

import logging
from pathlib import Path

import targets
from cost_model.graph import OpGraph, OpNode, TensorSpec
from cost_model.measurement_store import Measurement, MeasurementStore
from cost_model.training import load_latency_data, load_run_config
from targets.schema import TargetDescriptor

NAME = "local-zen3-pytorch-t1"


def _store(path: Path, desc: TargetDescriptor) -> Path:
    """Ten one-node networks measured on ``desc`` (enough that some land in the training split)."""
    with MeasurementStore(path) as store:
        th = store.add_target(desc)
        for i in range(10):
            t = TensorSpec((1, 4 + i, 8, 8), "float32")
            gh = store.add_graph(OpGraph(nodes=[OpNode(0, "nn.relu", inputs=[t], outputs=[t], flops=t.numel)],
                                         edges=[], output_nodes=[0], name=f"g{i}"))
            store.add_network(f"n{i}", gh, "test", numerics_ok=True, max_rel_err=0.0)
            store.add_measurement(Measurement(f"n{i}", gh, th, "p1", 1.0, 1.0, 0.01, 0.9, 0.01, 10, environment={}))
    return path


def _without_roofline_inputs(desc: TargetDescriptor, **changes: object) -> TargetDescriptor:
    d = desc.to_dict()
    d["peak_tops"], d["derived"] = {}, []
    d["memory"]["bandwidth_gbps"] = None
    d.update(changes)
    return TargetDescriptor.from_dict(d)


def _descriptor_used(path: Path) -> TargetDescriptor:
    return load_latency_data(load_run_config({"data": {"sources": [], "measured": [str(path)]}})).targets[NAME]


def test_a_refining_registered_descriptor_replaces_the_stored_one(tmp_path: Path, caplog) -> None:
    registered = targets.load(NAME)
    stored = _without_roofline_inputs(registered)
    assert registered.refines(stored) and registered.content_hash() != stored.content_hash()
    with caplog.at_level(logging.INFO, logger="cost_model.training"):
        used = _descriptor_used(_store(tmp_path / "m.sqlite", stored))
    assert used == registered and used.peak_flops_per_s() is not None
    assert "refines" in caplog.text


def test_a_different_setting_keeps_its_stored_descriptor(tmp_path: Path) -> None:
    stored = _without_roofline_inputs(targets.load(NAME), runtime_version="9.9")
    assert _descriptor_used(_store(tmp_path / "m.sqlite", stored)) == stored
