"""Per-node, per-head gates over relation channels: what makes LeDG-Former "dynamic".

NN-Former fixes which relation each head sees (head ``h`` -> relation
``h mod R``). LeDG-Former lets every node choose, per head and per layer, how
much of each relation's attention output it uses, from its own state: a
convolution can weigh its producer while an ``add`` joining two branches
weighs its co-parents.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["GATE_MODES", "RelationGate"]

GATE_MODES: tuple[str, ...] = ("dynamic", "learned", "static")


class RelationGate(nn.Module):
    """Mixing weights over ``slots`` channels (the relations, plus the global token when present).

    Modes:
        ``dynamic``: softmax of a linear map of the node state (LeDG-Former).
        ``learned``: softmax of a learned ``(heads, slots)`` table, the same for every node.
        ``static``: one-hot, head ``h`` uses slot ``h mod slots`` (NN-Former's fixed head masks).
    ``dynamic`` and ``learned`` renormalize over the channels a node has
    (``available``), so a node without grandparents spends no weight there;
    ``static`` does not (a head whose relation is empty outputs zeros, as in NN-Former).

    Shapes:
        ``x``: ``(S, dim)``, ``available``: ``(S, slots)`` bool -> ``(S, heads, slots)``.
    """

    def __init__(self, dim: int, heads: int, slots: int, mode: str = "dynamic") -> None:
        super().__init__()
        if mode not in GATE_MODES:
            raise ValueError(f"gate mode {mode!r}: expected one of {GATE_MODES}")
        if mode == "static" and heads < slots:
            raise ValueError(f"static gates need heads >= channels so every channel has a head; got {heads} < {slots}")
        self.heads, self.slots, self.mode = heads, slots, mode
        self.proj = nn.Linear(dim, heads * slots) if mode == "dynamic" else None
        self.table = nn.Parameter(torch.zeros(heads, slots)) if mode == "learned" else None
        if mode == "static":
            one_hot = nn.functional.one_hot(torch.arange(heads) % slots, slots).float()
            self.register_buffer("one_hot", one_hot, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Start from uniform mixing over the available channels (zero logits)."""
        if self.proj is not None:
            nn.init.zeros_(self.proj.weight)
            nn.init.zeros_(self.proj.bias)
        if self.table is not None:
            nn.init.zeros_(self.table)

    def forward(self, x: Tensor, available: Tensor) -> Tensor:
        n = x.shape[0]
        if self.mode == "static":
            return self.one_hot.expand(n, -1, -1)
        logits = self.proj(x).view(n, self.heads, self.slots) if self.proj is not None else self.table.expand(n, -1, -1)
        # Computed slot-major, (slots, S, heads), and returned as a permuted view: a softmax over a short
        # last dimension runs one tiny reduction per row on CPU, several times slower than over the
        # leading dimension. A finite fill keeps a node with no channel at all finite (uniform over
        # empty channels = zeros).
        logits = logits.permute(2, 0, 1).contiguous().masked_fill(~available.t()[:, :, None], -1e9)
        return torch.softmax(logits, dim=0).permute(1, 2, 0)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, heads={self.heads}, slots={self.slots}"
