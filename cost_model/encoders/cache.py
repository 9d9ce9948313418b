"""Embedding cache for frozen encoders: each distinct text is embedded once, ever.

A frozen language model gives the same vector for the same text, and the
dataset repeats the same few thousand operator and target texts across
hundreds of thousands of graphs, so embeddings are memoized in memory and on
disk. Disk layout, one folder per encoder::

    <cache_dir>/<sha256(encoder_id)[:24]>/
        encoder.json                      # which encoder this folder belongs to (for humans)
        shard-<time>-<pid>-<rand>.safetensors   # "keys" uint8 (n, 32), "embeddings" float32 (n, dim)

Each shard is self-contained (its keys, vectors, encoder id and a checksum
travel in one file) and appears through temp file + ``os.replace``, so there
is no shared index that two processes could overwrite: concurrent writers at
worst embed a text twice. Unreadable shards are logged, removed and their
texts recomputed. No pickle anywhere.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from cost_model.cache_dir import default_cache_root
from cost_model.io import write_bytes_atomic, write_text_atomic

__all__ = ["EmbeddingCache", "default_cache_root", "text_key", "CACHE_FORMAT"]

logger = logging.getLogger(__name__)

CACHE_FORMAT = "tvm-ledg-embeddings/1"
_SHARD_GLOB = "shard-*.safetensors"
_KEY_BYTES = 32


def text_key(encoder_id: str, text: str) -> bytes:
    """sha256 of encoder id and text: the cache key of one embedding."""
    h = hashlib.sha256(encoder_id.encode("utf-8"))
    h.update(b"\0")
    h.update(text.encode("utf-8", errors="surrogatepass"))
    return h.digest()


def _checksum(keys: torch.Tensor, embeddings: torch.Tensor) -> str:
    h = hashlib.sha256(keys.numpy().tobytes())
    h.update(embeddings.numpy().tobytes())
    return h.hexdigest()


class EmbeddingCache:
    """Memory dict in front of a folder of safetensors shards, for one encoder.

    ``hits`` and ``misses`` count distinct texts per ``get_or_compute`` call.
    The memory layer keeps every embedding seen (a few MB for the dataset's
    texts); ``directory=None`` keeps only that layer.
    """

    def __init__(self, encoder_id: str, dim: int, directory: str | os.PathLike[str] | None, max_shards: int = 64):
        self.encoder_id = encoder_id
        self.dim = dim
        self.max_shards = max_shards
        self.directory = None
        if directory is not None:
            digest = hashlib.sha256(encoder_id.encode("utf-8")).hexdigest()[:24]
            self.directory = Path(directory).expanduser() / digest
        self.hits = 0
        self.misses = 0
        self._rows: dict[bytes, torch.Tensor] = {}
        self._seen: set[str] = set()  # shard names already looked at (read, written or rejected)
        self._absorbed: set[str] = set()  # shard names whose rows are all in ``_rows``

    def __len__(self) -> int:
        return len(self._rows)

    def get_or_compute(self, texts: list[str], compute: Callable[[list[str]], torch.Tensor]) -> torch.Tensor:
        """Rows for ``texts`` (float32, CPU); ``compute`` embeds only the texts seen nowhere yet."""
        keys = [text_key(self.encoder_id, t) for t in texts]
        unique = dict(zip(keys, texts))
        missing = [k for k in unique if k not in self._rows]
        if missing and self.directory is not None:
            self._sync()  # another process (or an earlier run) may have embedded them
            missing = [k for k in missing if k not in self._rows]
        self.hits += len(unique) - len(missing)
        self.misses += len(missing)
        if missing:
            fresh = compute([unique[k] for k in missing]).detach().to("cpu", torch.float32).contiguous()
            if fresh.shape != (len(missing), self.dim):
                expected = (len(missing), self.dim)
                raise RuntimeError(f"encoder {self.encoder_id} returned {tuple(fresh.shape)}, expected {expected}")
            self._rows.update(zip(missing, fresh))
            if self.directory is not None:
                self._write(missing, fresh)
        if not keys:
            return torch.empty(0, self.dim)
        return torch.stack([self._rows[k] for k in keys])

    def _sync(self) -> None:
        """Read shards that appeared since the last look."""
        assert self.directory is not None
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.glob(_SHARD_GLOB)):
            if path.name not in self._seen:
                self._seen.add(path.name)
                self._read(path)

    def _read(self, path: Path) -> None:
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {name: f.get_tensor(name) for name in f.keys()}
        except FileNotFoundError:
            logger.debug("embedding cache shard %s vanished (compacted by another process)", path)
            return
        except (SafetensorError, OSError, ValueError) as exc:
            self._reject(path, f"unreadable: {exc}")
            return
        if meta.get("format") != CACHE_FORMAT:
            logger.debug("embedding cache shard %s has format %r, not %r; ignored", path, meta.get("format"), CACHE_FORMAT)
            return
        problem = self._validate(tensors, meta)
        if problem:
            self._reject(path, problem)
            return
        raw = tensors["keys"].numpy().tobytes()
        for i, row in enumerate(tensors["embeddings"]):
            self._rows.setdefault(raw[i * _KEY_BYTES : (i + 1) * _KEY_BYTES], row)
        self._absorbed.add(path.name)

    def _validate(self, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> str:
        """Return why a shard cannot be trusted, or "" when it can."""
        if meta.get("encoder_id") != self.encoder_id:
            return f"belongs to encoder {meta.get('encoder_id')!r}, not {self.encoder_id!r}"
        keys, embeddings = tensors.get("keys"), tensors.get("embeddings")
        if keys is None or embeddings is None:
            return f"tensors {sorted(tensors)} lack 'keys' or 'embeddings'"
        if keys.dtype != torch.uint8 or keys.dim() != 2 or keys.shape[1] != _KEY_BYTES:
            return f"keys have dtype {keys.dtype} and shape {tuple(keys.shape)}, expected uint8 (n, {_KEY_BYTES})"
        if embeddings.dtype != torch.float32 or tuple(embeddings.shape) != (keys.shape[0], self.dim):
            got = f"{embeddings.dtype} {tuple(embeddings.shape)}"
            return f"embeddings are {got}, expected torch.float32 ({keys.shape[0]}, {self.dim})"
        if meta.get("sha256") != _checksum(keys, embeddings):
            return "checksum mismatch"
        return ""

    def _reject(self, path: Path, why: str) -> None:
        logger.warning("embedding cache shard %s is corrupt (%s); removing it, its texts will be re-embedded", path, why)
        try:
            path.unlink()
        except OSError:
            pass

    def _write(self, keys: list[bytes], embeddings: torch.Tensor, *, compacting: bool = False) -> str:
        """Persist ``keys``/``embeddings`` as one new shard; a failed write only costs recomputation later."""
        assert self.directory is not None
        key_tensor = torch.frombuffer(bytearray(b"".join(keys)), dtype=torch.uint8).view(len(keys), _KEY_BYTES)
        meta = {"format": CACHE_FORMAT, "encoder_id": self.encoder_id, "sha256": _checksum(key_tensor, embeddings)}
        name = f"shard-{time.time_ns():x}-{os.getpid()}-{uuid.uuid4().hex[:8]}.safetensors"
        try:
            self._describe_folder()
            write_bytes_atomic(self.directory / name, save({"keys": key_tensor, "embeddings": embeddings}, metadata=meta))
        except OSError as exc:
            logger.warning("could not write embedding cache shard in %s (%s); continuing without it", self.directory, exc)
            return ""
        self._seen.add(name)
        self._absorbed.add(name)
        if not compacting:
            self._compact_if_needed()
        return name

    def _describe_folder(self) -> None:
        assert self.directory is not None
        info = self.directory / "encoder.json"
        if not info.exists():
            described = {"format": CACHE_FORMAT, "encoder_id": self.encoder_id, "dim": self.dim}
            write_text_atomic(info, json.dumps(described, indent=1) + "\n")

    def _compact_if_needed(self) -> None:
        """Merge this process's known shards into one once there are more than ``max_shards``."""
        assert self.directory is not None
        if sum(1 for _ in self.directory.glob(_SHARD_GLOB)) <= self.max_shards:
            return
        merged = sorted(self._absorbed)
        keys = list(self._rows)
        name = self._write(keys, torch.stack([self._rows[k] for k in keys]), compacting=True)
        if not name:
            return
        for old in merged:
            (self.directory / old).unlink(missing_ok=True)
            self._absorbed.discard(old)
        logger.info("compacted %d embedding cache shards into %s", len(merged), name)
