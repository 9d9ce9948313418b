"""The registry of public latency sources: one entry per upstream table family.

A source says where its per-device files are under the data root, how one file
becomes rows (architecture spec strings, latencies, NAS-Bench-201 indices),
which target-registry alias prefix its devices take, and which project measured
them (the license to cite). Adding a source is one decorated reader::

    @register_source("help-nb201", folder="HELP/data/nasbench201/latency", suffix=".pt",
                     alias_prefix="help", origin="HELP")
    def _read_help_nb201(root: Path, path: Path) -> Rows: ...

Files are read without executing code: ``torch.load(weights_only=True)`` for
``.pt`` and :mod:`cost_model.data.safe_pickle` for ``.pickle``.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np

try:
    from numpy._core.multiarray import scalar as _np_scalar  # NumPy >= 2
except ImportError:  # NumPy 1.x
    from numpy.core.multiarray import scalar as _np_scalar

from cost_model.data.root import require_file
from cost_model.data.safe_pickle import load_pickle
from cost_model.data.specs import NB201_NUM_ARCHS, nb201_spec, ofa_spec
from cost_model.registry import Registry
from targets.errors import DataError

__all__ = ["DataSource", "Rows", "get_source", "list_sources", "nb201_cells", "nb201_specs", "register_source"]


class Rows(NamedTuple):
    """One device file's rows: spec strings, raw latencies (ms, -1 where missing upstream), NB201 indices."""

    archs: list[str]
    latency_ms: np.ndarray
    nb201_index: np.ndarray | None


Reader = Callable[[Path, Path], Rows]  # (data root, device file) -> rows


@dataclass(frozen=True)
class DataSource:
    """Where a source's device files are (``<root>/<folder>/<device><suffix>``), how ``read`` turns one into
    rows, its target alias prefix, and who measured each device: ``origin``, unless the device name starts
    with a prefix of ``origins_by_prefix`` (a source that collects several projects' measurements)."""

    name: str
    folder: str
    suffix: str
    alias_prefix: str
    read: Reader
    origin: str
    origins_by_prefix: tuple[tuple[str, str], ...] = ()

    def origin_of(self, device: str) -> str:
        """The project that measured ``device``."""
        return next((o for prefix, o in self.origins_by_prefix if device.startswith(prefix)), self.origin)

    def device_file(self, root: Path, device: str) -> Path:
        return root / self.folder / f"{device}{self.suffix}"

    def devices(self, root: Path) -> list[str]:
        """Device names with a file under ``root``, sorted."""
        folder = root / self.folder
        if not folder.is_dir():
            return []
        return [path.name[: -len(self.suffix)] for path in sorted(folder.glob(f"*{self.suffix}"))]


_REGISTRY: Registry[DataSource] = Registry("data source")


def register_source(name: str, *, folder: str, suffix: str, alias_prefix: str, origin: str,
                    origins_by_prefix: Mapping[str, str] | None = None) -> Callable[[Reader], Reader]:
    """Register the decorated reader as the source ``name`` (see the module docstring)."""

    def decorate(read: Reader) -> Reader:
        _REGISTRY.add(name, DataSource(name, folder, suffix, alias_prefix, read, origin,
                                       tuple((origins_by_prefix or {}).items())))
        return read

    return decorate


def list_sources() -> list[str]:
    """Names of the registered sources, in registration order."""
    return list(_REGISTRY)


def get_source(name: str) -> DataSource:
    """The registered source ``name``."""
    return _REGISTRY.lookup(name)


# ---------------------------------------------------------------- shared files

_NB201_INDEX_FILE = "HELP/data/nasbench201/str_arch2idx.pt"
_OFA_ARCHS_FILE = "HELP/data/ofa/ofa_archs.pt"
_ONEPROXY_INDEX_FILE = "OneProxy/nb201_index.csv"
_OFA_NUM_ARCHS = 5000
_ONEPROXY_NUM_ARCHS = 1999


