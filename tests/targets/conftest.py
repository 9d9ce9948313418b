"""Shared fixtures: a minimal valid descriptor dict and a helper that writes YAML."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

MINIMAL: dict[str, Any] = {
    "schema_version": 1,
    "name": "test-board",
    "device_class": "embedded-cpu",
    "model": "Board 1",
    "runtime": "tflite",
    "precision": "fp32",
    "batch_size": 1,
}


@pytest.fixture
def minimal() -> dict[str, Any]:
    """A fresh copy of the smallest valid descriptor (all optional fields absent)."""
    return copy.deepcopy(MINIMAL)


@pytest.fixture
def write_yaml(tmp_path: Path):
    """Write a mapping (or raw text) to ``tmp_path/<name>`` and return the path."""

    def write(data: Any, name: str = "board.yaml") -> Path:
        path = tmp_path / name
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
        return path

    return write
