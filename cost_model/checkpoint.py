"""Checkpoint directories: ``config.json`` + ``model.safetensors``, no pickle.

The layout follows Hugging Face's ``save_pretrained``: a directory anyone can
inspect. ``config.json`` carries everything needed to rebuild the model and to
refuse a mismatched one: format version, model config, encoder id, the feature
schemas (node feature names, target feature names, target schema version), the
output normalizer and a summary of the training data. Both files are written
to a temporary directory that is renamed into place, so an interrupted save
never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from targets.errors import CheckpointError

__all__ = ["CHECKPOINT_FORMAT_VERSION", "save_checkpoint", "load_checkpoint", "check_compatible"]

CHECKPOINT_FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
REQUIRED_KEYS = ("format_version", "kind", "model", "encoder", "schemas")


def save_checkpoint(directory: str | os.PathLike[str], state_dict: dict[str, torch.Tensor], config: dict[str, Any]) -> Path:
    """Write ``config`` and ``state_dict`` into ``directory`` atomically (replacing an older checkpoint)."""
    directory = Path(directory)
    config = {"format_version": CHECKPOINT_FORMAT_VERSION, **config}
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise CheckpointError(f"{directory}: refusing to save a checkpoint without {missing}")
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}."))
    try:
        tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format_version": str(CHECKPOINT_FORMAT_VERSION)})
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=1, sort_keys=True))
        backup = None
        if directory.exists():
            backup = directory.with_name(f".{directory.name}.old")
            shutil.rmtree(backup, ignore_errors=True)
            os.replace(directory, backup)
        os.replace(tmp, directory)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def load_checkpoint(directory: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and validate a checkpoint directory; every failure names the file and what is wrong."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: checkpoint directory not found")
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise CheckpointError(f"{path}: missing (a checkpoint holds {CONFIG_FILE} and {WEIGHTS_FILE})")
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{config_path}: corrupted JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_path}: expected a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise CheckpointError(f"{config_path}: missing keys {missing}")
    if config["format_version"] != CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"{config_path}: format_version {config['format_version']!r}, this tvm-ledg reads {CHECKPOINT_FORMAT_VERSION}"
        )
    try:
        state_dict = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights_path}: corrupted weights ({exc})") from exc
    return state_dict, config


def check_compatible(config: dict[str, Any], expected: dict[str, Any], *, source: str) -> None:
    """Compare the schemas a checkpoint was trained with against the running code's."""
    found = config.get("schemas", {})
    for key, want in expected.items():
        have = found.get(key)
        if have != want:
            raise CheckpointError(
                f"{source}: schema {key!r} of the checkpoint is {_short(have)}, this code expects {_short(want)}; "
                "retrain or use a matching tvm-ledg version"
            )


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."
