"""Early stopping on a validation score, for the shared training loop (``cost_model.trainer``).

Training runs up to ``patience`` epochs past the best one and then returns the
best epoch's weights, so a copy of them is kept. The fields are plain
attributes so that a resumable fit can save and restore them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

__all__ = ["EarlyStopping"]


class EarlyStopping:
    """The lowest validation score so far, the weights that reached it, and the epochs since."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best = math.inf
        self.bad_epochs = 0
        self.best_state: dict[str, torch.Tensor] | None = None

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience

    def update(self, score: float, state: Mapping[str, torch.Tensor]) -> None:
        """Record one epoch's score; when it is a new best, keep a detached copy of ``state``."""
        if score < self.best:
            self.best, self.bad_epochs = score, 0
            self.best_state = {k: v.detach().clone() for k, v in state.items()}
        else:
            self.bad_epochs += 1
