"""Latency rows ``(graph_key, target_name, latency_ms)`` and their validation.

``LatencyPredictor`` and every baseline take the same rows, so they reject bad
ones with the same messages.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from cost_model.graph import OpGraph
from targets.errors import DataError
from targets.schema import TargetDescriptor

__all__ = ["Row", "validate_rows"]

Row = tuple[str, str, float]


def validate_rows(rows: Sequence[Row], graphs: Mapping[str, OpGraph], targets: Mapping[str, TargetDescriptor],
                  what: str) -> None:
    """``DataError`` (prefixed by ``what``) for a latency that is not finite and > 0, or an unknown graph or target."""
    for key, target, ms in rows:
        if not (isinstance(ms, (int, float)) and math.isfinite(ms) and ms > 0):
            raise DataError(f"{what}: latency of ({key!r}, {target!r}) is {ms!r}; latencies must be finite and > 0 ms")
        if target not in targets:
            raise DataError(f"{what}: no target descriptor named {target!r}")
        if key not in graphs:
            raise DataError(f"{what}: no graph for {key!r}")
