"""Per-target metrics of any predictor on rows, and of a checkpoint on a config's split."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from cost_model.graph import OpGraph
from cost_model.metrics import aggregate, latency_metrics
from cost_model.predictor import LatencyPredictor, Row
from cost_model.training import RunConfig, load_latency_data
from targets.errors import ArgumentError
from targets.schema import TargetDescriptor

__all__ = ["Predictor", "evaluate_rows", "evaluate_checkpoint", "format_metrics_table"]

METRIC_COLUMNS = ("mape", "rmse", "acc5", "acc10", "spearman", "kendall")


class Predictor(Protocol):
    def predict(self, graphs: Mapping[str, OpGraph], targets: Mapping[str, TargetDescriptor],
                pairs: Sequence[tuple[str, str]]) -> np.ndarray: ...


def evaluate_rows(predictor: Predictor, graphs: Mapping[str, OpGraph], targets: Mapping[str, TargetDescriptor],
                  rows: Sequence[Row]) -> dict[str, Any]:
    """``{"per_target": {name: metrics}, "mean": metrics over targets}`` (every target counts once)."""
    if not rows:
        raise ArgumentError("nothing to evaluate: no rows")
    pred = predictor.predict(graphs, targets, [(r[0], r[1]) for r in rows])
    by_target: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        by_target[r[1]].append(i)
    truth = np.array([r[2] for r in rows])
    per_target = {t: latency_metrics(truth[idx], pred[idx]) for t, idx in sorted(by_target.items())}
    return {"per_target": per_target, "mean": aggregate(list(per_target.values()))}


def evaluate_checkpoint(checkpoint: str | os.PathLike[str], config: RunConfig, split: str = "test") -> dict[str, Any]:
    """Metrics of a saved checkpoint on one split of the data a config describes."""
    data = load_latency_data(config)
    if split not in data.rows:
        raise ArgumentError(f"unknown split {split!r}; expected one of {sorted(data.rows)}")
    report = evaluate_rows(LatencyPredictor.from_pretrained(checkpoint), data.graphs, data.targets, data.rows[split])
    return {"checkpoint": str(checkpoint), "config": config.source, "split": split, **report}


def format_metrics_table(report: Mapping[str, Any]) -> str:
    """Markdown table: one row per target, then the mean."""
    head = "| target | n | MAPE % | RMSE ms | Acc5 | Acc10 | Spearman | Kendall |"
    lines = [head, "|" + "---|" * 8]

    def row(name: str, m: Mapping[str, float], n: Any) -> str:
        return (f"| {name} | {n} | {m['mape']:.2f} | {m['rmse']:.4g} | {m['acc5']:.3f} | {m['acc10']:.3f} | "
                f"{m['spearman']:.3f} | {m['kendall']:.3f} |")

    for name, m in report["per_target"].items():
        lines.append(row(name, m, m.get("n", "")))
    lines.append(row("**mean**", report["mean"], ""))
    return "\n".join(lines)
