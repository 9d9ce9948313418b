"""Checkpoint directories: round trip, atomic replacement, and clear errors on corruption."""

import json

import pytest
import torch

from cost_model.checkpoint import check_compatible, load_checkpoint, save_checkpoint
from targets.errors import CheckpointError

CONFIG = {"kind": "ledgformer", "model": {"dim": 8}, "encoder": {"id": "builtin"}, "schemas": {"node": ["a", "b"]}}


def _state():
    torch.manual_seed(0)
    return {"w": torch.randn(3, 4), "b": torch.zeros(4)}


def test_round_trip_and_replace(tmp_path):
    ckpt = tmp_path / "ckpt"
    save_checkpoint(ckpt, _state(), CONFIG)
    state, config = load_checkpoint(ckpt)
    assert torch.equal(state["w"], _state()["w"])
    assert config["model"] == {"dim": 8} and config["format_version"] == 1
    save_checkpoint(ckpt, {"w": torch.ones(2)}, CONFIG)
    state, _ = load_checkpoint(ckpt)
    assert torch.equal(state["w"], torch.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"], "temp/backup directories left behind"


def test_corrupted_weights_and_config(tmp_path):
    ckpt = tmp_path / "ckpt"
    save_checkpoint(ckpt, _state(), CONFIG)
    weights = ckpt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:20])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_checkpoint(ckpt)
    save_checkpoint(ckpt, _state(), CONFIG)
    (ckpt / "config.json").write_text("{oops")
    with pytest.raises(CheckpointError, match="config.json"):
        load_checkpoint(ckpt)
    (ckpt / "config.json").write_text(json.dumps({**CONFIG, "format_version": 7}))
    with pytest.raises(CheckpointError, match="format_version"):
        load_checkpoint(ckpt)
    (ckpt / "config.json").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(ckpt)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope")


def test_schema_mismatch_is_named():
    check_compatible({"schemas": {"node": ["a", "b"]}}, {"node": ["a", "b"]}, source="c")
    with pytest.raises(CheckpointError, match="'node'"):
        check_compatible({"schemas": {"node": ["a"]}}, {"node": ["a", "b"]}, source="c")
