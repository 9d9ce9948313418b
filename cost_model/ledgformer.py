"""LeDG-Former: a relation-gated graph transformer over operator DAGs, conditioned on the target.

Inputs per batch row ``b`` are one (graph, target) pair. Node states start as
``proj(text embedding) + proj(normalized numeric features)``; the target
(text embedding, optionally its numeric descriptor) gives a conditioning
vector ``c_b`` that modulates every layer (FiLM), seeds the global token and
sets a per-target log-scale.

Output parametrisation (``head``): node ``i`` gets a log-contribution ``l_i``,
``per_op_ms_i = exp(l_i)`` and ``latency_ms_b = Σ_i per_op_ms_i``, so
``log(latency) = logsumexp(l)`` is computed stably and the per-operator
breakdown sums to the total by construction.

* ``roofline`` (default for new models): ``exp(l_i) = t*_i / e_i + o_i`` with the
  roofline time ``t*_i = max(F_i / P, B_i / BW)`` of the kernel's work at the
  target's batch and precision, a learned efficiency ``e_i`` in ``(0, 1]`` and a
  learned overhead ``o_i >= 0`` (``cost_model.layers.roofline_head``). The
  prediction can never beat the hardware's bound, and what is learned (an
  efficiency) stays in a narrow range that transfers to unseen hardware.
* ``free``: ``l_i = w·h_i + offset_b`` (``offset_b`` from the global token and the
  target) regresses the scale directly from the descriptor; checkpoints written
  before the choice existed use it.

Where the target enters (``fusion``):

* ``late`` (what ``LatencyPredictor`` builds for networks): the graph encoder never sees the target, so
  a graph is encoded once however many targets it is predicted on (training
  reads every measured target of a graph from one encoding; ``rank`` predicts
  many targets at the price of one). The roofline head combines node states and
  target conditioning through ``factors``-dimensional dot products (an
  efficiency and an overhead per kernel and target), the factorization that
  makes an additive per-kernel model fit every device at once.
* ``film`` (the config's default): the target modulates every layer (FiLM) and
  seeds the global token; one encoding per (graph, target) row. Checkpoints
  written before the choice existed use it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from cost_model.batch import ALL_RELATIONS, GraphBatch
from cost_model.layers.bgiffn import Adjacency
from cost_model.layers.block import LeDGBlock
from cost_model.layers.gate import GATE_MODES
from cost_model.layers.relation_attention import RelationIndex
from cost_model.layers.roofline_head import RooflineHead
from cost_model.roofline import RooflineTargets, scaled_log_work
from cost_model.target_inputs import TARGET_INPUTS
from targets.errors import CheckpointError

__all__ = ["HEADS", "LeDGFormerConfig", "LeDGOutput", "LeDGFormer"]

HEADS: tuple[str, ...] = ("roofline", "free")
FUSIONS: tuple[str, ...] = ("late", "film")


@dataclass(frozen=True)
class LeDGFormerConfig:
    """Hyper-parameters; ``to_dict``/``from_dict`` round-trip through JSON.

    ``text_dim`` is the text encoder's width, ``num_node_features`` the width
    of ``x_num`` (``len(featurize.FEATURE_NAMES)``), ``num_target_features``
    that of the target descriptor's feature vector. ``gate``: ``dynamic``
    (LeDG-Former), ``learned`` (node-independent) or ``static`` (NN-Former's
    head-per-relation; needs ``heads >= len(relations) + global_token``).
    ``head``: the output parametrisation, one of ``HEADS``; ``fusion``: where the target enters, one
    of ``FUSIONS`` (``film`` applies only to ``fusion="film"``); ``factors``: width of the
    node-target dot products of the late-fusion roofline head; ``known_targets``: rows of the
    table of learned per-target offsets (one per training target, set by the predictor);
    ``target_inputs``: what the conditioning reads of a descriptor, one of
    ``cost_model.target_inputs.TARGET_INPUTS`` (the predictor builds those inputs).
    See the module docstring.
    """

    text_dim: int
    num_node_features: int
    num_target_features: int
    dim: int = 64
    layers: int = 3
    heads: int = 4
    ffn_ratio: float = 2.0
    dropout: float = 0.1
    relations: tuple[str, ...] = ALL_RELATIONS
    gate: str = "dynamic"
    bgiffn: bool = True
    film: bool = True
    global_token: bool = True
    use_target_features: bool = True
    variance_head: bool = False
    head: str = "roofline"
    fusion: str = "film"
    factors: int = 16
    known_targets: int = 0
    target_inputs: str = "all"

    def __post_init__(self) -> None:
        object.__setattr__(self, "relations", tuple(self.relations))
        problems = []
        if self.dim <= 0 or self.layers <= 0 or self.heads <= 0 or self.text_dim <= 0:
            problems.append("dim, layers, heads and text_dim must be positive")
        elif self.dim % self.heads:
            problems.append(f"heads={self.heads} does not divide dim={self.dim}")
        if self.num_node_features <= 0:
            problems.append("num_node_features must be positive")
        distinct = set(self.relations)
        if not self.relations or len(distinct) != len(self.relations) or distinct - set(ALL_RELATIONS):
            problems.append(f"relations={self.relations!r}: expected distinct names from {ALL_RELATIONS}")
        if self.gate not in GATE_MODES:
            problems.append(f"gate={self.gate!r}: expected one of {GATE_MODES}")
        slots = len(self.relations) + int(self.global_token)
        if self.gate == "static" and self.heads < slots:
            problems.append(f"gate='static' gives each head one channel: heads={self.heads} < {slots} channels")
        if self.hidden_dim < 2:
            problems.append(f"ffn_ratio={self.ffn_ratio} gives an FFN narrower than 2")
        if self.use_target_features and self.num_target_features <= 0:
            problems.append("use_target_features=True needs num_target_features > 0")
        if self.head not in HEADS:
            problems.append(f"head={self.head!r}: expected one of {HEADS}")
        if self.fusion not in FUSIONS:
            problems.append(f"fusion={self.fusion!r}: expected one of {FUSIONS}")
        elif self.fusion == "late" and self.head != "roofline":
            problems.append("fusion='late' needs head='roofline' (the free head reads the target per node state)")
        if self.target_inputs not in TARGET_INPUTS:
            problems.append(f"target_inputs={self.target_inputs!r}: expected one of {TARGET_INPUTS}")
        if self.factors < 0 or self.known_targets < 0:
            problems.append("factors and known_targets must be >= 0")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout={self.dropout} outside [0, 1)")
        if problems:
            raise ValueError("LeDGFormerConfig: " + "; ".join(problems))

    @property
    def hidden_dim(self) -> int:
        """FFN width, rounded down to an even number (BGIFFN splits it between directions)."""
        return int(self.dim * self.ffn_ratio) // 2 * 2

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["relations"] = list(self.relations)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LeDGFormerConfig":
        """Rebuild from ``to_dict`` output; unknown or missing keys raise ``CheckpointError``.

        A config without ``head`` or ``fusion`` was written before they existed and describes the free
        head or FiLM fusion, without factorized terms or learned target offsets.
        """
        fields = {f.name for f in dataclasses.fields(cls)}
        d = {"head": "free", "fusion": "film", "factors": 0, "known_targets": 0, "target_inputs": "all", **d}
        unknown = sorted(set(d) - fields)
        if unknown:
            raise CheckpointError(f"LeDGFormerConfig: unknown keys {unknown} (checkpoint from another version?)")
        try:
            return cls(**{k: tuple(v) if k == "relations" else v for k, v in d.items()})
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"LeDGFormerConfig: {exc}") from exc


@dataclass
class LeDGOutput:
    """Predictions for B (graph, target) rows.

    Shapes:
        ``latency_ms``, ``log_latency_ms``: ``(B,)``; ``per_op_ms``: ``(S,)`` flat over the
        batch's nodes, summing to ``latency_ms`` per graph; ``log_var``: ``(B,)`` variance of
        ``log_latency_ms`` when the model has a variance head, else None; ``bound``: ``(S,)`` long
        index into ``roofline.BOUND_LABELS`` per node with the roofline head, else None. With late
        fusion B counts (graph, target) pairs and ``per_op_ms`` / ``bound`` run over the nodes of each
        pair's graph, pair after pair.
    """

    latency_ms: Tensor
    log_latency_ms: Tensor
    per_op_ms: Tensor
    log_var: Tensor | None = None
    bound: Tensor | None = None


def _segment_sum(x: Tensor, counts: Tensor) -> Tensor:
    return torch.segment_reduce(x, "sum", lengths=counts, unsafe=True)


class LeDGFormer(nn.Module):
    """Shapes:
        ``forward(batch, node_text_emb (U, text_dim), target_text_emb (B, text_dim),
        target_features (B, F_t), target_mask (B, F_t), roofline, target_offset (B, dim), pair_graph (B,))``
        -> ``LeDGOutput``; U = ``len(batch.texts)``; B rows are (graph, target) pairs; ``roofline``
        (``RooflineTargets`` of the B rows) is needed by the roofline head only. ``pair_graph``: the batch
        graph of each pair (late fusion: a graph may serve many pairs); None means pair b is graph b.
    """

    def __init__(self, config: LeDGFormerConfig) -> None:
        super().__init__()
        self.config = c = config
        d = c.dim
        self.node_text_proj = nn.Linear(c.text_dim, d)
        self.node_num_proj = nn.Linear(c.num_node_features, d)
        self.register_buffer("x_num_mean", torch.zeros(c.num_node_features))
        self.register_buffer("x_num_std", torch.ones(c.num_node_features))
        self.target_text_proj = nn.Linear(c.text_dim, d)
        if c.use_target_features:
            self.target_feat_proj = nn.Linear(2 * c.num_target_features, d)
            self.register_buffer("target_mean", torch.zeros(c.num_target_features))
            self.register_buffer("target_std", torch.ones(c.num_target_features))
        self.cond_norm = nn.LayerNorm(d)
        self.global_embed = nn.Parameter(torch.zeros(d)) if c.global_token else None
        self.blocks = nn.ModuleList(
            LeDGBlock(d, c.heads, len(c.relations), c.hidden_dim, gate=c.gate, global_token=c.global_token,
                      bgiffn=c.bgiffn, film=c.film and c.fusion == "film", dropout=c.dropout)
            for _ in range(c.layers)
        )
        self.final_norm = nn.LayerNorm(d)
        if c.head == "free":
            self.node_head = nn.Linear(d, 1)
            self.graph_head = nn.Linear(d, 1)
            self.target_scale = nn.Linear(d, 1)
        else:
            self.roofline = RooflineHead(d, c.num_target_features if c.use_target_features else 0,
                                         factors=c.factors)
        # learned corrections of the training targets' conditioning; zero-shot targets get none
        self.target_table = nn.Parameter(torch.zeros(c.known_targets, d)) if c.known_targets else None
        self.var_head = nn.Linear(d, 1) if c.variance_head else None

    # --------------------------------------------------------------- set-up
    @torch.no_grad()
    def fit_normalizers(self, x_num: Tensor, target_features: Tensor | None = None,
                        target_mask: Tensor | None = None) -> None:
        """Standardize inputs with training-set statistics (stored as buffers, saved with the weights)."""
        self.x_num_mean.copy_(x_num.mean(0))
        self.x_num_std.copy_(_safe_std(x_num.std(0, unbiased=False)))
        if self.config.use_target_features and target_features is not None:
            mask = torch.ones_like(target_features) if target_mask is None else target_mask.float()
            n = mask.sum(0).clamp_min(1.0)
            mean = (target_features * mask).sum(0) / n
            var = (((target_features - mean) * mask) ** 2).sum(0) / n
            self.target_mean.copy_(mean)
            self.target_std.copy_(_safe_std(var.sqrt()))

    @torch.no_grad()
    def init_output_bias(self, mean_log_latency_ms: float, mean_num_nodes: float) -> None:
        """Start predictions near the training mean: each node contributes ``mean / N`` at init
        (the roofline head gives half of it to the overhead; the bounded kernel time adds the rest)."""
        per_node = mean_log_latency_ms - math.log(max(mean_num_nodes, 1.0))
        if self.config.head == "free":
            self.node_head.bias.fill_(per_node)
        else:
            self.roofline.init_overhead(per_node - math.log(2.0))

    @torch.no_grad()
    def fit_spec_prior(self, target_features: Tensor, target_mask: Tensor, log_specs: Tensor, known: Tensor,
                       spec_columns: Tensor) -> None:
        """Fit the roofline head's estimate of missing peak / bandwidth on the training targets.

        Call after ``fit_normalizers``. Shapes: ``target_features``, ``target_mask``: ``(T, F_t)``;
        ``log_specs`` ``(T, 2)`` natural logs of (FLOP/s, bytes/s), valid where ``known`` ``(T, 2)``;
        ``spec_columns`` ``(F_t,)`` bool, the features that are those specs. No-op for the free head.
        """
        if self.config.head != "roofline":
            return
        values = mask = None
        if self.config.use_target_features:
            mask = target_mask.to(target_features.dtype)
            values = (target_features - self.target_mean) / self.target_std * mask
        self.roofline.fit_spec_prior(values, mask, log_specs, known, spec_columns)

    # -------------------------------------------------------------- forward
    def forward(self, batch: GraphBatch, node_text_emb: Tensor, target_text_emb: Tensor,
                target_features: Tensor | None = None, target_mask: Tensor | None = None,
                roofline: RooflineTargets | None = None, target_offset: Tensor | None = None,
                pair_graph: Tensor | None = None) -> LeDGOutput:
        """``target_offset`` ``(B, dim)``: a learned per-target correction of the target embedding
        (the training targets' table rows, few-shot adaptations)."""
        c = self.config
        pairs = batch.num_graphs if pair_graph is None else int(pair_graph.shape[0])
        self._check_inputs(batch, node_text_emb, target_text_emb, target_features, target_mask, roofline, pairs,
                           pair_graph)
        s = batch.num_nodes
        # index structures are built from the CPU batch (numpy), then moved with it to the model's device
        device = self.x_num_mean.device
        structure = self._structure(batch, device)
        if pair_graph is None:
            pair_graph = torch.arange(batch.num_graphs)
            node_index, pair_row, counts = None, batch.batch, batch.counts
        else:
            node_index, pair_row, counts = _expand_pairs(batch, pair_graph)
        if device.type != "cpu":
            batch, roofline = batch.to(device), None if roofline is None else roofline.to(device)
            pair_graph, pair_row, counts = pair_graph.to(device), pair_row.to(device), counts.to(device)
            node_index = None if node_index is None else node_index.to(device)
        cond, values, mask = self._condition(target_text_emb, target_features, target_mask, target_offset)
        h = self._encode(batch, node_text_emb, cond if c.fusion == "film" else None, structure)
        summary = h[s:] if c.global_token else _segment_sum(h[:s], batch.counts) / batch.counts[:, None]
        bound = None
        if c.head == "free":
            offset = self.graph_head(summary).squeeze(-1) + self.target_scale(cond).squeeze(-1)
            node_log = self.node_head(h[:s]).squeeze(-1) + offset[batch.batch]
        else:
            work = batch.work if node_index is None else batch.work[node_index]
            log_flops, log_bytes = scaled_log_work(work, batch.input_batch[pair_graph], pair_row, roofline)
            estimate = self.roofline.estimate_specs(values, mask, cond)
            log_specs = torch.where(roofline.specs_known, roofline.log_specs.to(estimate.dtype), estimate)
            node_log, bound = self.roofline(h[:s], cond, pair_row, log_flops.to(h.dtype), log_bytes.to(h.dtype),
                                            log_specs, node_index=node_index)
        peak = torch.segment_reduce(node_log.detach(), "max", lengths=counts, unsafe=True)
        per_op = torch.exp(node_log)
        log_latency = torch.log(_segment_sum(torch.exp(node_log - peak[pair_row]), counts)) + peak
        log_var = self.var_head(summary).squeeze(-1)[pair_graph] if self.var_head is not None else None
        return LeDGOutput(_segment_sum(per_op, counts), log_latency, per_op, log_var, bound)

    def _condition(self, target_text_emb: Tensor, target_features: Tensor | None, target_mask: Tensor | None,
                   target_offset: Tensor | None) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """The target conditioning ``(B, dim)`` and the standardized, masked target features it read."""
        cond = self.target_text_proj(target_text_emb)
        values = mask = None
        if self.config.use_target_features:
            mask = torch.ones_like(target_features) if target_mask is None else target_mask.to(target_features.dtype)
            values = (target_features - self.target_mean) / self.target_std * mask
            cond = cond + self.target_feat_proj(torch.cat([values, mask], dim=-1))
        if target_offset is not None:
            cond = cond + target_offset
        return self.cond_norm(cond), values, mask

    def _structure(self, batch: GraphBatch, device: torch.device) -> tuple[RelationIndex, Adjacency]:
        """The attention index and adjacency of a CPU batch, on ``device``."""
        rows = batch.num_nodes + (batch.num_graphs if self.config.global_token else 0)
        index = RelationIndex.from_batch(batch, self.config.global_token).to(device, self.config.heads)
        return index, Adjacency.from_edges(batch.edge_index, rows).to(device)

    def _encode(self, batch: GraphBatch, node_text_emb: Tensor, cond: Tensor | None,
                structure: tuple[RelationIndex, Adjacency]) -> Tensor:
        """Node states (then one global row per graph): ``(S [+ G], dim)``; ``cond`` (G, dim) only with FiLM."""
        c = self.config
        x = self.node_text_proj(node_text_emb)[batch.node_text_index]
        x = x + self.node_num_proj((batch.x_num - self.x_num_mean) / self.x_num_std)
        row_graph = batch.batch
        if c.global_token:
            seed = self.global_embed.expand(batch.num_graphs, -1) if cond is None else cond + self.global_embed
            x = torch.cat([x, seed])
            row_graph = torch.cat([batch.batch, torch.arange(batch.num_graphs, device=x.device)])
        index, adjacency = structure
        for block in self.blocks:
            x = block(x, index, adjacency, cond, row_graph)
        return self.final_norm(x)

    def _check_inputs(self, batch: GraphBatch, node_text_emb: Tensor, target_text_emb: Tensor,
                      target_features: Tensor | None, target_mask: Tensor | None,
                      roofline: RooflineTargets | None, pairs: int, pair_graph: Tensor | None) -> None:
        c = self.config
        if pair_graph is not None:
            if c.fusion == "film" and not torch.equal(pair_graph, torch.arange(batch.num_graphs)):
                raise ValueError("fusion='film' encodes one graph per pair: collate each pair's graph")
            if pair_graph.numel() and (int(pair_graph.min()) < 0 or int(pair_graph.max()) >= batch.num_graphs):
                raise ValueError(f"pair_graph indexes graphs outside the batch's {batch.num_graphs}")
        if tuple(batch.relations) != c.relations:
            raise ValueError(f"batch built for relations {batch.relations}, model uses {c.relations}; "
                             f"collate(graphs, relations=config.relations)")
        if batch.x_num.shape[1] != c.num_node_features:
            raise CheckpointError(f"batch has {batch.x_num.shape[1]} node features, the model expects "
                                  f"{c.num_node_features}; featurize with the schema it was trained on")
        for name, emb, rows in (("node_text_emb", node_text_emb, len(batch.texts)),
                                ("target_text_emb", target_text_emb, pairs)):
            if emb.dim() != 2 or emb.shape != (rows, c.text_dim):
                raise ValueError(f"{name} has shape {tuple(emb.shape)}, expected ({rows}, {c.text_dim})")
        if c.use_target_features:
            if target_features is None:
                raise ValueError("the model uses target features; pass target_features (and target_mask)")
            expected = (pairs, c.num_target_features)
            bad_mask = target_mask is not None and target_mask.shape != target_features.shape
            if tuple(target_features.shape) != expected or bad_mask:
                raise CheckpointError(f"target features have shape {tuple(target_features.shape)}, the model "
                                      f"expects {expected}; use the target schema it was trained on")
        if c.head == "roofline":
            if batch.work is None:
                raise ValueError("the roofline head needs per-kernel work: build graphs with "
                                 "featurize.graph_tensors (GraphTensors.work)")
            if roofline is None or roofline.log_specs.shape != (pairs, 2):
                raise ValueError(f"the roofline head needs roofline=roofline_targets(descriptors) "
                                 f"for the batch's {pairs} rows")


def _expand_pairs(batch: GraphBatch, pair_graph: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(node_index (E,), pair_row (E,), counts (B,))``: the nodes of each pair's graph, pair after pair.

    Index arithmetic in numpy, as in ``RelationIndex.from_batch`` (a few microseconds per call)."""
    graph = pair_graph.numpy()
    counts = batch.counts.numpy()[graph]
    starts = batch.ptr.numpy()[:-1][graph]
    ends = np.cumsum(counts)
    node_index = np.repeat(starts - (ends - counts), counts) + np.arange(int(ends[-1]) if len(ends) else 0)
    pair_row = np.repeat(np.arange(len(graph)), counts)
    return torch.from_numpy(node_index), torch.from_numpy(pair_row), torch.from_numpy(counts)


def _safe_std(std: Tensor) -> Tensor:
    """Constant features (std 0) are only centred, not blown up."""
    return torch.where(std > 1e-6, std, torch.ones_like(std))
