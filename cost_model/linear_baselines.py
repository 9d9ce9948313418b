"""Per-device linear baselines: the cheap bar a graph model must clear on devices it has data for.

Latency of a network built from a fixed menu of kernels is close to additive in
the kernels it runs, so a ridge regression of log latency on what the network
contains is a strong in-domain predictor. Both models here fit one regression
per device and predict only devices they have rows for: a device without rows
is *not applicable* (``covers`` is False and ``predict`` refuses it), because
any rule to invent its weights would be a different baseline (the proxy device).

- ``AdditiveLinearBaseline``: features = per kernel kind (op name plus kernel
  size), log1p of the count, total FLOPs and total bytes; works on any operator
  graph.
  ``adapt`` fits a device from a few samples by ridge toward the mean of the
  fitted devices' weights (the prior), the few-shot variant.
- ``OneHotRidgeBaseline``: NAS-Bench-201 only: the 30 one-hot edge-op features
  plus their pairwise products, ridge with lambda 1 (the space-specific ceiling
  check of ``docs/results/baselines.md``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from cost_model.data.specs import NB201_OPS, NB201_PREFIX, parse_nb201_cell
from cost_model.estimator import LatencyEstimator, register_baseline
from cost_model.graph import OpGraph, OpNode
from cost_model.rows import Row, validate_rows
from targets.errors import ArgumentError, DataError
from targets.schema import TargetDescriptor

__all__ = ["Ridge", "fit_ridge", "kernel_kind", "nb201_pair_features", "AdditiveLinearBaseline",
           "OneHotRidgeBaseline"]

Pair = tuple[str, str]

_NB201_EDGES = 6
_NB201_ONEHOT = _NB201_EDGES * len(NB201_OPS)
_PAIRS = np.triu_indices(_NB201_ONEHOT, k=1)
_KERNEL_OPS = ("conv", "pool")  # op names whose kind also records the kernel size


@dataclass(frozen=True)
class Ridge:
    """``y ~ x @ w + w0``: ``w`` and the (unpenalized) intercept ``w0``."""

    w: np.ndarray
    w0: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        return x @ self.w + self.w0


def fit_ridge(x: np.ndarray, y: np.ndarray, alpha: float, prior: np.ndarray | None = None) -> Ridge:
    """Minimise ``|x w + w0 - y|² + alpha |w - prior|²`` (``prior`` 0 by default); ``w0`` is not penalized.

    Solved on centered data, so the intercept absorbs the device's overall speed
    and the penalty acts on the per-feature effects only; with ``alpha`` 0 and
    collinear columns, the smallest step from ``prior`` that fits.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 2 or y.shape != (x.shape[0],) or x.shape[0] == 0:
        raise ArgumentError(f"fit_ridge: x must be (n, d) and y (n,) with n >= 1, got {x.shape} and {y.shape}")
    prior = np.zeros(x.shape[1]) if prior is None else np.asarray(prior, np.float64)
    x_mean, y_mean = x.mean(axis=0), float(y.mean())
    xc, yc = x - x_mean, y - y_mean
    # least squares on [xc; sqrt(alpha) I]: also defined for alpha 0 and collinear columns (minimum norm)
    a = np.vstack([xc, math.sqrt(alpha) * np.eye(x.shape[1])])
    b = np.concatenate([yc - xc @ prior, np.zeros(x.shape[1])])
    w = prior + np.linalg.lstsq(a, b, rcond=None)[0]
    return Ridge(w, y_mean - float(x_mean @ w))


def nb201_pair_features(key: str) -> np.ndarray:
    """30 one-hot edge-op features (edge-major, ops in ``NB201_OPS`` order) then their 435 pairwise
    products ``f_i f_j`` for ``i < j`` (products on one edge are always 0 and kept for a fixed layout)."""
    onehot = np.zeros(_NB201_ONEHOT)
    for edge, op in enumerate(parse_nb201_cell(key)):
        onehot[edge * len(NB201_OPS) + NB201_OPS.index(op)] = 1.0
    return np.concatenate([onehot, onehot[_PAIRS[0]] * onehot[_PAIRS[1]]])


def kernel_kind(node: OpNode) -> str:
    """Op name, plus the kernel size for convolutions (from the weight shape) and pooling (``pool_size``):
    a 3x3 and a 1x1 convolution of equal FLOPs run at different speeds."""
    if not any(part in node.op for part in _KERNEL_OPS):
        return node.op
    if "pool_size" in node.attrs:
        size = node.attrs["pool_size"]
    elif len(node.inputs) > 1 and len(node.inputs[1].shape) > 2:
        size = node.inputs[1].shape[2:]
    else:
        return node.op
    return f"{node.op} k" + "x".join(str(int(s)) for s in size)


def _histogram(graph: OpGraph) -> dict[str, tuple[float, float, float]]:
    """Per kernel kind: (count, total FLOPs, total bytes read + written)."""
    out: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for node in graph.nodes:
        entry = out[kernel_kind(node)]
        entry[0] += 1
        entry[1] += node.flops
        entry[2] += node.bytes_read + node.bytes_written
    return {k: (c, f, b) for k, (c, f, b) in out.items()}


