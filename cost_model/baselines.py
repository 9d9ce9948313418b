"""Baseline latency predictors the benchmarks compare ``LatencyPredictor`` against.

Every baseline is a ``LatencyEstimator`` (``cost_model.estimator``), as
``LatencyPredictor`` is: rows are ``(graph_key, target_name, latency_ms)``;
``fit(graphs, targets, rows, val_rows)`` starts clean and returns the baseline,
``predict(graphs, targets, pairs)`` returns float64 ms.
Each one here can predict a target it never saw in training (zero-shot) from the
target's descriptor alone, which is what the hardware-transfer benchmark asks;
the per-device models of ``cost_model.linear_baselines``, registered alongside,
cannot (their ``covers(target)`` says which targets they predict).

- ``FlopsBaseline``: ``log y = a_t + b_t log(FLOPs)`` per target: the roofline
  intuition with no learning beyond two numbers per device.
- ``ProxyDeviceBaseline``: what a practitioner does today: measure on the most
  similar device one has, rescale.
- ``OneHotMLP`` and ``GraphSAGEBaseline`` (``cost_model.torch_baselines``):
  trained with the shared loop, registered alongside.
"""

from __future__ import annotations

import math
import zlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cost_model.baseline_inputs import Pair, check_fit_inputs, check_pairs, target_vector
from cost_model.estimator import BASELINES, LatencyEstimator, register_baseline
from cost_model.graph import OpGraph
from cost_model.linear_baselines import AdditiveLinearBaseline, OneHotRidgeBaseline  # noqa: F401  (registers them)
from cost_model.loglinear import fit_loglinear
from cost_model.rows import Row
from cost_model.torch_baselines import GraphSAGEBaseline, OneHotMLP  # noqa: F401  (registers them)
from targets.errors import ArgumentError
from targets.schema import TargetDescriptor

__all__ = [
    "FlopsBaseline",
    "ProxyDeviceBaseline",
    "OneHotMLP",
    "GraphSAGEBaseline",
    "BASELINES",
    "list_baselines",
    "make_baseline",
]



# ------------------------------------------------------------------- shared helpers


def _graph_size(graph: OpGraph, feature: str) -> float:
    """Total FLOPs or parameters, at least 1 so that its log is defined (a graph of copies has 0 FLOPs)."""
    return float(max(graph.total_flops if feature == "flops" else graph.total_params, 1))


def _fit_ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """Ridge regression with an unpenalized intercept: ``(w, w0)`` with ``y ~ x @ w + w0``."""
    x_mean, y_mean = x.mean(axis=0), float(y.mean())
    xc = x - x_mean
    w = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (y - y_mean))
    return w, y_mean - float(x_mean @ w)


