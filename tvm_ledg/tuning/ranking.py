"""Rank targets for one model by predicted latency, with uncertainty and the operators that dominate."""

from __future__ import annotations

import os
from typing import Any

from targets.errors import ArgumentError
from tvm_ledg.predict import LatencyPrediction, predict_latency

__all__ = ["rank_targets"]


def rank_targets(model: Any, targets: Any, *, checkpoint: str | os.PathLike[str] | None = None, top_ops: int = 5,
                 graph_store: str | os.PathLike[str] | None = None,
                 batch_size: int | None = None, device: str = "cpu") -> list[LatencyPrediction]:
    """``targets`` ordered fastest first for ``model`` (one MODEL string, ``OpGraph`` or Relax ``IRModule``).

    Each entry carries ``latency_ms``, ``std_log`` (the predictor's log-space standard
    deviation, None without a variance head) and its ``top_ops`` slowest operators. ``device``: where the
    model runs (as ``predict_latency``).
    """
    if isinstance(model, (list, tuple)):
        if len(model) != 1:
            raise ArgumentError(f"rank_targets ranks targets for one model, got {len(model)}; "
                                "use predict_latency for many")
        model = model[0]
    results = predict_latency([model], targets, checkpoint=checkpoint, breakdown=True, top_ops=top_ops,
                              graph_store=graph_store, batch_size=batch_size, device=device)
    if len({r.model for r in results}) != 1:
        raise ArgumentError(f"rank_targets ranks targets for one model, but {model!r} names "
                            f"{len({r.model for r in results})}; use predict_latency for many")
    return sorted(results, key=lambda r: (r.latency_ms, r.target))
