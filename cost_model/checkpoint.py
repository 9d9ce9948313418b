"""Checkpoint directories: ``config.json`` + ``model.safetensors``, no pickle.

The layout follows Hugging Face's ``save_pretrained``: a directory anyone can
inspect. ``config.json`` carries everything needed to rebuild the model and to
refuse a mismatched one: format version, model config, encoder id, the feature
schemas (node feature names, target feature names, target schema version), the
output normalizer and a summary of the training data. Both files are written
to a temporary directory that is renamed into place, so an interrupted save
never leaves a half-written checkpoint behind.

A save only ever replaces what it wrote itself: the target directory must be
absent, empty, or an earlier checkpoint (its ``config.json`` names a ``kind``
and a ``format_version``) holding nothing but checkpoint files. Anything else
is refused before any work, since ``--out`` pointing at a project folder must
not wipe that folder.
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

__all__ = ["CHECKPOINT_FORMAT_VERSION", "save_checkpoint", "load_checkpoint", "check_compatible", "check_replaceable",
           "config_field"]

CHECKPOINT_FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
REQUIRED_KEYS = ("format_version", "kind", "model", "encoder", "schemas")
# The JSON types of the top-level fields every reader relies on (optional ones checked when present).
_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "format_version": int, "kind": str, "model": dict, "encoder": dict, "schemas": dict,
    "train": dict, "history": list, "data": dict, "adaptations": dict, "granularity": str,
}


def check_replaceable(directory: str | os.PathLike[str]) -> Path:
    """The absolute path of ``directory`` if a checkpoint may be written there, else ``CheckpointError``.

    Allowed: a path that does not exist, an empty directory, or a checkpoint directory
    holding only ``config.json`` and ``model.safetensors``. Called before long work
    (training) so that a refusal costs nothing.
    """
    path = Path(os.path.abspath(directory))
    if not path.name:
        raise CheckpointError(f"{path}: cannot write a checkpoint over the file-system root")
    if not path.exists() and not path.is_symlink():
        return path
    if path.is_symlink() or not path.is_dir():
        raise CheckpointError(f"{path}: exists and is not a directory; choose a new checkpoint directory")
    entries = sorted(p.name for p in path.iterdir())
    if not entries:
        return path
    if not _is_checkpoint(path):
        raise CheckpointError(f"{path}: not empty and not a checkpoint (holds {_listing(entries)}); refusing to "
                              "replace it, choose a new or empty directory")
    foreign = [name for name in entries if name not in (CONFIG_FILE, WEIGHTS_FILE)]
    if foreign:
        raise CheckpointError(f"{path}: a checkpoint that also holds {_listing(foreign)}, which saving would delete; "
                              "move them away or choose another directory")
    return path


def _is_checkpoint(path: Path) -> bool:
    try:
        config = json.loads((path / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(config, dict) and isinstance(config.get("kind"), str)
            and isinstance(config.get("format_version"), int))


def _listing(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def save_checkpoint(directory: str | os.PathLike[str], state_dict: dict[str, torch.Tensor], config: dict[str, Any]) -> Path:
    """Write ``config`` and ``state_dict`` into ``directory`` atomically.

    ``directory`` may be new, empty, or an older checkpoint (see ``check_replaceable``)."""
    directory = check_replaceable(directory)
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
        check_replaceable(directory)  # again: it may have changed while the weights were written
        backup = None
        if directory.is_dir() and any(directory.iterdir()):
            # a fresh, empty name for the old checkpoint: rename() may replace only an empty directory
            backup = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.old."))
            os.replace(directory, backup)
        try:
            os.replace(tmp, directory)  # onto a missing or empty directory
        except BaseException:
            if backup is not None:
                os.replace(backup, directory)
            raise
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
    for key, types in _FIELD_TYPES.items():
        if key in config:
            config_field(config, key, types, config_path)
    if config["format_version"] != CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"{config_path}: format_version {config['format_version']!r}, this tvm-ledg reads {CHECKPOINT_FORMAT_VERSION}"
        )
    try:
        state_dict = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights_path}: corrupted weights ({exc})") from exc
    return state_dict, config


def config_field(mapping: dict[str, Any], key: str, types: type | tuple[type, ...], source: str | os.PathLike[str],
                 *, where: str = "") -> Any:
    """``mapping[key]`` if present with a JSON type in ``types``, else ``CheckpointError`` naming file and field."""
    name = f"{where}.{key}" if where else key
    if key not in mapping:
        raise CheckpointError(f"{source}: field {name!r} is missing")
    value = mapping[key]
    wanted = types if isinstance(types, tuple) else (types,)
    # JSON true/false are not numbers here, and an integer is a valid float
    ok = isinstance(value, wanted) and not (isinstance(value, bool) and bool not in wanted)
    if not ok and float in wanted and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        expected = " or ".join(_JSON_NAMES.get(t, t.__name__) for t in wanted)
        raise CheckpointError(f"{source}: field {name!r} is {_JSON_NAMES.get(type(value), type(value).__name__)} "
                              f"{_short(value)}, expected {expected}")
    return value


_JSON_NAMES = {dict: "an object", list: "an array", str: "a string", int: "an integer", float: "a number",
               bool: "a boolean", type(None): "null"}


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
