"""Training objective for LeDG-Former: log-space regression + within-target ranking (+ Gaussian NLL).

Latencies span four orders of magnitude, so errors are measured on
``log(latency_ms)`` (a 10 % error costs the same on a 0.1 ms and a 100 ms
network). Architecture search only needs the order of candidates on one
target, so a pairwise RankNet term (logistic loss on predicted log-latency
differences) rewards ordering directly; pairs are only formed between rows of
the same target, since comparing networks across devices says nothing useful.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from cost_model.ledgformer import LeDGOutput
from targets.errors import DataError

__all__ = ["LossTerms", "latency_loss"]

_LOG_VAR_RANGE = (-12.0, 8.0)


@dataclass
class LossTerms:
    """``total`` is what to back-propagate; the parts are for logging (``nll`` is None without a variance head)."""

    total: Tensor
    regression: Tensor
    ranking: Tensor
    nll: Tensor | None = None


def latency_loss(
    output: LeDGOutput,
    target_ms: Tensor,
    group: Tensor | None = None,
    *,
    huber_delta: float | None = 1.0,
    rank_weight: float = 0.5,
    nll_weight: float = 0.5,
    min_log_gap: float = 1e-3,
) -> LossTerms:
    """Loss of a batch of predictions against measured latencies.

    Args:
        output: model predictions for B rows.
        target_ms: measured latencies ``(B,)``, all > 0.
        group: ``(B,)`` target id per row; ranking pairs only within a group
            (None: all rows share one target).
        huber_delta: Huber threshold on the log error; None for plain MSE.
        rank_weight: weight of the pairwise ranking term.
        nll_weight: weight of the Gaussian NLL when ``output.log_var`` is set. The NLL
            sees the mean detached, so it calibrates the variance without
            down-weighting hard examples in the mean fit (the regression term does that).
        min_log_gap: pairs whose measured log-latencies differ by less are ties and skipped.
    """
    if target_ms.shape != output.log_latency_ms.shape:
        raise ValueError(
            f"target_ms has shape {tuple(target_ms.shape)}, predictions {tuple(output.log_latency_ms.shape)}"
        )
    if not bool((target_ms > 0).all()):
        raise DataError("latency labels must be > 0 ms; drop missing entries (e.g. -1.0) before training")
    y = torch.log(target_ms.to(output.log_latency_ms.dtype))
    pred = output.log_latency_ms
    if huber_delta is None:
        regression = F.mse_loss(pred, y)
    else:
        regression = F.huber_loss(pred, y, delta=huber_delta)

    ranking = _pairwise_ranking(pred, y, group, min_log_gap)
    total = regression + rank_weight * ranking
    nll = None
    if output.log_var is not None:
        log_var = output.log_var.clamp(*_LOG_VAR_RANGE)
        nll = 0.5 * (log_var + (y - pred.detach()) ** 2 * torch.exp(-log_var)).mean()
        total = total + nll_weight * nll
    return LossTerms(total, regression, ranking, nll)


def _pairwise_ranking(pred: Tensor, y: Tensor, group: Tensor | None, min_log_gap: float) -> Tensor:
    """Mean of ``softplus(-(pred_a - pred_b))`` over same-group pairs with ``y_a > y_b + gap``."""
    valid = (y[:, None] - y[None, :]) > min_log_gap
    if group is not None:
        valid = valid & (group[:, None] == group[None, :])
    if not bool(valid.any()):
        return pred.sum() * 0.0
    diff = pred[:, None] - pred[None, :]
    return F.softplus(-diff[valid]).mean()
