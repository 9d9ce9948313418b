"""Input checks and the target feature vector shared by every baseline (``cost_model.baselines``,
``cost_model.torch_baselines``): one definition of what a valid fit or predict call is."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from cost_model.graph import OpGraph
from cost_model.rows import Row, validate_rows
from targets.errors import DataError
from targets.schema import TargetDescriptor

__all__ = ["Pair", "check_fit_inputs", "check_pairs", "target_vector"]

Pair = tuple[str, str]


def check_fit_inputs(graphs: Mapping[str, OpGraph], targets: Mapping[str, TargetDescriptor],
                      rows: Sequence[Row], val_rows: Sequence[Row], name: str) -> None:
    if not rows:
        raise DataError(f"{name}.fit() needs at least one training row")
    validate_rows(rows, graphs, targets, "training rows")
    validate_rows(val_rows, graphs, targets, "validation rows")


def check_pairs(graphs: Mapping[str, OpGraph], targets: Mapping[str, TargetDescriptor],
                 pairs: Sequence[Pair]) -> None:
    for key, target in pairs:
        if target not in targets:
            raise DataError(f"no target descriptor named {target!r}")
        if key not in graphs:
            raise DataError(f"no graph for {key!r}")


def target_vector(desc: TargetDescriptor) -> np.ndarray:
    """``values`` then ``mask`` of ``to_features()``: a known 0 differs from an unknown one."""
    values, mask = desc.to_features()
    return np.asarray(values + mask, dtype=np.float64)
