"""Training runs from a YAML config: public device tables + a graph store -> a checkpoint.

A config has four sections (every key optional except ``data.graph_store``)::

    data:
      root: null                # data root; default $TVM_LEDG_DATA_ROOT, then ../shared/data
      graph_store: .cache/graphs
      sources: [help-nb201, help-ofa, oneproxy]
      devices: null             # only these target aliases (null: all devices of the sources)
      holdout_targets: []       # target aliases never trained on (zero-shot evaluation)
      max_train_archs: null     # per target, at most this many training architectures
      max_val_archs: null       # per target, at most this many validation architectures
      split: {seed: 0, test_fraction: 0.2, val_fraction: 0.1}
      measured: []              # measurement stores (.sqlite) or their exports (.jsonl.gz) to train on too
      tuning_records: []        # program records (.jsonl.gz, benchmarks/tuning_records.py): a program-level model
    encoder: {kind: builtin, dim: 32}
    model: {dim: 32, layers: 2, heads: 4}
    train: {epochs: 10, batch_size: 64, lr: 0.003, seed: 0, device: auto}

``train.device`` ("auto": CUDA when available, else the CPU; "cpu", "cuda",
"cuda:N") says where to train; it is not part of the run's identity, so an
interrupted run may resume on another device.

Architectures are split by spec string (``assign_arch_split``), so one
architecture is in the same split on every device and test architectures are
never seen in training or validation. Only architectures whose graph is in the
store are used; the run summary says how many were available. Measured
datasets (``tvm-ledg collect``) carry their own graphs and descriptors; their
rows are keyed by graph hash and split the same way. Tuning records (scheduled
TIR programs with measured run times, for ``LeDGCostModel``) are read the same
way: one row per program and target, keyed by the program graph's hash. With
``sources: []`` and ``measured`` or ``tuning_records`` set, no graph store is
needed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections import ChainMap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import targets
from cost_model import distributed
from cost_model.checkpoint import check_replaceable
from cost_model.data import assign_arch_split, load_all
from cost_model.device import DEVICE_CHOICES
from cost_model.graph import OpGraph
from cost_model.graph_store import GraphStore
from cost_model.measurement_store import MeasurementStore
from cost_model.predictor import LatencyPredictor, Row, TrainConfig
from cost_model.tuning_records import read_tuning_records
from cost_model.tuning_records import training_rows as tuning_rows
from targets.errors import DataError, TargetError
from targets.schema import TargetDescriptor

__all__ = ["RunConfig", "LatencyData", "load_run_config", "load_latency_data", "train_from_config", "descriptor_for"]

log = logging.getLogger(__name__)

_SECTIONS = ("data", "encoder", "model", "train")
_DATA_KEYS = {"root", "graph_store", "sources", "devices", "holdout_targets", "max_train_archs", "max_val_archs",
              "split", "measured", "tuning_records"}
_SPLIT_KEYS = {"seed", "test_fraction", "val_fraction"}


@dataclass
class RunConfig:
    data: dict[str, Any]
    encoder: Any = field(default_factory=lambda: {"kind": "builtin", "dim": 32})
    model: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    source: str = "<dict>"
    device: str = "auto"

    def split(self) -> tuple[int, float, float]:
        s = {"seed": 0, "test_fraction": 0.2, "val_fraction": 0.1, **(self.data.get("split") or {})}
        return int(s["seed"]), float(s["test_fraction"]), float(s["val_fraction"])


def load_run_config(source: str | os.PathLike[str] | Mapping[str, Any]) -> RunConfig:
    """Parse and validate a config file (or dict); errors name the file and the key."""
    if isinstance(source, Mapping):
        raw, origin = dict(source), "<dict>"
    else:
        origin = str(source)
        try:
            raw = yaml.safe_load(Path(source).read_text())
        except OSError as exc:
            raise DataError(f"{origin}: cannot read config ({exc.strerror})") from exc
        except yaml.YAMLError as exc:
            raise DataError(f"{origin}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise DataError(f"{origin}: expected a mapping with sections {list(_SECTIONS)}")
    unknown = sorted(set(raw) - set(_SECTIONS))
    if unknown:
        raise DataError(f"{origin}: unknown sections {unknown} (expected {list(_SECTIONS)})")
    data = raw.get("data") or {}
    own_data = data.get("measured") or data.get("tuning_records") if isinstance(data, dict) else None
    if not isinstance(data, dict) or ("graph_store" not in data and not (own_data and data.get("sources") == [])):
        raise DataError(f"{origin}: data.graph_store is required (a directory filled by `tvm-ledg graphs`)")
    bad = sorted(set(data) - _DATA_KEYS)
    if bad:
        raise DataError(f"{origin}: unknown keys data.{bad} (known: {sorted(_DATA_KEYS)})")
    bad = sorted(set(data.get("split") or {}) - _SPLIT_KEYS)
    if bad:
        raise DataError(f"{origin}: unknown keys data.split.{bad} (known: {sorted(_SPLIT_KEYS)})")
    for key in ("model", "train"):
        if not isinstance(raw.get(key) or {}, dict):
            raise DataError(f"{origin}: section {key!r} must be a mapping")
    train_section = dict(raw.get("train") or {})
    device = train_section.pop("device", "auto")
    if not isinstance(device, str):
        raise DataError(f"{origin}: train.device must be a string ({DEVICE_CHOICES}), got {device!r}")
    train = TrainConfig.from_dict(train_section, source=f"{origin}: train")
    return RunConfig(data, raw.get("encoder") or {"kind": "builtin", "dim": 32}, dict(raw.get("model") or {}),
                     train, origin, device)


@dataclass
class LatencyData:
    """Rows per split plus everything needed to featurize them."""

    graphs: Mapping[str, OpGraph]  # the graph store, plus the graphs of measured datasets
    targets: dict[str, TargetDescriptor]
    rows: dict[str, list[Row]]  # "train", "val", "test", "holdout"
    missing_graphs: int = 0

    def summary(self) -> dict[str, Any]:
        def count(rows: Sequence[Row]) -> dict[str, int]:
            return {"rows": len(rows), "archs": len({r[0] for r in rows}), "targets": len({r[1] for r in rows})}

        return {**{name: count(rows) for name, rows in self.rows.items()}, "missing_graphs": self.missing_graphs,
                "train_targets": sorted({r[1] for r in self.rows["train"]})}


def load_latency_data(config: RunConfig) -> LatencyData:
    """Public device tables joined with the graph store and split by architecture."""
    data = config.data
    tables: list[Any] = []
    store: Mapping[str, OpGraph] = {}
    if data.get("sources") != [] or "graph_store" in data:
        store = GraphStore(data["graph_store"])
        if not store.root.is_dir():
            raise DataError(f"{config.source}: graph store {store.root} does not exist; fill it with "
                            "`tvm-ledg graphs`")
        if data.get("sources") != []:
            tables = load_all(root=data.get("root"), sources=data.get("sources"))
    measured_graphs: dict[str, OpGraph] = {}
    measured_descs: dict[str, TargetDescriptor] = {}
    for path in data.get("measured") or []:
        graphs, descs, rows = _read_measured(Path(path), config.source)
        measured_graphs.update(graphs)
        measured_descs.update(descs)
        tables.extend(_per_target(rows))
    for path in data.get("tuning_records") or []:
        graphs, rows = _read_tuning_records(Path(path), config.source)
        measured_graphs.update(graphs)
        tables.extend(_per_target(rows))
    if measured_graphs:
        store = ChainMap(measured_graphs, store)
    wanted = data.get("devices")
    if wanted is not None:
        known = {t.target_alias for t in tables}
        unknown = sorted(set(wanted) - known)
        if unknown:
            raise DataError(f"{config.source}: data.devices names unknown devices {unknown}")
        tables = [t for t in tables if t.target_alias in set(wanted)]
    holdout = set(data.get("holdout_targets") or [])
    unknown = sorted(holdout - {t.target_alias for t in tables})
    if unknown:
        raise DataError(f"{config.source}: data.holdout_targets names unknown devices {unknown}")
    seed, test_fraction, val_fraction = config.split()
    cap = data.get("max_train_archs")
    rows: dict[str, list[Row]] = {"train": [], "val": [], "test": [], "holdout": []}
    descs: dict[str, TargetDescriptor] = {}
    in_store: dict[str, bool] = {}
    for table in tables:
        descs[table.target_alias] = descriptor_for(table.target_alias, measured_descs)
        per_split: dict[str, list[Row]] = {"train": [], "val": [], "test": []}
        for arch, ms, ok in zip(table.archs, table.latency_ms, table.valid):
            if not ok:
                continue
            if arch not in in_store:
                in_store[arch] = arch in store
            if not in_store[arch]:
                continue
            per_split[assign_arch_split(arch, seed, test_fraction, val_fraction)].append(
                (arch, table.target_alias, float(ms)))
        if table.target_alias in holdout:
            rows["holdout"].extend(per_split["test"])
            continue
        for name, limit in (("train", cap), ("val", data.get("max_val_archs"))):
            if limit is not None:
                per_split[name] = _capped(per_split[name], int(limit), seed)
        for name, part in per_split.items():
            rows[name].extend(part)
    missing = sum(1 for ok in in_store.values() if not ok)
    if not rows["train"] and not rows["holdout"]:
        raise DataError(f"{config.source}: no measured architecture has a graph in {data.get('graph_store')}; "
                        "run `tvm-ledg graphs` on the architectures first")
    return LatencyData(store, descs, rows, missing)


def descriptor_for(alias: str, measured: Mapping[str, TargetDescriptor]) -> TargetDescriptor:
    """The descriptor to train a target's rows with.

    Measured datasets embed the descriptor they were collected under. When the registered
    descriptor of the same name refines it (the same setting with more specs filled in, e.g.
    peak compute or bandwidth added later), the registered one is used so training sees the
    new numbers; the stored one otherwise (a user's target, or a changed setting).
    """
    stored = measured.get(alias)
    if stored is None:
        return targets.load(alias)
    try:
        registered = targets.load(stored.name)
    except TargetError:
        return stored
    if registered.content_hash() != stored.content_hash() and registered.refines(stored):
        log.info("target %s: using the registered descriptor, which refines the one stored with its measurements",
                    stored.name)
        return registered
    return stored


@dataclass
class _TargetRows:
    """One target's rows of a measured dataset, shaped like a public ``DeviceTable``."""

    target_alias: str
    rows: list[Row]

    @property
    def archs(self) -> list[str]:
        return [r[0] for r in self.rows]

    @property
    def latency_ms(self) -> list[float]:
        return [r[2] for r in self.rows]

    @property
    def valid(self) -> list[bool]:
        return [True] * len(self.rows)


def _per_target(rows: Sequence[Row]) -> list[_TargetRows]:
    by_target: dict[str, list[Row]] = {}
    for row in rows:
        by_target.setdefault(row[1], []).append(row)
    return [_TargetRows(alias, rs) for alias, rs in sorted(by_target.items())]


def _read_measured(path: Path, origin: str) -> tuple[dict[str, OpGraph], dict[str, TargetDescriptor], list[Row]]:
    """Graphs, descriptors and rows of a measurement store or of its ``.jsonl.gz`` export."""
    if not path.exists():
        raise DataError(f"{origin}: data.measured names {path}, which does not exist")
    if path.name.endswith(".jsonl.gz"):
        with tempfile.TemporaryDirectory() as tmp, MeasurementStore(Path(tmp) / "import.sqlite") as store:
            store.import_jsonl(path)
            return store.training_rows()
    with MeasurementStore(path, readonly=True) as store:
        return store.training_rows()


def _read_tuning_records(path: Path, origin: str) -> tuple[dict[str, OpGraph], list[Row]]:
    """Program graphs and ``(graph hash, target, mean run ms)`` rows of a tuning-record export."""
    if not path.exists():
        raise DataError(f"{origin}: data.tuning_records names {path}, which does not exist")
    return tuning_rows(read_tuning_records(path))


def _capped(rows: list[Row], cap: int, seed: int) -> list[Row]:
    """The ``cap`` rows whose architectures hash lowest: the same subset for every device and run."""
    key = lambda r: hashlib.sha256(f"cap{seed}\0{r[0]}".encode()).digest()  # noqa: E731
    return sorted(rows, key=key)[:cap]


def train_from_config(config: RunConfig, out: str | os.PathLike[str], *, progress: bool = True,
                      resume: bool = True) -> tuple[LatencyPredictor, LatencyData]:
    """Train, save the checkpoint to ``out`` and return it with the data it used.

    The per-epoch training state lives in ``<out>.resume/`` until the run finishes,
    so an interrupted run started again with the same config continues where it stopped.
    Both directories are checked before any work: a folder that is neither empty nor a
    checkpoint is refused rather than replaced after hours of training.

    Under ``torchrun`` (after ``cost_model.distributed.init_from_environment``) every process
    runs this with the same config and trains on its share of each batch; only rank 0 deletes
    or writes the resume state and writes the checkpoint.
    """
    out = check_replaceable(out)
    resume_dir = check_replaceable(out.with_name(out.name + ".resume"))
    data = load_latency_data(config)
    if not data.rows["train"]:
        raise DataError(f"{config.source}: no training rows (every device held out or no graphs)")
    if not resume and resume_dir.exists() and distributed.is_main_process():
        shutil.rmtree(resume_dir)
    distributed.barrier()  # nobody reads resume state that rank 0 is deleting
    granularity = "program" if config.data.get("tuning_records") else "network"
    predictor = LatencyPredictor(encoder=config.encoder, model=config.model, train=config.train,
                                 granularity=granularity, device=config.device)
    predictor.fit(data.graphs, data.targets, data.rows["train"], data.rows["val"], resume_dir=resume_dir,
                  progress=progress)
    if distributed.is_main_process():
        summary = {**data.summary(), "config": {"data": config.data, "source": config.source}}
        predictor.save_pretrained(out, data_summary=summary)
        shutil.rmtree(resume_dir, ignore_errors=True)
    distributed.barrier()  # the checkpoint exists for every process once this returns
    return predictor, data