def _by_target(rows: Sequence[Row]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        out[row[1]].append(row)
    return dict(sorted(out.items()))


def _check_fit(graphs: Mapping[str, OpGraph], targets: Mapping[str, TargetDescriptor], rows: Sequence[Row],
               val_rows: Sequence[Row], name: str) -> None:
    if not rows:
        raise DataError(f"{name}.fit() needs at least one training row")
    validate_rows(rows, graphs, targets, "training rows")
    validate_rows(val_rows, graphs, targets, "validation rows")


class _PerDeviceRidge(LatencyEstimator):
    """One ridge of log latency per device on ``_features(key)``; subclasses define the features.

    ``alphas``: the penalty is the one of these with the lowest validation log-RMSE
    (pooled over the devices that have validation rows); without validation rows,
    the first. Features are standardized with the training graphs' statistics
    where ``standardize`` says so, and clipped to the training graphs' range
    (``range_``): a linear model extrapolated to a network with ten times the
    largest kernel count it saw predicts nonsense in log space, while the clipped
    one predicts the largest network it knows.
    """

    name = ""
    standardize = True
    _fitted_attribute = "scale_"

    def __init__(self, alphas: Sequence[float]) -> None:
        self.alphas = tuple(alphas)
        self._reset_fitted()

    def _reset_fitted(self) -> None:
        self.alpha_: float | None = None
        self.models_: dict[str, Ridge] = {}
        self.fitted_targets_: list[str] = []
        self.prior_: np.ndarray | None = None
        self.scale_: tuple[np.ndarray, np.ndarray] | None = None
        self.range_: tuple[np.ndarray, np.ndarray] | None = None
        self._cache: dict[str, np.ndarray] = {}

    def _raw(self, key: str, graphs: Mapping[str, OpGraph]) -> np.ndarray:
        raise NotImplementedError

    def _setup(self, graphs: Mapping[str, OpGraph], keys: Sequence[str]) -> None:
        """Learn the feature layout from the training graphs (before any ``_raw`` call)."""

    def _x(self, keys: Sequence[str], graphs: Mapping[str, OpGraph]) -> np.ndarray:
        for key in keys:
            if key not in self._cache:
                self._cache[key] = self._raw(key, graphs)
        mean, std = self.scale_
        low, high = self.range_
        return (np.clip(np.stack([self._cache[k] for k in keys]), low, high) - mean) / std

    def covers(self, target: str) -> bool:
        """Whether ``target`` has a fitted (or adapted) model: the only targets ``predict`` accepts."""
        return target in self.models_

    def fit(self, graphs: Mapping[str, OpGraph], targets: Mapping[str, TargetDescriptor], rows: Sequence[Row],
            val_rows: Sequence[Row] = ()) -> "_PerDeviceRidge":
        """Forget any earlier fit; one ridge per target of ``rows``; validation picks ``alpha_``."""
        if not self.alphas or min(self.alphas) < 0:
            raise ArgumentError(f"{type(self).__name__}: alphas must be a non-empty list of values >= 0, "
                            f"got {self.alphas}")
        _check_fit(graphs, targets, rows, val_rows, type(self).__name__)
        self._reset_fitted()
        keys = sorted({r[0] for r in rows})
        self._setup(graphs, keys)
        self._cache = {k: self._raw(k, graphs) for k in keys}
        raw = np.stack([self._cache[k] for k in keys])
        self.range_ = (raw.min(axis=0), raw.max(axis=0))
        std = raw.std(axis=0)
        self.scale_ = ((raw.mean(axis=0), np.where(std > 0, std, 1.0)) if self.standardize
                       else (np.zeros(raw.shape[1]), np.ones(raw.shape[1])))
        groups = _by_target(rows)
        data = {t: (self._x([r[0] for r in rs], graphs), np.log([r[2] for r in rs])) for t, rs in groups.items()}
        val = {t: rs for t, rs in _by_target(val_rows).items() if t in groups}
        self.alpha_ = self.alphas[0]
        if val and len(self.alphas) > 1:
            val_data = {t: (self._x([r[0] for r in rs], graphs), np.log([r[2] for r in rs])) for t, rs in val.items()}

            def val_error(alpha: float) -> float:
                sq = [(fit_ridge(*data[t], alpha).predict(x) - y) ** 2 for t, (x, y) in val_data.items()]
                return float(np.mean(np.concatenate(sq)))

            self.alpha_ = min(self.alphas, key=val_error)
        self.models_ = {t: fit_ridge(x, y, self.alpha_) for t, (x, y) in data.items()}
        self.fitted_targets_ = sorted(self.models_)
        self.prior_ = np.mean([m.w for m in self.models_.values()], axis=0)
        return self

    def predict(self, graphs: Mapping[str, OpGraph], targets: Mapping[str, TargetDescriptor],
                pairs: Sequence[Pair]) -> np.ndarray:
        self._check_fitted()
        missing = sorted({t for _, t in pairs} - set(self.models_))
        if missing:
            raise ArgumentError(f"{type(self).__name__} has no model for target(s) {missing}: it predicts only the "
                            f"targets it was fitted on ({', '.join(self.models_)}) or adapted to")
        for key, _ in pairs:
            if key not in graphs:
                raise DataError(f"no graph for {key!r}")
        out = np.empty(len(pairs))
        by_target: dict[str, list[int]] = defaultdict(list)
        for i, (_, t) in enumerate(pairs):
            by_target[t].append(i)
        for t, idx in by_target.items():
            out[idx] = np.exp(self.models_[t].predict(self._x([pairs[i][0] for i in idx], graphs)))
        return out


@register_baseline
class AdditiveLinearBaseline(_PerDeviceRidge):
    """Per-device ridge of log latency on the network's kernel-kind histogram (see the module docstring).

    The kinds are those of the training graphs; a kind seen only at prediction
    time adds nothing (the regression has no weight for it). Features are
    ``log1p`` of the histogram (``log_features``): log latency then grows like a
    power of the counts and FLOPs, not exponentially, so networks larger than
    the training ones are not blown up (on validation, log-RMSE 0.39 against
    0.71 for raw counts on the measured zoo, 0.147 against 0.161 on NB201).
    ``alphas`` is the validation grid of the ridge penalty (the first without
    validation rows). ``histogram_cache`` may be shared between models that
    see the same graph keys (benchmark folds). ``adapt`` adds a
    device from ``k`` samples with ``shot_alpha`` pulling its weights toward the
    mean weights of the fitted devices: with few samples the prior keeps the
    relative cost of the kinds, the samples set the device's overall speed.
    """

    name = "additive"

    def __init__(self, alphas: Sequence[float] = (0.1, 0.001, 0.01, 1.0, 10.0), shot_alpha: float = 10.0,
                 log_features: bool = True,
                 histogram_cache: dict[str, dict[str, tuple[float, float, float]]] | None = None) -> None:
        self.shot_alpha = shot_alpha
        self.log_features = log_features
        self.histogram_cache = {} if histogram_cache is None else histogram_cache
        super().__init__(alphas)

    def _reset_fitted(self) -> None:
        super()._reset_fitted()
        self.kinds_: list[str] = []

    def _histogram(self, key: str, graphs: Mapping[str, OpGraph]) -> dict[str, tuple[float, float, float]]:
        if key not in self.histogram_cache:
            self.histogram_cache[key] = _histogram(graphs[key])
        return self.histogram_cache[key]

    def _setup(self, graphs: Mapping[str, OpGraph], keys: Sequence[str]) -> None:
        self.kinds_ = sorted({kind for k in keys for kind in self._histogram(k, graphs)})

    def _raw(self, key: str, graphs: Mapping[str, OpGraph]) -> np.ndarray:
        hist = self._histogram(key, graphs)
        x = np.array([v for kind in self.kinds_ for v in hist.get(kind, (0.0, 0.0, 0.0))])
        return np.log1p(x) if self.log_features else x

    def feature_names(self) -> list[str]:
        return [f"{kind} {what}" for kind in self.kinds_ for what in ("count", "flops", "bytes")]

    def adapt(self, target: str, samples: Sequence[tuple[str, float]], graphs: Mapping[str, OpGraph]) -> None:
        """Fit ``target`` from ``(graph_key, latency_ms)`` samples, ridge toward the fitted devices' mean weights.

        Replaces an earlier model of ``target``; the prior (``prior_``) is the mean
        over the devices of the last ``fit``, never over adapted ones.
        """
        self._check_fitted()
        if not samples:
            raise DataError(f"{type(self).__name__}.adapt({target!r}) needs at least one sample")
        for key, ms in samples:
            if key not in graphs:
                raise DataError(f"adapt({target!r}): no graph for {key!r}")
            if not (math.isfinite(ms) and ms > 0):
                raise DataError(f"adapt({target!r}): latency of {key!r} is {ms!r}; latencies must be finite and > 0")
        x = self._x([k for k, _ in samples], graphs)
        self.models_[target] = fit_ridge(x, np.log([ms for _, ms in samples]), self.shot_alpha, self.prior_)


@register_baseline
class OneHotRidgeBaseline(_PerDeviceRidge):
    """Per-device ridge of log latency on ``nb201_pair_features`` (NB201 spec-string keys only).

    Features are used as they are (0/1, no standardization), lambda 1: the
    fixed recipe whose numbers ``docs/results/baselines.md`` reports.
    """

    name = "onehot-ridge"
    standardize = False

    def __init__(self, alphas: Sequence[float] = (1.0,)) -> None:
        super().__init__(alphas)

    def _raw(self, key: str, graphs: Mapping[str, OpGraph]) -> np.ndarray:
        if not key.startswith(NB201_PREFIX):
            raise DataError(f"OneHotRidgeBaseline: graph key {key!r} is not an {NB201_PREFIX!r} spec string; "
                            "the one-hot ridge knows only NAS-Bench-201")
        return nb201_pair_features(key)
