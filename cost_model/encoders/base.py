"""The contract every text encoder meets, so the cost model can swap them freely.

LeDG-Former embeds each operator text and each target text into one vector.
Which encoder produced those vectors is part of a trained model's identity:
``encoder_id`` is stored in checkpoints and keys the embedding cache, and
``config()`` is what ``make_encoder`` needs to rebuild the same encoder.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["TextEncoder"]


class TextEncoder(nn.Module, abc.ABC):
    """Maps a batch of strings to a float32 matrix, one row per string.

    Attributes:
        encoder_id: stable id (kind, model name, weights hash or tokenizer
            version, pooling); equal ids promise equal embeddings.
        dim: width of one embedding.
        trainable: whether the encoder has parameters the cost model trains
            (trainable encoders are never cached).

    Shapes:
        ``forward(texts)``: ``len(texts)`` strings -> ``(len(texts), dim)`` float32.
    """

    encoder_id: str
    dim: int
    trainable: bool

    @abc.abstractmethod
    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        """Embed ``texts``; rows follow the input order, duplicates included."""

    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-able spec that ``make_encoder`` turns back into an equal encoder."""

    def extra_repr(self) -> str:
        return f"encoder_id={self.encoder_id!r}, dim={self.dim}, trainable={self.trainable}"


def check_texts(texts: Sequence[str]) -> list[str]:
    """Reject the classic mistake of passing one string (which would embed its characters)."""
    if isinstance(texts, str):
        raise TypeError("expected a sequence of strings, got a single str; wrap it in a list")
    texts = list(texts)
    bad = [type(t).__name__ for t in texts if not isinstance(t, str)]
    if bad:
        raise TypeError(f"expected strings, got {sorted(set(bad))}")
    return texts
