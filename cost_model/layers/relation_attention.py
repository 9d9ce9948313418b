"""Relation-masked multi-head attention with gated relation channels and a global-token channel.

For node ``i``, head ``h`` and relation ``r`` (``batch.py`` defines the masks)::

    a_r(i) = Σ_j softmax_{j ∈ M_r[i]}(q_i · k_j / √d_h) v_j        (zeros when M_r[i] is empty)
    out(i) = Σ_r g_{i,h,r} a_r(i) + g_{i,h,glob} v_glob(graph of i)

Each relation has its own softmax, so a node with two parents and forty
siblings still gives its parents full weight. The global (target) token is a
channel of its own, not a graph node, so it never makes nodes siblings; it
attends to every node of its graph and to itself with an ordinary softmax.

Everything runs on flat rows (nodes of all graphs, then one global row per
graph) and on a sparse pattern of related pairs, so the cost grows with the
number of related pairs, not with ``N_max ** 2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from cost_model.batch import GraphBatch
from cost_model.layers.csr import CSRPattern, sddmm, spmm
from cost_model.layers.gate import RelationGate

__all__ = ["RelationIndex", "RelationAttention"]


@dataclass
class RelationIndex:
    """Attention structure of one batch, built once per forward and shared by all layers.

    Rows ``0..S-1`` are nodes, rows ``S..S+B-1`` the global tokens (when
    ``global_token``). Attention entries ``(query row, key row)`` are grouped
    into softmax segments, each a contiguous run of entries:

    * ``i * R + r`` for ``r < R``: node ``i``, relation ``r`` (``batch.rel_index``);
    * ``S * R + i`` (global token only): node ``i`` reading its graph's global token;
    * ``S * R + S + b`` (global token only): global token ``b`` reading every node
      of graph ``b`` and itself.

    Shapes:
        ``pattern``: distinct pairs, a ``(rows, rows)`` CSR pattern with P entries;
        ``entry_pair``: ``(M,)`` pair of each entry; ``entry_seg``: ``(M,)``;
        ``seg_len``: ``(num_segments,)``; ``available``: ``(S, slots)`` non-empty channels.
    """

    num_nodes: int
    num_graphs: int
    num_relations: int
    global_token: bool
    pattern: CSRPattern
    entry_pair: Tensor
    entry_seg: Tensor
    seg_len: Tensor
    available: Tensor
    _per_heads: dict[int, CSRPattern] = field(default_factory=dict, repr=False)

    @classmethod
    def from_batch(cls, batch: GraphBatch, global_token: bool) -> "RelationIndex":
        # Index arithmetic on flat int arrays: numpy, where each call costs microseconds
        # (torch.repeat_interleave costs milliseconds per call with two threads).
        s, b, r = batch.num_nodes, batch.num_graphs, len(batch.relations)
        rows = s + (b if global_token else 0)
        rel, query, key = batch.rel_index.numpy()
        seg = query * r + rel
        if seg.size > 1 and (seg[1:] < seg[:-1]).any():
            raise ValueError("GraphBatch.rel_index must be sorted by (node, relation); build batches with collate()")
        num_segments = s * r
        available = (np.bincount(seg, minlength=s * r) > 0).reshape(s, r)
        if global_token:
            nodes, glob = np.arange(s), s + batch.batch.numpy()
            # Each global row's keys: its graph's nodes, then itself (rows are contiguous per graph).
            glob_query = np.repeat(s + np.arange(b), batch.counts.numpy() + 1)
            glob_key = _graph_keys(batch.ptr.numpy(), s)
            query = np.concatenate([query, nodes, glob_query])
            key = np.concatenate([key, glob, glob_key])
            seg = np.concatenate([seg, s * r + nodes, glob_query - s + s * r + s])
            num_segments += s + b
            available = np.concatenate([available, np.ones((s, 1), dtype=bool)], axis=1)
        keys, entry_pair = np.unique(query * rows + key, return_inverse=True)
        pattern = CSRPattern.from_coo(torch.from_numpy(keys // rows), torch.from_numpy(keys % rows), rows, rows)
        seg_len = torch.from_numpy(np.bincount(seg, minlength=num_segments))
        return cls(s, b, r, global_token, pattern, torch.from_numpy(entry_pair.reshape(-1)), torch.from_numpy(seg),
                   seg_len, torch.from_numpy(available))

    def to(self, device: torch.device, heads: int) -> "RelationIndex":
        """This index on ``device``, with the pattern for ``heads`` heads built (in numpy) beforehand;
        a CPU index is returned as it is."""
        if device.type == "cpu":
            return self
        return RelationIndex(self.num_nodes, self.num_graphs, self.num_relations, self.global_token,
                             self.pattern.to(device), self.entry_pair.to(device), self.entry_seg.to(device),
                             self.seg_len.to(device), self.available.to(device),
                             {heads: self.heads_pattern(heads).to(device)})

    @property
    def slots(self) -> int:
        return self.num_relations + int(self.global_token)

    def heads_pattern(self, heads: int) -> CSRPattern:
        """The pair pattern repeated on the block diagonal, one block per head (cached)."""
        if heads not in self._per_heads:
            self._per_heads[heads] = self.pattern.repeat_diagonal(heads)
        return self._per_heads[heads]


def _graph_keys(ptr: np.ndarray, num_nodes: int) -> np.ndarray:
    """For each graph b: its node rows ``ptr[b]..ptr[b+1]-1`` followed by its global row ``num_nodes + b``."""
    counts = ptr[1:] - ptr[:-1]
    run = counts + 1
    offset = np.arange(int(run.sum())) - np.repeat(np.cumsum(run) - run, run)
    is_self = offset == np.repeat(counts, run)
    glob = num_nodes + np.repeat(np.arange(counts.size), run)
    return np.where(is_self, glob, np.repeat(ptr[:-1], run) + offset)


class RelationAttention(nn.Module):
    """Gated relation-masked multi-head attention (LeDG-Former); ``gate="static"`` gives NN-Former's.

    Shapes:
        ``x``: ``(rows, dim)`` with rows as in ``RelationIndex`` -> ``(rows, dim)``.
    """

    def __init__(self, dim: int, heads: int, num_relations: int, *, gate: str = "dynamic",
                 global_token: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} is not divisible by heads={heads}")
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.num_relations, self.global_token = num_relations, global_token
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.gate = RelationGate(dim, heads, num_relations + int(global_token), gate)
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.qkv.weight)
        nn.init.zeros_(self.qkv.bias)
        nn.init.xavier_uniform_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.gate.reset_parameters()

    def forward(self, x: Tensor, index: RelationIndex) -> Tensor:
        if index.global_token != self.global_token or index.num_relations != self.num_relations:
            raise ValueError("RelationIndex was built for another relation set or global-token setting")
        rows, s, h, dh = x.shape[0], index.num_nodes, self.heads, self.head_dim
        # Head-major (3, H, rows, dh): the layout the sparse kernels read.
        q, k, v = self.qkv(x).view(rows, 3 * h, dh).transpose(0, 1).contiguous().view(3, h, rows, dh).unbind(0)
        gates = self.gate(x[:s], index.available)  # (S, H, slots)

        pattern = index.heads_pattern(h)
        scores = sddmm(pattern, q.reshape(h * rows, dh), k.reshape(h * rows, dh)) * (1.0 / math.sqrt(dh))
        entry = scores.view(h, -1).t()[index.entry_pair]  # (M, H)
        # Shift by each segment's max: an exact softmax per (node, relation), no underflow.
        peak = torch.segment_reduce(entry.detach(), "max", lengths=index.seg_len, unsafe=True)
        peak = torch.nan_to_num(peak, nan=0.0, posinf=0.0, neginf=0.0)  # empty segments: -inf -> 0
        e = torch.exp(entry - peak[index.entry_seg])
        z = torch.segment_reduce(e, "sum", lengths=index.seg_len, unsafe=True)  # (segments, H)
        slot_major = gates.permute(2, 0, 1)  # (slots, S, H), contiguous as RelationGate computes it
        mix = [slot_major[: self.num_relations].transpose(0, 1).reshape(-1, h)]
        if self.global_token:
            mix += [slot_major[self.num_relations], gates.new_ones(index.num_graphs, h)]
        coef = torch.cat(mix) / torch.where(z > 0, z, torch.ones_like(z))
        weight = self.dropout(e * coef[index.entry_seg])
        pair_weight = weight.new_zeros(index.pattern.nnz, h).index_add_(0, index.entry_pair, weight)
        out = spmm(pattern, pair_weight.t().reshape(-1), v.reshape(h * rows, dh))
        return self.out(out.view(h, rows, dh).transpose(0, 1).reshape(rows, self.dim))
