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


def test_a_directory_that_is_not_a_checkpoint_is_never_replaced(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "a.txt").write_text("keep")
    with pytest.raises(CheckpointError, match=r"project: not empty and not a checkpoint \(holds a.txt, src\)"):
        save_checkpoint(project, _state(), CONFIG)
    monkeypatch.chdir(project)
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        save_checkpoint(".", _state(), CONFIG)
    assert (project / "a.txt").read_text() == "keep" and (project / "src").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="not a directory"):
        save_checkpoint(tmp_path / "file", _state(), CONFIG)


def test_an_empty_directory_is_filled_and_a_checkpoint_replaced_in_place(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    save_checkpoint(empty, _state(), CONFIG)
    assert sorted(p.name for p in empty.iterdir()) == ["config.json", "model.safetensors"]
    monkeypatch.chdir(empty)
    save_checkpoint(".", {"w": torch.ones(2)}, CONFIG)
    state, _ = load_checkpoint(empty)
    assert torch.equal(state["w"], torch.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_a_checkpoint_with_other_files_and_a_users_backup_folder_are_kept(tmp_path):
    ckpt = tmp_path / "ckpt"
    save_checkpoint(ckpt, _state(), CONFIG)
    (ckpt / "README.md").write_text("notes")
    with pytest.raises(CheckpointError, match="also holds README.md"):
        save_checkpoint(ckpt, _state(), CONFIG)
    assert (ckpt / "README.md").read_text() == "notes"
    (ckpt / "README.md").unlink()
    mine = tmp_path / ".ckpt.old"  # a name an earlier version used for its backup
    mine.mkdir()
    (mine / "x").write_text("mine")
    save_checkpoint(ckpt, _state(), CONFIG)
    assert (mine / "x").read_text() == "mine"
