"""One pre-norm LeDG-Former layer: target-modulated relation attention, then BGIFFN."""

from __future__ import annotations

from torch import Tensor, nn

from cost_model.layers.bgiffn import BGIFFN, Adjacency
from cost_model.layers.film import FiLM
from cost_model.layers.relation_attention import RelationAttention, RelationIndex

__all__ = ["LeDGBlock"]


class LeDGBlock(nn.Module):
    """``x += attn(norm(x))``; ``x += ffn(film(norm(x)))``, each branch with dropout.

    FiLM (once per layer, as each per-row modulation costs a gather over all
    rows) conditions the FFN, the per-node transform where an operator's cost
    on the target is formed; attention sees the target through the residual
    stream from the second layer on, and through the global token.

    Shapes:
        ``x``: ``(rows, dim)``, ``cond``: ``(B, dim)``, ``row_graph``: ``(rows,)`` -> ``(rows, dim)``.
    """

    def __init__(self, dim: int, heads: int, num_relations: int, hidden: int, *, gate: str, global_token: bool,
                 bgiffn: bool, film: bool, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.film = FiLM(dim, dim) if film else None
        self.attn = RelationAttention(dim, heads, num_relations, gate=gate, global_token=global_token, dropout=dropout)
        self.ffn = BGIFFN(dim, hidden, dropout=dropout, bidirectional=bgiffn)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, index: RelationIndex, adjacency: Adjacency, cond: Tensor, row_graph: Tensor) -> Tensor:
        x = x + self.dropout(self.attn(self.norm1(x), index))
        h = self.norm2(x)
        if self.film is not None:
            h = self.film(h, cond, row_graph)
        return x + self.dropout(self.ffn(h, adjacency))
