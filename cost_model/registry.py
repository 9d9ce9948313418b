"""One registry pattern for everything chosen by name: encoders, baselines, sources, spaces, families, workloads.

A :class:`Registry` is a read-only mapping from names to objects of one kind,
filled at import time through :meth:`Registry.add`: by a decorator on the class
or function itself where it is defined (``@register_baseline``,
``@register_source(...)``, ``register_encoder(...)``), or directly where the
entry is assembled from parts defined elsewhere (spaces, zoo families, tuning
workloads). Each module that owns a registry exposes it
through a ``list_*()`` function and a ``get_*()`` / ``make_*()`` function, as
timm does for models, so callers never index a private dict.

An unknown name is refused with one line that lists the known names, in the
error class of the layer asking (an :class:`~targets.errors.ArgumentError` by
default; an unknown architecture space is a ``ModelImportError``), or by the
caller with :meth:`Registry.unknown` where it adds context.
Registering a name twice is a programming error and always an ``ArgumentError``.
It lives in ``cost_model`` because that is the lowest layer with a registry;
``tvm_ledg`` uses the same class.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TypeVar

from targets.errors import ArgumentError, LedgError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Mapping[str, T]):
    """Names -> objects of one ``kind`` (used in error messages: ``"baseline"``), in registration order."""

    def __init__(self, kind: str, *, error: type[LedgError] = ArgumentError) -> None:
        self.kind = kind
        self._error = error
        self._entries: dict[str, T] = {}

    def add(self, name: str, obj: T) -> T:
        """Register ``obj`` as ``name`` and return it."""
        if name in self._entries:
            raise ArgumentError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = obj
        return obj

    def lookup(self, name: str) -> T:
        """The object registered as ``name``; an unknown name raises one line listing the known ones."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):  # TypeError: an unhashable name is unknown too
            raise self._error(self.unknown(name)) from None

    def unknown(self, name: object) -> str:
        """The message for an unknown ``name`` (for callers that add their own context)."""
        return f"unknown {self.kind} {name!r}; expected one of {', '.join(self._entries)}"

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __copy__(self) -> Registry[T]:
        """The same entries in a registry of its own: what is added to the copy stays out of the original."""
        clone: Registry[T] = Registry(self.kind, error=self._error)
        clone._entries = dict(self._entries)
        return clone

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"