def _by_target(rows: Sequence[Row]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        out[row[1]].append(row)
    return dict(sorted(out.items()))


# ------------------------------------------------------------------------- FLOPs


@register_baseline
class FlopsBaseline(LatencyEstimator):
    """``log y = a_t + b_t log x`` per training target, x = total FLOPs (or parameters).

    Zero-shot (a target without training rows): one slope ``b`` pooled over the
    training targets (least squares within each target, so device speed does not
    leak into it), and the intercept predicted from the descriptor by a ridge
    regression of each training target's intercept (under ``b``) on its feature
    vector (``to_features()`` values and mask).
    """

    name = "flops"
    _fitted_attribute = "ridge_"

    def __init__(self, feature: str = "flops", alpha: float = 1.0) -> None:
        self.feature = feature
        self.alpha = alpha
        self._reset_fitted()

    def _reset_fitted(self) -> None:
        self.coef_: dict[str, tuple[float, float]] = {}
        self.slope_: float | None = None
        self.ridge_: tuple[np.ndarray, float] | None = None

    def fit(self, graphs: Mapping[str, OpGraph], targets: Mapping[str, TargetDescriptor], rows: Sequence[Row],
            val_rows: Sequence[Row] = ()) -> "FlopsBaseline":
        """``val_rows`` are checked but unused: a closed-form fit has nothing to stop early."""
        if self.feature not in ("flops", "params"):
            raise ArgumentError(f"FlopsBaseline: feature {self.feature!r} is not 'flops' or 'params'")
        check_fit_inputs(graphs, targets, rows, val_rows, type(self).__name__)
        self._reset_fitted()
        sizes = {k: math.log(_graph_size(graphs[k], self.feature)) for k in {r[0] for r in rows}}
        per_target = {t: (np.array([sizes[r[0]] for r in rs]), np.log([r[2] for r in rs]))
                      for t, rs in _by_target(rows).items()}
        self.coef_ = {t: fit_loglinear(lx, ly) for t, (lx, ly) in per_target.items()}
        dx = np.concatenate([lx - lx.mean() for lx, _ in per_target.values()])
        dy = np.concatenate([ly - ly.mean() for _, ly in per_target.values()])
        self.slope_ = float(dx @ dy / (dx @ dx)) if dx @ dx > 0 else 1.0
        intercepts = np.array([np.mean(ly - self.slope_ * lx) for lx, ly in per_target.values()])
        features = np.stack([target_vector(targets[t]) for t in per_target])
        self.ridge_ = _fit_ridge(features, intercepts, self.alpha)
        return self

    def predict(self, graphs: Mapping[str, OpGraph], targets: Mapping[str, TargetDescriptor],
                pairs: Sequence[Pair]) -> np.ndarray:
        self._check_fitted()
        check_pairs(graphs, targets, pairs)
        out = np.empty(len(pairs))
        for i, (key, target) in enumerate(pairs):
            a, b = self.coef_.get(target) or self.zero_shot_coef(targets[target])
            out[i] = math.exp(a + b * math.log(_graph_size(graphs[key], self.feature)))
        return out

    def zero_shot_coef(self, desc: TargetDescriptor) -> tuple[float, float]:
        """``(a, b)`` for a target without training rows, from its descriptor."""
        self._check_fitted()
        w, w0 = self.ridge_
        return float(target_vector(desc) @ w + w0), self.slope_


# ------------------------------------------------------------------------- proxy


@register_baseline
class ProxyDeviceBaseline(LatencyEstimator):
    """Predict a device from the measurements of the most similar device one has.

    Seen target: its own measurement of the architecture when there is one,
    else its log-linear FLOPs fit. Unseen target: the proxy is the training
    target with the most similar descriptor (cosine similarity of the masked
    ``to_features()`` values, ties to the first name); the proxy's measurement
    (or FLOPs fit) is multiplied by ``exp(f(new) - f(proxy))``, where ``f`` is a
    ridge regression on descriptor features of each training target's median
    ``log(latency / FLOPs)``. Per FLOP rather than raw latency so that a target
    measured on a space of large networks (OFA) is not taken for a slow device.

    ``max_fit_rows`` caps the rows per target behind the FLOPs fits and the
    medians (the same architectures on every target, chosen by a digest of
    the key), so that fitting on full reference tables loads few graphs.
    Measurements are all kept.
    """

    name = "proxy"
    _fitted_attribute = "ridge_"

    def __init__(self, alpha: float = 1.0, max_fit_rows: int | None = 2000) -> None:
        self.alpha = alpha
        self.max_fit_rows = max_fit_rows
        self._reset_fitted()

    def _reset_fitted(self) -> None:
        self.measured_: dict[str, dict[str, float]] = {}
        self.flops_: FlopsBaseline | None = None
        self.features_: dict[str, np.ndarray] = {}
        self.ridge_: tuple[np.ndarray, float] | None = None
        self.proxies_: dict[str, str] = {}

    def fit(self, graphs: Mapping[str, OpGraph], targets: Mapping[str, TargetDescriptor], rows: Sequence[Row],
            val_rows: Sequence[Row] = ()) -> "ProxyDeviceBaseline":
        """``val_rows`` are checked but unused: nothing here is trained."""
        check_fit_inputs(graphs, targets, rows, val_rows, type(self).__name__)
        self._reset_fitted()
        groups = _by_target(rows)
        log_ms: dict[str, dict[str, list[float]]] = {t: defaultdict(list) for t in groups}
        for key, target, ms in rows:
            log_ms[target][key].append(math.log(ms))
        self.measured_ = {t: {k: math.exp(float(np.mean(v))) for k, v in m.items()} for t, m in log_ms.items()}
        fit_rows = [r for rs in groups.values() for r in self._fit_subset(rs)]
        self.flops_ = FlopsBaseline("flops", alpha=self.alpha).fit(graphs, targets, fit_rows)
        per_flop = _by_target([(k, t, ms / _graph_size(graphs[k], "flops")) for k, t, ms in fit_rows])
        self.features_ = {t: target_vector(targets[t]) for t in groups}
        medians = np.array([np.median(np.log([r[2] for r in per_flop[t]])) for t in groups])
        self.ridge_ = _fit_ridge(np.stack(list(self.features_.values())), medians, self.alpha)
        self.proxies_ = {t: t for t in groups}
        return self

    def _fit_subset(self, rows: list[Row]) -> list[Row]:
        if self.max_fit_rows is None or len(rows) <= self.max_fit_rows:
            return rows
        return sorted(rows, key=lambda r: (zlib.crc32(r[0].encode()), r[0]))[:self.max_fit_rows]

    def proxy_for(self, desc: TargetDescriptor) -> str:
        """The training target whose descriptor is most similar to ``desc``."""
        self._check_fitted()
        values, mask = desc.to_features()
        new = np.asarray(values) * np.asarray(mask)
        n = len(values)

        def similarity(name: str) -> float:
            old = self.features_[name][:n] * self.features_[name][n:]
            norm = float(np.linalg.norm(new) * np.linalg.norm(old))
            return float(new @ old) / norm if norm > 0 else 0.0

        return max(sorted(self.features_), key=similarity)

    def predict(self, graphs: Mapping[str, OpGraph], targets: Mapping[str, TargetDescriptor],
                pairs: Sequence[Pair]) -> np.ndarray:
        """Also records the proxy of every predicted target in ``proxies_``."""
        self._check_fitted()
        check_pairs(graphs, targets, pairs)
        w, w0 = self.ridge_
        scale: dict[str, float] = {}
        for target in sorted({t for _, t in pairs} - set(self.measured_)):
            proxy = self.proxies_[target] = self.proxy_for(targets[target])
            scale[target] = math.exp(float((target_vector(targets[target]) - self.features_[proxy]) @ w))
        out = np.empty(len(pairs))
        for i, (key, target) in enumerate(pairs):
            proxy = self.proxies_[target]
            ms = self.measured_[proxy].get(key)
            if ms is None:
                a, b = self.flops_.coef_[proxy]
                ms = math.exp(a + b * math.log(_graph_size(graphs[key], "flops")))
            out[i] = ms * scale.get(target, 1.0)
        return out



# ---------------------------------------------------------------------- registry

def list_baselines() -> list[str]:
    """Names of the registered baselines (``BASELINES``), sorted."""
    return sorted(BASELINES)


def make_baseline(name: str, **kw: Any) -> Any:
    """A baseline by registry name (``BASELINES``) with hyper-parameters ``kw``."""
    cls = BASELINES.lookup(name)
    try:
        return cls(**kw)
    except TypeError as exc:
        raise ArgumentError(f"baseline {name!r}: {exc}") from exc
