"""Bidirectional graph-isomorphism feed-forward network (NN-Former's BGIFFN).

With ``A[i, j] = 1`` for an edge ``i -> j``::

    h = fc1(x) + concat[A · g1(x), Aᵀ · g2(x)]        # successors | predecessors
    y = fc2(dropout(gelu(h)))

``A · g1(x)`` sums over a node's children (its consumers), ``Aᵀ · g2(x)`` over
its parents (its producers). The aggregation is a plain sum, as in GIN: a sum
is injective on multisets, so a 3-input ``concat`` and a 2-input one stay
distinguishable, which a mean would blur. Degrees in operator DAGs are
small (a handful), so sums do not blow up the scale; pre-norm blocks keep the
input of every FFN normalized. ``bidirectional=False`` is the plain FFN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from cost_model.layers.csr import CSRPattern, spmm

__all__ = ["Adjacency", "BGIFFN"]


@dataclass(frozen=True)
class Adjacency:
    """``A`` (rows = sources) and ``Aᵀ`` (rows = targets) over ``num_rows`` rows, unit weights.

    Shapes:
        ``children``/``parents``: ``(num_rows, num_rows)`` patterns with E entries; ``ones``: ``(E,)``.
    """

    children: CSRPattern
    parents: CSRPattern
    ones: Tensor

    @classmethod
    def from_edges(cls, edge_index: Tensor, num_rows: int) -> "Adjacency":
        # numpy sorts: torch.argsort on a few thousand entries costs milliseconds with two threads
        src, dst = edge_index.long().numpy()
        by_src = np.argsort(src * max(num_rows, 1) + dst)
        by_dst = np.argsort(dst * max(num_rows, 1) + src)
        children = CSRPattern.from_coo(torch.from_numpy(src[by_src]), torch.from_numpy(dst[by_src]), num_rows, num_rows)
        parents = CSRPattern.from_coo(torch.from_numpy(dst[by_dst]), torch.from_numpy(src[by_dst]), num_rows, num_rows)
        return cls(children, parents, torch.ones(src.size))

    def to(self, device: torch.device) -> "Adjacency":
        """This adjacency on ``device`` (a CPU one is returned as it is)."""
        if device.type == "cpu":
            return self
        return Adjacency(self.children.to(device), self.parents.to(device), self.ones.to(device))


class BGIFFN(nn.Module):
    """Shapes: ``x``: ``(rows, dim)`` -> ``(rows, dim)``; ``adjacency`` over the same rows."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0, bidirectional: bool = True) -> None:
        super().__init__()
        if bidirectional and hidden % 2:
            raise ValueError(f"BGIFFN hidden width must be even (half per direction), got {hidden}")
        self.bidirectional = bidirectional
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.g1 = nn.Linear(dim, hidden // 2, bias=False) if bidirectional else None
        self.g2 = nn.Linear(dim, hidden // 2, bias=False) if bidirectional else None
        self.act = nn.GELU()
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for layer in (self.fc1, self.fc2, self.g1, self.g2):
            if layer is not None:
                layer.reset_parameters()

    def forward(self, x: Tensor, adjacency: Adjacency | None = None) -> Tensor:
        h = self.fc1(x)
        if self.bidirectional:
            if adjacency is None:
                raise ValueError("a bidirectional BGIFFN needs the batch adjacency")
            down = spmm(adjacency.children, adjacency.ones.to(x.dtype), self.g1(x))
            up = spmm(adjacency.parents, adjacency.ones.to(x.dtype), self.g2(x))
            h = h + torch.cat([down, up], dim=-1)
        return self.fc2(self.dropout(self.act(h)))
