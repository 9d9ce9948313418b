"""The trained baselines: a one-hot MLP over spec strings and a GraphSAGE GNN over the operator graph.

Both are ``LatencyEstimator``\ s trained through the shared loop (``cost_model.trainer``), as
``LatencyPredictor`` is, so a comparison with it differs in the model only:

- ``OneHotMLP``: architecture one-hot (NB201 / OFA spec strings) + target
  features -> MLP; sees no graph, so it tells how much the graph matters.
- ``GraphSAGEBaseline``: an NNLP-style GNN over the operator graph.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from cost_model.baseline_inputs import Pair, check_fit_inputs, check_pairs, target_vector
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
from cost_model.estimator import LatencyEstimator, register_baseline
from cost_model.featurize import graph_tensors
from cost_model.graph import OpGraph
from cost_model.metrics import log_rmse
from cost_model.rows import Row
from cost_model.trainer import LoopSettings, TrainTask, run_training
from targets.errors import DataError
from targets.schema import TargetDescriptor

__all__ = ["OneHotMLP", "GraphSAGEBaseline"]


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
        check_fit_inputs(graphs, targets, rows, val_rows, type(self).__name__)
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
        check_pairs(graphs, targets, pairs)
        self.module_.eval()
        out = [self._forward(graphs, targets, pairs[s:s + batch_size]).double().numpy()
               for s in range(0, len(pairs), batch_size)]
        log_ms = np.concatenate(out) if out else np.zeros(0)
        return np.exp(self.y_mean_ + self.y_std_ * log_ms)


def _target_tensor(targets: Mapping[str, TargetDescriptor], names: Sequence[str]) -> Tensor:
    """``(B, 2T)`` values and masks of ``to_features()``, each distinct target computed once."""
    rows = {t: torch.tensor(target_vector(targets[t]), dtype=torch.float32) for t in set(names)}
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
        return _mlp(_ARCH_WIDTH + len(target_vector(targets[rows[0][1]])), self.hidden)

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
        return _SAGE(x_all.shape[1], len(ops) + 1, self.dim, self.layers, len(target_vector(targets[rows[0][1]])),
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