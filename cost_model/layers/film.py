"""Feature-wise linear modulation of hidden states by the hardware target.

The same operator costs differently on each target; FiLM lets the target
rescale and shift every hidden feature in every layer (``x * γ + β``) instead
of only entering once at the input. It starts as the identity (γ = 1, β = 0)
so an untrained target embedding cannot scramble the graph encoding.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["FiLM"]


class FiLM(nn.Module):
    """Shapes: ``x``: ``(rows, dim)``, ``cond``: ``(G, cond_dim)``, ``row_group``: ``(rows,)`` in ``0..G-1``."""

    def __init__(self, cond_dim: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor, cond: Tensor, row_group: Tensor) -> Tensor:
        delta_gamma, beta = self.proj(cond)[row_group].chunk(2, dim=-1)
        return torch.addcmul(beta, x, delta_gamma + 1.0)
