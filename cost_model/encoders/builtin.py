"""A weight-free, trainable text encoder for when no language model is at hand.

Operator and target texts are short, templated and full of numbers
("conv2d k3x3 s1 p1 g1 in 1x16x32x32 out 1x16x32x32 float32"), so a word-piece
split on letter/digit boundaries plus a hashed vocabulary covers them without
a vocabulary file: pieces are hashed with crc32 (stable across processes and
machines, unlike Python's ``hash``) into ``vocab_size`` ids, and every number
also gets a log2-magnitude bucket, so unseen sizes still land near similar
ones. Pieces are pooled by a mean (an embedding bag) or by one small
transformer layer. The cost model trains it end to end, so it is never cached.
"""

from __future__ import annotations

import functools
import math
import re
import zlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from cost_model.encoders.base import TextEncoder, check_texts
from targets.errors import CheckpointError

__all__ = ["BuiltinEncoder", "tokenize", "piece_id", "number_bucket", "TOKENIZER_VERSION", "NUM_BUCKETS"]

TOKENIZER_VERSION = 1  # bump whenever tokenize / piece_id / number_bucket change their output
NUM_BUCKETS = 32  # bucket 0 = "not a number"; 1..31 = 1 + floor(log2(value + 1)), capped
_PAD, _BOS = 0, 1  # reserved ids; hashed pieces use 2 .. vocab_size - 1
_PIECE = re.compile(r"\d+(?:\.\d+)?|[a-z]+|[^\sa-z\d]")
POOLINGS = ("mean", "transformer")


@functools.lru_cache(maxsize=1 << 16)
def tokenize(text: str) -> tuple[str, ...]:
    """Lower-case pieces: digit runs (with decimals), letter runs, single punctuation marks.

    ``"1x16x32x32"`` -> ``("1", "x", "16", "x", "32", "x", "32")``; ``"k3x3"`` -> ``("k", "3", "x", "3")``.
    """
    return tuple(_PIECE.findall(text.lower()))


def piece_id(piece: str, vocab_size: int) -> int:
    """Stable hashed id of one piece, in ``[2, vocab_size)``."""
    return 2 + zlib.crc32(piece.encode("utf-8", errors="surrogatepass")) % (vocab_size - 2)


def number_bucket(piece: str) -> int:
    """0 for non-numbers, else ``1 + floor(log2(value + 1))`` capped at ``NUM_BUCKETS - 1``."""
    if not piece[0].isdecimal():
        return 0
    return 1 + int(min(math.log2(float(piece) + 1.0), NUM_BUCKETS - 2))


class BuiltinEncoder(TextEncoder):
    """Hashed word-piece embeddings, mean-pooled or passed through one transformer layer.

    Shapes:
        ``forward(texts)``: B strings -> ``(B, dim)``; internally pieces are
        padded to ``(U, L)`` for the U distinct texts, ``L <= max_tokens``
        (a leading BOS piece keeps empty texts well defined).
    """

    trainable = True

    def __init__(
        self, dim: int = 64, vocab_size: int = 4096, pooling: str = "mean", max_tokens: int = 64, num_heads: int = 4
    ):
        super().__init__()
        if pooling not in POOLINGS:
            raise CheckpointError(f"builtin encoder: pooling {pooling!r} is not one of {POOLINGS}")
        if dim < 1 or vocab_size < 16 or max_tokens < 2:
            raise CheckpointError(
                f"builtin encoder: need dim >= 1, vocab_size >= 16, max_tokens >= 2; got {dim}, {vocab_size}, {max_tokens}"
            )
        if pooling == "transformer" and dim % num_heads:
            raise CheckpointError(f"builtin encoder: dim {dim} is not divisible by num_heads {num_heads}")
        self.dim, self.vocab_size, self.pooling = dim, vocab_size, pooling
        self.max_tokens, self.num_heads = max_tokens, num_heads
        self.token_embedding = nn.Embedding(vocab_size, dim, padding_idx=_PAD)
        self.number_embedding = nn.Embedding(NUM_BUCKETS, dim, padding_idx=0)
        self.position_embedding: nn.Embedding | None = None
        self.layer: nn.TransformerEncoderLayer | None = None
        if pooling == "transformer":
            self.position_embedding = nn.Embedding(max_tokens, dim)
            self.layer = nn.TransformerEncoderLayer(
                dim, num_heads, dim_feedforward=2 * dim, dropout=0.0, batch_first=True, norm_first=True
            )
        heads = f":h{num_heads}" if pooling == "transformer" else ""
        self.encoder_id = f"builtin:tok{TOKENIZER_VERSION}:vocab{vocab_size}:dim{dim}:{pooling}{heads}:len{max_tokens}"
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Unit-variance piece vectors, small number and position offsets; padding rows stay zero."""
        nn.init.normal_(self.token_embedding.weight)
        nn.init.normal_(self.number_embedding.weight, std=0.1)
        with torch.no_grad():
            self.token_embedding.weight[_PAD].zero_()
            self.number_embedding.weight[0].zero_()
        if self.position_embedding is not None:
            nn.init.normal_(self.position_embedding.weight, std=0.1)

    def encode_ids(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Piece ids ``(B, L)``, number buckets ``(B, L)`` and a bool ``mask`` ``(B, L)`` (True = real piece)."""
        rows = []
        for text in texts:
            pieces = tokenize(text)[: self.max_tokens - 1]
            rows.append(([_BOS] + [piece_id(p, self.vocab_size) for p in pieces], [0] + [number_bucket(p) for p in pieces]))
        width = max((len(ids) for ids, _ in rows), default=1)
        ids = torch.full((len(rows), width), _PAD, dtype=torch.long)
        buckets = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (row_ids, row_buckets) in enumerate(rows):
            ids[i, : len(row_ids)] = torch.tensor(row_ids)
            buckets[i, : len(row_buckets)] = torch.tensor(row_buckets)
        return ids, buckets, ids != _PAD

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        """``(len(texts), dim)``; each distinct text is embedded once and gathered back."""
        texts = check_texts(texts)
        unique = list(dict.fromkeys(texts))
        where = {t: i for i, t in enumerate(unique)}
        device = self.token_embedding.weight.device
        ids, buckets, mask = (t.to(device) for t in self.encode_ids(unique))
        x = self.token_embedding(ids) + self.number_embedding(buckets)
        if self.layer is not None and self.position_embedding is not None:
            x = x + self.position_embedding(torch.arange(ids.shape[1], device=device))
            x = self.layer(x, src_key_padding_mask=~mask)
        weights = mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * weights).sum(1) / weights.sum(1)
        return pooled[torch.tensor([where[t] for t in texts], dtype=torch.long, device=device)]

    def config(self) -> dict[str, Any]:
        return {
            "kind": "builtin",
            "dim": self.dim,
            "vocab_size": self.vocab_size,
            "pooling": self.pooling,
            "max_tokens": self.max_tokens,
            "num_heads": self.num_heads,
        }
