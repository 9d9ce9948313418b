"""Deterministic train / validation / test splits.

Two helpers with different guarantees:

- :func:`split_indices` shuffles ``range(n)`` with a seeded generator and cuts
  it into exact sizes: for splitting *one* table (or devices, or networks).
- :func:`arch_split` splits by *architecture*: each spec string is placed by a
  hash of ``(seed, spec)`` alone, so an architecture lands in the same split in
  every table that contains it (HELP's 15,625 NB201 archs, OneProxy's 1,999
  subset, any later table), whatever else the table holds. A test architecture
  is therefore never seen in training through another device. The split sizes
  are binomial around the requested fractions instead of exact.
"""

from __future__ import annotations

import hashlib
from typing import Mapping, Sequence

import numpy as np

from targets.errors import ArgumentError

__all__ = ["split_indices", "arch_split", "assign_arch_split"]

_TOLERANCE = 1e-9


def split_indices(n: int, sizes: Mapping[str, float | int], seed: int) -> dict[str, np.ndarray]:
    """Split ``range(n)`` into disjoint, sorted index arrays, one per name in ``sizes``.

    ``sizes`` holds either all fractions (floats in [0, 1], summing to at most 1)
    or all counts (ints, summing to at most ``n``). Fractions are turned into
    counts from their cumulative sums, so fractions that sum to 1 cover every
    index. Indices not assigned to any split are left out.
    """
    if n < 0:
        raise ArgumentError(f"split_indices: n must be >= 0, got {n}")
    if not sizes:
        raise ArgumentError("split_indices: give at least one split size")
    values = list(sizes.values())
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        counts = [int(v) for v in values]
        if min(counts) < 0 or sum(counts) > n:
            raise ArgumentError(f"split_indices: counts {dict(sizes)} must be >= 0 and sum to <= n={n}")
    else:
        fractions = [float(v) for v in values]
        if min(fractions) < 0 or sum(fractions) > 1 + _TOLERANCE:
            raise ArgumentError(f"split_indices: fractions {dict(sizes)} must be >= 0 and sum to <= 1")
        bounds = np.rint(np.cumsum(fractions) * n).astype(np.int64).clip(max=n)
        counts = np.diff(bounds, prepend=0).tolist()
    order = np.random.default_rng(seed).permutation(n)
    out: dict[str, np.ndarray] = {}
    start = 0
    for name, count in zip(sizes, counts):
        out[name] = np.sort(order[start:start + count]).astype(np.int64)
        start += count
    return out


def _arch_unit(spec: str, seed: int) -> float:
    """A uniform number in [0, 1) that depends only on ``(seed, spec)``."""
    digest = hashlib.sha256(f"{seed}\0{spec}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign_arch_split(spec: str, seed: int, test_fraction: float, val_fraction: float) -> str:
    """The split (``"train"``, ``"val"`` or ``"test"``) of one architecture."""
    if test_fraction < 0 or val_fraction < 0 or test_fraction + val_fraction > 1:
        raise ArgumentError(
            f"arch split fractions must be >= 0 and sum to <= 1, got test={test_fraction}, val={val_fraction}"
        )
    u = _arch_unit(spec, seed)
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def arch_split(
    archs: Sequence[str], seed: int, test_fraction: float = 0.2, val_fraction: float = 0.1
) -> dict[str, np.ndarray]:
    """Indices into ``archs`` per split (``train``, ``val``, ``test``), placed by architecture.

    The same spec string gets the same split on every call with the same seed
    and fractions, whichever table it comes from (see the module docstring).
    """
    labels = np.array([assign_arch_split(a, seed, test_fraction, val_fraction) for a in archs], dtype="U5")
    return {
        name: np.flatnonzero(labels == name).astype(np.int64) for name in ("train", "val", "test")
    }
