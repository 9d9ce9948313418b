"""Standard latency-prediction metrics, one definition for every benchmark.

MAPE, median APE, RMSE, Acc(δ) (fraction of predictions with relative error below δ),
Spearman's rho and Kendall's tau (scipy.stats), and the error in log space
(robust to the sub-millisecond outliers of some public devices). For ranking
candidate schedules of one tuning task: TenSet's top-k score and pairwise
accuracy.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from targets.errors import ArgumentError, DataError

__all__ = ["latency_metrics", "log_rmse", "mape", "median_ape", "rmse", "acc_within", "spearman", "kendall",
           "aggregate", "topk_score", "pairwise_accuracy"]


def _arrays(y_true: Sequence[float], y_pred: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.shape != p.shape or t.ndim != 1:
        raise DataError(f"metrics need two 1-d arrays of equal length, got {t.shape} and {p.shape}")
    if t.size == 0:
        raise DataError("metrics need at least one sample")
    if not np.all(np.isfinite(t)) or np.any(t <= 0):
        raise DataError("true latencies must be finite and positive")
    return t, p


def mape(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """Mean absolute percentage error, in percent."""
    t, p = _arrays(y_true, y_pred)
    return float(np.mean(np.abs(p - t) / t) * 100.0)


def median_ape(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """Median absolute percentage error, in percent: unlike MAPE, not ruled by a few tiny latencies."""
    t, p = _arrays(y_true, y_pred)
    return float(np.median(np.abs(p - t) / t) * 100.0)


def rmse(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """Root mean squared error, in the unit of the inputs (ms)."""
    t, p = _arrays(y_true, y_pred)
    return float(np.sqrt(np.mean((p - t) ** 2)))


def acc_within(y_true: Sequence[float], y_pred: Sequence[float], delta: float) -> float:
    """Fraction of samples whose relative error is below ``delta`` (0.05 -> Acc(5%))."""
    t, p = _arrays(y_true, y_pred)
    return float(np.mean(np.abs(p - t) / t < delta))


def log_rmse(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """RMSE of ln latency: the validation score of every trained predictor (scale-free)."""
    t, p = _arrays(y_true, y_pred)
    return float(np.sqrt(np.mean((np.log(p) - np.log(t)) ** 2)))


def spearman(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    t, p = _arrays(y_true, y_pred)
    if t.size < 2:
        return math.nan
    from scipy import stats  # here, not at the top: scipy.stats costs a cold `tvm-ledg predict` ~1 s

    return float(stats.spearmanr(t, p).statistic)


def kendall(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    t, p = _arrays(y_true, y_pred)
    if t.size < 2:
        return math.nan
    from scipy import stats

    return float(stats.kendalltau(t, p).statistic)


def latency_metrics(y_true: Sequence[float], y_pred: Sequence[float]) -> dict[str, float]:
    """All metrics of one (device, split) at once; ``log_rmse`` is RMSE of ln latency."""
    t, p = _arrays(y_true, y_pred)
    log_err = np.log(np.clip(p, 1e-12, None)) - np.log(t)
    return {
        "n": int(t.size),
        "mape": mape(t, p),
        "median_ape": median_ape(t, p),
        "rmse": rmse(t, p),
        "acc5": acc_within(t, p, 0.05),
        "acc10": acc_within(t, p, 0.10),
        "spearman": spearman(t, p),
        "kendall": kendall(t, p),
        "log_rmse": float(np.sqrt(np.mean(log_err**2))),
    }


def aggregate(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """Unweighted mean of each metric over devices (every device counts once)."""
    if not rows:
        raise DataError("nothing to aggregate")
    keys = [k for k in rows[0] if k != "n" and isinstance(rows[0][k], (int, float))]
    return {k: float(np.nanmean([r[k] for r in rows])) for k in keys}


def topk_score(y_true: Sequence[float], y_pred: Sequence[float], k: int) -> float:
    """TenSet's top-k score: true best latency over the best true latency among the k predicted fastest.

    In (0, 1]; 1 when the k candidates a tuner would measure contain the best one. Ties in the
    prediction are broken by position (a stable sort), as a tuner taking the first k would.
    """
    t, p = _arrays(y_true, y_pred)
    if not isinstance(k, int) or k < 1:
        raise ArgumentError(f"top-k score needs an integer k >= 1, got {k!r}")
    chosen = np.argsort(p, kind="stable")[:k]
    return float(t.min() / t[chosen].min())


def pairwise_accuracy(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """Fraction of candidate pairs with different true latencies that the prediction orders correctly.

    A tie in the prediction counts as half right; nan when all true latencies are equal.
    """
    t, p = _arrays(y_true, y_pred)
    dt = np.sign(t[:, None] - t[None, :])
    dp = np.sign(p[:, None] - p[None, :])
    upper = np.triu(np.ones_like(dt, dtype=bool), k=1) & (dt != 0)
    pairs = int(upper.sum())
    if pairs == 0:
        return math.nan
    score = np.where(dp == 0, 0.5, (dp == dt).astype(np.float64))
    return float(score[upper].sum() / pairs)