def _load_pt(path: Path, safe_globals: Sequence[Any] = ()) -> Any:
    """``torch.load`` with ``weights_only=True``: torch's allowlisting unpickler, never arbitrary code."""
    import torch  # deferred: listing files and splitting need no torch

    try:
        if not safe_globals:
            return torch.load(path, map_location="cpu", weights_only=True)
        with torch.serialization.safe_globals(list(safe_globals)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError, zip errors: all mean "not readable"
        raise DataError(f"cannot read {path} with torch.load(weights_only=True): {exc}") from exc


def _as_float_array(values: Any, expected: int, path: Path) -> np.ndarray:
    if not isinstance(values, (list, tuple)) or len(values) != expected:
        got = len(values) if isinstance(values, (list, tuple)) else type(values).__name__
        raise DataError(f"{path}: expected a list of {expected} latencies, got {got}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise DataError(f"{path}: latencies must be numbers")
    return np.asarray(values, dtype=np.float64)


@functools.lru_cache(maxsize=4)
def nb201_cells(root: Path) -> tuple[str, ...]:
    """Cell string of each NAS-Bench-201 index, from HELP's ``str_arch2idx.pt``."""
    path = require_file(root, _NB201_INDEX_FILE)
    mapping = _load_pt(path)
    if not isinstance(mapping, dict) or len(mapping) != NB201_NUM_ARCHS:
        raise DataError(f"{path}: expected a dict of {NB201_NUM_ARCHS} cell strings")
    cells: list[str | None] = [None] * NB201_NUM_ARCHS
    for cell, index in mapping.items():
        if not isinstance(index, int) or not 0 <= index < NB201_NUM_ARCHS or cells[index] is not None:
            raise DataError(f"{path}: index {index!r} of {cell!r} is out of range or repeated")
        cells[index] = cell
    return tuple(cells)  # type: ignore[arg-type]  # every slot filled: 15,625 distinct indices


@functools.lru_cache(maxsize=4)
def nb201_specs(root: Path) -> tuple[str, ...]:
    """Spec string of each NAS-Bench-201 index (validated once per root)."""
    return tuple(nb201_spec(cell) for cell in nb201_cells(root))


@functools.lru_cache(maxsize=4)
def _ofa_archs(root: Path) -> tuple[str, ...]:
    """Spec strings of HELP's 5,000 OFA configs, in file order."""
    path = require_file(root, _OFA_ARCHS_FILE)
    # The resolution ``r`` is pickled as a NumPy int64 scalar, which
    # weights_only refuses by default. Allow exactly that: the scalar
    # constructor under the NumPy 1.x name the file uses (the tuple form
    # needs torch >= 2.6), numpy.dtype, and the int64 dtype class (BUILD
    # checks it). Every value is then validated by ofa_spec.
    payload = _load_pt(
        path,
        [(_np_scalar, "numpy.core.multiarray.scalar"), np.dtype, type(np.dtype(np.int64))],
    )
    configs = payload.get("arch") if isinstance(payload, dict) else None
    if not isinstance(configs, list) or len(configs) != _OFA_NUM_ARCHS:
        raise DataError(f"{path}: expected a dict with 'arch': list of {_OFA_NUM_ARCHS} configs")
    if not all(isinstance(c, dict) for c in configs):
        raise DataError(f"{path}: every OFA config must be a dict")
    return tuple(ofa_spec(c) for c in configs)


@functools.lru_cache(maxsize=4)
def _oneproxy_index(root: Path) -> np.ndarray:
    """NAS-Bench-201 index of each OneProxy row, from ``nb201_index.csv``."""
    path = require_file(root, _ONEPROXY_INDEX_FILE)
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames != ["row", "nb201_idx"]:
            raise DataError(f"{path}: expected header 'row,nb201_idx', got {reader.fieldnames}")
        rows = [(int(r["row"]), int(r["nb201_idx"])) for r in reader]
    if [r for r, _ in rows] != list(range(_ONEPROXY_NUM_ARCHS)):
        raise DataError(f"{path}: expected rows 0..{_ONEPROXY_NUM_ARCHS - 1} in order")
    index = np.array([i for _, i in rows], dtype=np.int64)
    if index.min() < 0 or index.max() >= NB201_NUM_ARCHS or len(set(index.tolist())) != len(index):
        raise DataError(f"{path}: NB201 indices must be distinct and in 0..{NB201_NUM_ARCHS - 1}")
    index.setflags(write=False)
    return index


# ---------------------------------------------------------------- the sources


@register_source("help-nb201", folder="HELP/data/nasbench201/latency", suffix=".pt", alias_prefix="help",
                 origin="HELP")
def _read_help_nb201(root: Path, path: Path) -> Rows:
    """``<device>.pt``: 15,625 NB201 latencies in NAS-Bench-201 index order."""
    archs = list(nb201_specs(root))
    latency = _as_float_array(_load_pt(path), NB201_NUM_ARCHS, path)
    return Rows(archs, latency, np.arange(NB201_NUM_ARCHS, dtype=np.int64))


@register_source("help-ofa", folder="HELP/data/ofa/latency", suffix=".pt", alias_prefix="help-ofa",
                 origin="HELP")
def _read_help_ofa(root: Path, path: Path) -> Rows:
    """``<device>_<batch>.pt``: 5,000 latencies of the OFA configs of ``ofa_archs.pt``, in its order."""
    archs = list(_ofa_archs(root))
    return Rows(archs, _as_float_array(_load_pt(path), _OFA_NUM_ARCHS, path), None)


@register_source("oneproxy", folder="OneProxy/latency_data", suffix=".pickle", alias_prefix="oneproxy",
                 origin="OneProxy",
                 origins_by_prefix={"true_": "nn-Meter", "eagle_": "Eagle (BRP-NAS)", "rice_": "HW-NAS-Bench"})
def _read_oneproxy(root: Path, path: Path) -> Rows:
    """``<device>.pickle``: 1,999 latencies; row i is the NB201 architecture ``nb201_index.csv`` gives."""
    specs = nb201_specs(root)
    nb201_index = _oneproxy_index(root).copy()
    latency = _as_float_array(load_pickle(path), _ONEPROXY_NUM_ARCHS, path)
    return Rows([specs[i] for i in nb201_index], latency, nb201_index)
