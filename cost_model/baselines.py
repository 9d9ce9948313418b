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
- ``OneHotMLP``: architecture one-hot (NB201 / OFA spec strings) + target
  features -> MLP; sees no graph, so it tells how much the graph matters.
- ``GraphSAGEBaseline``: an NNLP-style GNN over the operator graph.
"""

from __future__ import annotations

import math
import zlib
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from cost_model.batch import GraphTensors
from cost_model.data.specs import (
    NB201_OPS,
    NB201_PREFIX,
    OFA_DEPTHS,
    OFA_EXPAND_RATIOS,
    OFA_KERNEL_SIZES,
    OFA_NUM_BLOCKS,
    OFA_NUM_STAGES,
    OFA_PREFIX,
    parse_nb201_cell,
    parse_ofa_spec,
)
from cost_model.estimator import BASELINES, LatencyEstimator, register_baseline
from cost_model.featurize import graph_tensors
from cost_model.graph import OpGraph
from cost_model.linear_baselines import AdditiveLinearBaseline, OneHotRidgeBaseline  # noqa: F401  (registers them)
from cost_model.loglinear import fit_loglinear
from cost_model.metrics import log_rmse
from cost_model.rows import Row, validate_rows
from cost_model.trainer import LoopSettings, TrainTask, run_training
from targets.errors import ArgumentError, DataError
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

Pair = tuple[str, str]


# ------------------------------------------------------------------- shared helpers


def _check_fit_inputs(graphs: Mapping[str, OpGraph], targets: Mapping[str, TargetDescriptor],
                      rows: Sequence[Row], val_rows: Sequence[Row], name: str) -> None:
    if not rows:
        raise DataError(f"{name}.fit() needs at least one training row")
    validate_rows(rows, graphs, targets, "training rows")
    validate_rows(val_rows, graphs, targets, "validation rows")


def _check_pairs(graphs: Mapping[str, OpGraph], targets: Mapping[str, TargetDescriptor],
                 pairs: Sequence[Pair]) -> None:
    for key, target in pairs:
        if target not in targets:
            raise DataError(f"no target descriptor named {target!r}")
        if key not in graphs:
            raise DataError(f"no graph for {key!r}")


def _target_vector(desc: TargetDescriptor) -> np.ndarray:
    """``values`` then ``mask`` of ``to_features()``: a known 0 differs from an unknown one."""
    values, mask = desc.to_features()
    return np.asarray(values + mask, dtype=np.float64)


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
            raise DataError(f"FlopsBaseline: feature {self.feature!r} is not 'flops' or 'params'")
        _check_fit_inputs(graphs, targets, rows, val_rows, type(self).__name__)
        self._reset_fitted()
        sizes = {k: math.log(_graph_size(graphs[k], self.feature)) for k in {r[0] for r in rows}}
        per_target = {t: (np.array([sizes[r[0]] for r in rs]), np.log([r[2] for r in rs]))
                      for t, rs in _by_target(rows).items()}
        self.coef_ = {t: fit_loglinear(lx, ly) for t, (lx, ly) in per_target.items()}
        dx = np.concatenate([lx - lx.mean() for lx, _ in per_target.values()])
        dy = np.concatenate([ly - ly.mean() for _, ly in per_target.values()])
        self.slope_ = float(dx @ dy / (dx @ dx)) if dx @ dx > 0 else 1.0
        intercepts = np.array([np.mean(ly - self.slope_ * lx) for lx, ly in per_target.values()])
        features = np.stack([_target_vector(targets[t]) for t in per_target])
        self.ridge_ = _fit_ridge(features, intercepts, self.alpha)
        return self

    def predict(self, graphs: Mapping[str, OpGraph], targets: Mapping[str, TargetDescriptor],
                pairs: Sequence[Pair]) -> np.ndarray:
        self._check_fitted()
        _check_pairs(graphs, targets, pairs)
        out = np.empty(len(pairs))
        for i, (key, target) in enumerate(pairs):
            a, b = self.coef_.get(target) or self.zero_shot_coef(targets[target])
            out[i] = math.exp(a + b * math.log(_graph_size(graphs[key], self.feature)))
        return out

    def zero_shot_coef(self, desc: TargetDescriptor) -> tuple[float, float]:
        """``(a, b)`` for a target without training rows, from its descriptor."""
        self._check_fitted()
        w, w0 = self.ridge_
        return float(_target_vector(desc) @ w + w0), self.slope_


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
        _check_fit_inputs(graphs, targets, rows, val_rows, type(self).__name__)
        self._reset_fitted()
        groups = _by_target(rows)
        log_ms: dict[str, dict[str, list[float]]] = {t: defaultdict(list) for t in groups}
        for key, target, ms in rows:
            log_ms[target][key].append(math.log(ms))
        self.measured_ = {t: {k: math.exp(float(np.mean(v))) for k, v in m.items()} for t, m in log_ms.items()}
        fit_rows = [r for rs in groups.values() for r in self._fit_subset(rs)]
        self.flops_ = FlopsBaseline("flops", alpha=self.alpha).fit(graphs, targets, fit_rows)
        per_flop = _by_target([(k, t, ms / _graph_size(graphs[k], "flops")) for k, t, ms in fit_rows])
        self.features_ = {t: _target_vector(targets[t]) for t in groups}
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
        _check_pairs(graphs, targets, pairs)
        w, w0 = self.ridge_
        scale: dict[str, float] = {}
        for target in sorted({t for _, t in pairs} - set(self.measured_)):
            proxy = self.proxies_[target] = self.proxy_for(targets[target])
            scale[target] = math.exp(float((_target_vector(targets[target]) - self.features_[proxy]) @ w))
        out = np.empty(len(pairs))
        for i, (key, target) in enumerate(pairs):
            proxy = self.proxies_[target]
            ms = self.measured_[proxy].get(key)
            if ms is None:
                a, b = self.flops_.coef_[proxy]
                ms = math.exp(a + b * math.log(_graph_size(graphs[key], "flops")))
            out[i] = ms * scale.get(target, 1.0)
        return out


# ------------------------------------------------------------- trained baselines


class _TorchBaseline(LatencyEstimator):
    """The learned baselines: MSE on standardized log latency, Adam, seeded shuffling, early
    stopping on ``val_rows`` (best epoch's weights kept), all through ``cost_model.trainer``.

    Subclasses build ``module_`` in ``_setup`` and map pairs to standardized log
    latency in ``_forward``; ``_batches`` decides which rows share a step.
    ``rows_per_epoch`` (None: all) bounds an epoch's cost, as in ``TrainConfig``.
    """

    _fitted_attribute = "module_"

    def __init__(self, epochs: int, lr: float, batch_size: int, patience: int, weight_decay: float,
                 seed: int, rows_per_epoch: int | None) -> None:
        self.epochs = epochs
        self.rows_per_epoch = rows_per_epoch
        self.lr = lr
        self.batch_size = batch_size
        self.patience = patience
        self.weight_decay = weight_decay
        self.seed = seed
        self._reset_fitted()

    def _reset_fitted(self) -> None:
        self.module_: nn.Module | None = None
        self.y_mean_ = 0.0
        self.y_std_ = 1.0
        self.history_: list[dict[str, float]] = []

    def _setup(self, graphs: Mapping[str, OpGraph], targets: Mapping[str, TargetDescriptor],
               rows: Sequence[Row]) -> nn.Module:
        raise NotImplementedError

    def _forward(self, graphs: Mapping[str, OpGraph], targets: Mapping[str, TargetDescriptor],
                 pairs: Sequence[Pair]) -> Tensor:
        raise NotImplementedError

    def _batches(self, rows: Sequence[Row], rng: np.random.Generator) -> Iterator[np.ndarray]:
        order = rng.permutation(len(rows))[:self.rows_per_epoch]
        for start in range(0, len(order), self.batch_size):
            yield order[start:start + self.batch_size]

    def fit(self, graphs: Mapping[str, OpGraph], targets: Mapping[str, TargetDescriptor], rows: Sequence[Row],
            val_rows: Sequence[Row] = ()) -> "_TorchBaseline":
        _check_fit_inputs(graphs, targets, rows, val_rows, type(self).__name__)
        self._reset_fitted()
        torch.manual_seed(self.seed)
        self.module_ = module = self._setup(graphs, targets, rows)
        log_y = np.log([r[2] for r in rows])
        self.y_mean_, self.y_std_ = float(log_y.mean()), float(max(log_y.std(), 1e-3))
        y = torch.tensor((log_y - self.y_mean_) / self.y_std_, dtype=torch.float32)

        def batch_loss(idx: np.ndarray) -> Tensor:
            pred = self._forward(graphs, targets, [(rows[i][0], rows[i][1]) for i in idx])
            return torch.nn.functional.mse_loss(pred, y[torch.from_numpy(idx)])

        def evaluate() -> float:
            return log_rmse([r[2] for r in val_rows], self.predict(graphs, targets, [(r[0], r[1]) for r in val_rows]))

        task = TrainTask(params=list(module.parameters()), batch_loss=batch_loss, num_rows=len(rows),
                         modules=[module], evaluate=evaluate if val_rows else None, state=module.state_dict,
                         load_state=module.load_state_dict, batches=lambda rng: self._batches(rows, rng),
                         history=self.history_)
        run_training(task, LoopSettings(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                                        weight_decay=self.weight_decay, optimizer="adam", clip_norm=1.0,
                                        patience=self.patience, seed=self.seed, rows_per_epoch=self.rows_per_epoch),
                     describe=type(self).__name__)
        return self

    @torch.inference_mode()
    def predict(self, graphs: Mapping[str, OpGraph], targets: Mapping[str, TargetDescriptor],
                pairs: Sequence[Pair], batch_size: int = 512) -> np.ndarray:
        self._check_fitted()
        _check_pairs(graphs, targets, pairs)
        self.module_.eval()
        out = [self._forward(graphs, targets, pairs[s:s + batch_size]).double().numpy()
               for s in range(0, len(pairs), batch_size)]
        log_ms = np.concatenate(out) if out else np.zeros(0)
        return np.exp(self.y_mean_ + self.y_std_ * log_ms)


def _target_tensor(targets: Mapping[str, TargetDescriptor], names: Sequence[str]) -> Tensor:
    """``(B, 2T)`` values and masks of ``to_features()``, each distinct target computed once."""
    rows = {t: torch.tensor(_target_vector(targets[t]), dtype=torch.float32) for t in set(names)}
    return torch.stack([rows[t] for t in names])


def _mlp(inputs: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, 1))


# ------------------------------------------------------------------- one-hot MLP

_NB201_WIDTH = 6 * len(NB201_OPS)
_OFA_WIDTH = OFA_NUM_BLOCKS * (len(OFA_KERNEL_SIZES) + len(OFA_EXPAND_RATIOS)) + OFA_NUM_STAGES * len(OFA_DEPTHS) + 1
_ARCH_WIDTH = 2 + _NB201_WIDTH + _OFA_WIDTH
_OFA_MAX_RESOLUTION = 224


def _arch_encoding(key: str) -> np.ndarray:
    """One fixed-width vector for either space: ``[is_nb201, nb201 one-hot, is_ofa, ofa one-hot]``.

    NB201: each of the 6 edges one-hot over ``NB201_OPS``. OFA: per block slot
    one-hot kernel size and expand ratio (zero for slots beyond the stage's
    depth, which the network does not run), per stage one-hot depth, and the
    resolution divided by 224.
    """
    out = np.zeros(_ARCH_WIDTH, dtype=np.float32)
    if key.startswith(NB201_PREFIX):
        out[0] = 1.0
        for edge, op in enumerate(parse_nb201_cell(key)):
            out[1 + edge * len(NB201_OPS) + NB201_OPS.index(op)] = 1.0
        return out
    if not key.startswith(OFA_PREFIX):
        raise DataError(f"OneHotMLP: graph key {key!r} is not a spec string starting with "
                        f"{NB201_PREFIX!r} or {OFA_PREFIX!r}; the one-hot encoding knows only those spaces")
    config = parse_ofa_spec(key)
    base = 1 + _NB201_WIDTH
    out[base] = 1.0
    ks, e = base + 1, base + 1 + OFA_NUM_BLOCKS * len(OFA_KERNEL_SIZES)
    depth = e + OFA_NUM_BLOCKS * len(OFA_EXPAND_RATIOS)
    per_stage = OFA_NUM_BLOCKS // OFA_NUM_STAGES
    for stage, d in enumerate(config["d"]):
        out[depth + stage * len(OFA_DEPTHS) + OFA_DEPTHS.index(d)] = 1.0
        for slot in range(stage * per_stage, stage * per_stage + d):
            out[ks + slot * len(OFA_KERNEL_SIZES) + OFA_KERNEL_SIZES.index(config["ks"][slot])] = 1.0
            out[e + slot * len(OFA_EXPAND_RATIOS) + OFA_EXPAND_RATIOS.index(config["e"][slot])] = 1.0
    out[-1] = config["r"] / _OFA_MAX_RESOLUTION
    return out


@register_baseline
class OneHotMLP(_TorchBaseline):
    """MLP on the architecture's one-hot encoding (from its spec string, no graph) and the
    target's feature vector; keys must be ``nb201:`` or ``ofa:`` spec strings."""

    name = "mlp"

    def __init__(self, hidden: int = 128, epochs: int = 40, lr: float = 1e-3, batch_size: int = 128,
                 patience: int = 5, weight_decay: float = 0.0, seed: int = 0,
                 rows_per_epoch: int | None = None) -> None:
        super().__init__(epochs, lr, batch_size, patience, weight_decay, seed, rows_per_epoch)
        self.hidden = hidden
        self._codes: dict[str, Tensor] = {}

    def _code(self, key: str) -> Tensor:
        if key not in self._codes:
            self._codes[key] = torch.from_numpy(_arch_encoding(key))
        return self._codes[key]

    def _setup(self, graphs: Mapping[str, OpGraph], targets: Mapping[str, TargetDescriptor],
               rows: Sequence[Row]) -> nn.Module:
        for key in sorted({r[0] for r in rows}):
            self._code(key)  # unknown spaces fail before training starts
        return _mlp(_ARCH_WIDTH + len(_target_vector(targets[rows[0][1]])), self.hidden)

    def _forward(self, graphs: Mapping[str, OpGraph], targets: Mapping[str, TargetDescriptor],
                 pairs: Sequence[Pair]) -> Tensor:
        x = torch.cat([torch.stack([self._code(k) for k, _ in pairs]), _target_tensor(targets, [t for _, t in pairs])],
                      dim=1)
        return self.module_(x).squeeze(-1)


# --------------------------------------------------------------------- GraphSAGE


class _SAGE(nn.Module):
    """Node encoder + SAGE layers (self, mean of parents, mean of children) + sum/mean pooling + head.

    Neighbour means and pooling are sparse matrix products: on CPU they are
    several times faster than ``index_add_`` and deterministic.

    Shapes:
        ``x``: ``(S, F)`` standardized node features; ``ops``: ``(S,)`` op ids;
        ``parents``, ``children``: sparse ``(S, S)``, row i averages i's parents / children;
        ``pool``: sparse ``(G, S)``, row g sums graph g's nodes; ``glob``: ``(G, 3)``;
        ``rows``: ``(B,)`` graph of each row; ``target``: ``(B, 2T)`` -> ``(B,)`` standardized log latency.
    """

    def __init__(self, num_features: int, num_ops: int, dim: int, layers: int, num_target: int,
                 size_scale: float) -> None:
        super().__init__()
        self.inp = nn.Linear(num_features, dim)
        self.op = nn.Embedding(num_ops, dim)
        self.convs = nn.ModuleList(nn.Linear(3 * dim, dim) for _ in range(layers))
        self.head = _mlp(2 * dim + 3 + num_target, dim)
        self.size_scale = size_scale  # mean training graph size: keeps sum pooling O(1)

    def forward(self, x: Tensor, ops: Tensor, parents: Tensor, children: Tensor, pool: Tensor, glob: Tensor,
                rows: Tensor, target: Tensor) -> Tensor:
        h = torch.relu(self.inp(x) + self.op(ops))
        for conv in self.convs:
            h = torch.relu(conv(torch.cat([h, torch.sparse.mm(parents, h), torch.sparse.mm(children, h)], dim=1)))
        total = torch.sparse.mm(pool, h)
        counts = torch.sparse.sum(pool, dim=1).to_dense().unsqueeze(1)
        pooled = torch.cat([total / self.size_scale, total / counts, glob], dim=1)
        return self.head(torch.cat([pooled[rows], target], dim=1)).squeeze(-1)


def _mean_matrix(to: Tensor, frm: Tensor, n: int) -> Tensor:
    """Sparse ``(n, n)`` matrix whose row i averages the rows ``frm[e]`` with ``to[e] == i``."""
    degree = torch.bincount(to, minlength=n).clamp(min=1)
    return torch.sparse_coo_tensor(torch.stack([to, frm]), 1.0 / degree[to].float(), (n, n),
                                   check_invariants=False).coalesce()


@register_baseline
class GraphSAGEBaseline(_TorchBaseline):
    """NNLP-style GNN over the operator graph, conditioned on the target's feature vector.

    Node input: ``graph_tensors(graph).x_num`` standardized with training-graph
    statistics, plus a learned embedding of the op type (vocabulary of the
    training graphs; index 0 for ops never seen). Graph input: log total FLOPs,
    log parameters, log node count (standardized). A step takes whole graphs
    with all their training rows, and embeds each graph once however many
    targets measured it. ``feature_cache`` is shared with ``LatencyPredictor``
    when both see the same graph keys.

    ``rows_per_epoch`` defaults to 4000 (as the hardware-transfer benchmark
    trains ``LatencyPredictor``): on 2 CPU cores an epoch over 20k rows of
    250-node graphs takes about 11 s, over 4000 rows about 2 s.
    """

    name = "graphsage"

    def __init__(self, dim: int = 64, layers: int = 3, epochs: int = 15, lr: float = 2e-3, batch_size: int = 128,
                 patience: int = 5, weight_decay: float = 0.0, seed: int = 0, rows_per_epoch: int | None = 4000,
                 feature_cache: dict[str, GraphTensors] | None = None) -> None:
        self.dim = dim
        self.layers = layers
        self.feature_cache: dict[str, GraphTensors] = {} if feature_cache is None else feature_cache
        super().__init__(epochs, lr, batch_size, patience, weight_decay, seed, rows_per_epoch)

    def _reset_fitted(self) -> None:
        super()._reset_fitted()
        self.vocab_: dict[str, int] = {}
        self.x_stats_: tuple[Tensor, Tensor] | None = None
        self.glob_stats_: tuple[Tensor, Tensor] | None = None
        self._inputs: dict[str, tuple[Tensor, Tensor, Tensor, Tensor]] = {}

    def _raw(self, key: str, graphs: Mapping[str, OpGraph]) -> tuple[Tensor, Tensor]:
        if key not in self.feature_cache:
            self.feature_cache[key] = graph_tensors(graphs[key])
        graph = graphs[key]
        glob = torch.tensor([math.log1p(graph.total_flops), math.log1p(graph.total_params), math.log(graph.num_nodes)])
        return self.feature_cache[key].x_num.float(), glob

    def _graph(self, key: str, graphs: Mapping[str, OpGraph]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Standardized ``(x, ops, edge_index, glob)`` of one graph, built once per fit."""
        if key not in self._inputs:
            x, glob = self._raw(key, graphs)
            (x_mean, x_std), (g_mean, g_std) = self.x_stats_, self.glob_stats_
            ops = torch.tensor([self.vocab_.get(n.op, 0) for n in graphs[key].nodes])
            # clone: a shared cache may hold tensors made under inference mode, unusable in autograd
            edge_index = self.feature_cache[key].edge_index.clone()
            self._inputs[key] = ((x - x_mean) / x_std, ops, edge_index, (glob - g_mean) / g_std)
        return self._inputs[key]

    def _setup(self, graphs: Mapping[str, OpGraph], targets: Mapping[str, TargetDescriptor],
               rows: Sequence[Row]) -> nn.Module:
        keys = sorted({r[0] for r in rows})
        raw = [self._raw(k, graphs) for k in keys]
        x_all, glob_all = torch.cat([x for x, _ in raw]), torch.stack([g for _, g in raw])
        self.x_stats_ = (x_all.mean(0), x_all.std(0, unbiased=False).clamp(min=1e-6))
        self.glob_stats_ = (glob_all.mean(0), glob_all.std(0, unbiased=False).clamp(min=1e-6))
        ops = sorted({n.op for k in keys for n in graphs[k].nodes})
        self.vocab_ = {op: i + 1 for i, op in enumerate(ops)}
        self._inputs = {}
        for key in keys:
            self._graph(key, graphs)
        return _SAGE(x_all.shape[1], len(ops) + 1, self.dim, self.layers, len(_target_vector(targets[rows[0][1]])),
                     size_scale=x_all.shape[0] / len(keys))

    def _batches(self, rows: Sequence[Row], rng: np.random.Generator) -> Iterator[np.ndarray]:
        by_key: dict[str, list[int]] = defaultdict(list)
        for i, row in enumerate(rows):
            by_key[row[0]].append(i)
        groups = [by_key[k] for k in sorted(by_key)]
        budget = len(rows) if self.rows_per_epoch is None else self.rows_per_epoch
        batch: list[int] = []
        for g in rng.permutation(len(groups)):
            batch.extend(groups[g])
            budget -= len(groups[g])
            if len(batch) >= self.batch_size or budget <= 0:
                yield np.array(batch)
                batch = []
            if budget <= 0:
                return
        if batch:
            yield np.array(batch)

    def _forward(self, graphs: Mapping[str, OpGraph], targets: Mapping[str, TargetDescriptor],
                 pairs: Sequence[Pair]) -> Tensor:
        keys = list(dict.fromkeys(k for k, _ in pairs))
        index = {k: i for i, k in enumerate(keys)}
        parts = [self._graph(k, graphs) for k in keys]
        counts = torch.tensor([p[0].shape[0] for p in parts])
        offsets = torch.cumsum(counts, 0) - counts
        x = torch.cat([p[0] for p in parts])
        ops = torch.cat([p[1] for p in parts])
        edge_index = torch.cat([p[2] + o for p, o in zip(parts, offsets)], dim=1)
        n = int(counts.sum())
        batch = torch.repeat_interleave(torch.arange(len(keys)), counts)
        pool = torch.sparse_coo_tensor(torch.stack([batch, torch.arange(n)]), torch.ones(n), (len(keys), n),
                                       check_invariants=False)
        src, dst = edge_index
        glob = torch.stack([p[3] for p in parts])
        rows = torch.tensor([index[k] for k, _ in pairs])
        return self.module_(x, ops, _mean_matrix(dst, src, n), _mean_matrix(src, dst, n), pool.coalesce(), glob,
                            rows, _target_tensor(targets, [t for _, t in pairs]))


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
