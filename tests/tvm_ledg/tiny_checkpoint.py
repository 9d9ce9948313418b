"""A tiny checkpoint for CLI and prediction-API tests: the point is the plumbing, not accuracy."""

from __future__ import annotations

from pathlib import Path

import targets
from cost_model.graph import OpGraph
from cost_model.predictor import LatencyPredictor, TrainConfig

__all__ = ["train_tiny_checkpoint"]


def train_tiny_checkpoint(graphs: dict[str, OpGraph], target_names: list[str], out: Path, *, epochs: int) -> Path:
    """Fit a 1-layer model on FLOPs-proportional latencies (the second target 10x faster) and save it to ``out``."""
    descs = {t: targets.load(t) for t in target_names}
    rows = [(s, t, (1.0 if t == target_names[0] else 0.1) * g.total_flops / 1e7)
            for s, g in graphs.items() for t in target_names]
    model = LatencyPredictor(encoder={"kind": "builtin", "dim": 16, "vocab_size": 256},
                             model={"dim": 16, "layers": 1, "heads": 2, "dropout": 0.0},
                             train=TrainConfig(epochs=epochs, batch_size=4, seed=0))
    model.fit(graphs, descs, rows)
    model.save_pretrained(out)
    return out
