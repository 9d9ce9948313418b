"""``LeDGCostModel``: LeDG-Former as a MetaSchedule cost model.

Pass an instance wherever MetaSchedule takes a cost model
(``ms.tune_tir(..., cost_model=LeDGCostModel("local-zen3-tvm-tuned-znver3-t2"))``,
``ms.relax_integration.tune_relax``). Each ``MeasureCandidate``'s scheduled
PrimFunc becomes a program DAG (``program_graph``) and a ``LatencyPredictor``
conditioned on the target descriptor predicts its latency. ``predict`` follows
XGBModel's convention: float64 scores, higher = faster; here ``1 / predicted ms``,
an absolute throughput, so scores of different calls compare (the evolutionary
search keeps its best candidates across calls).

Online learning: ``update`` keeps ``(workload, program, mean measured ms)`` of
every successful run and trains the predictor after each of the first
``OnlineConfig.retrain_first`` updates, then every ``retrain_every`` updates:
from scratch (``LatencyPredictor.fit``) while there is no model, afterwards by
fine-tuning the current weights, with ranking pairs within each workload. Every
training costs at most ``steps`` optimizer steps, however many records there are,
so tuning rounds stay short.

Cold start: with ``checkpoint`` the pre-trained predictor scores from the first
round; ``PROGRAM_CHECKPOINT`` is the shipped one, trained on the committed tuning
records (``datasets/tuning-records.jsonl.gz``, both local tuned-TVM targets).
Without one, until the first training, every program scores a stable hash of its
content in [0, 1): an arbitrary but fixed order, the counterpart of XGB's random
scores before its warm-up.

``save(path)`` / ``load(path)``: a directory with ``tuning_records.json`` (target,
update count, the program graphs by content hash and the records) and, once
trained, ``predictor/`` (a ``LatencyPredictor`` checkpoint). No pickle.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import targets as target_registry
from cost_model.graph import OpGraph
from cost_model.io import read_json, write_text_atomic
from cost_model.predictor import LatencyPredictor, TrainConfig
from cost_model.trainer import LoopSettings, run_training
from targets.errors import ArgumentError, CheckpointError
from targets.schema import TargetDescriptor
from tvm_ledg._tvm import derived_object, ms, structural_hash
from tvm_ledg.predict import DEFAULT_CHECKPOINT
from tvm_ledg.tuning.program import program_graph
from tvm_ledg.tuning.records import mean_run_secs

__all__ = ["PREDICTOR_DIR", "PROGRAM_CHECKPOINT", "RECORDS_FILE", "RECORDS_FORMAT_VERSION", "LeDGCostModel",
           "OnlineConfig"]

log = logging.getLogger(__name__)

# The shipped program-level checkpoint (examples/configs/ledg-program.yaml), beside the op-level default.
PROGRAM_CHECKPOINT = DEFAULT_CHECKPOINT.with_name("ledg-program")

RECORDS_FILE = "tuning_records.json"
PREDICTOR_DIR = "predictor"
RECORDS_FORMAT_VERSION = 1

# Predictor trained from scratch when no checkpoint is given: the shipped default's size.
_COLD_ENCODER: dict[str, Any] = {"kind": "builtin", "dim": 32}
_COLD_MODEL: dict[str, Any] = {"dim": 32, "layers": 2, "heads": 4, "dropout": 0.0, "variance_head": True}

_MIN_MS = 1e-12

# Evolutionary search re-scores many of the same programs every generation; graphs are cached by the
# PrimFunc's structural hash (about 40x cheaper than building the graph), oldest evicted first.
_GRAPH_CACHE_SIZE = 16384


@dataclass(frozen=True)
class OnlineConfig:
    """When and how much ``update`` trains: after each of the first ``retrain_first`` updates, then
    every ``retrain_every``; ``steps`` optimizer steps of ``batch_size`` records each time."""

    retrain_first: int = 3
    retrain_every: int = 4
    steps: int = 60
    batch_size: int = 32
    lr: float = 2e-3
    rank_weight: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name, minimum in (("retrain_first", 0), ("retrain_every", 1), ("steps", 1), ("batch_size", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < minimum:
                raise ArgumentError(f"OnlineConfig.{name} must be an integer >= {minimum}, got {value!r}")

    def due(self, updates: int) -> bool:
        """Whether the ``updates``-th update (1-based) trains."""
        return updates <= self.retrain_first or (updates - self.retrain_first) % self.retrain_every == 0


Record = tuple[str, str, float]  # (workload key, program graph key, mean measured latency in ms)


@derived_object
class LeDGCostModel(ms.cost_model.PyCostModel):
    """LeDG-Former scoring scheduled TIR programs for one target (see the module docstring)."""

    def __init__(self, target: str | TargetDescriptor, *,
                 checkpoint: str | os.PathLike[str] | LatencyPredictor | None = None,
                 online: OnlineConfig | None = None) -> None:
        """``target``: a descriptor or its name; ``checkpoint``: a predictor (fine-tuned in place) or a
        checkpoint directory to start from (None: cold start)."""
        super().__init__()
        self.target = target if isinstance(target, TargetDescriptor) else target_registry.load(target)
        self.online = online or OnlineConfig()
        if isinstance(checkpoint, LatencyPredictor) and checkpoint.granularity != "program":
            raise CheckpointError(f"LeDGCostModel for {self.target.name}: the predictor given is "
                                  f"{checkpoint.granularity}-level, expected a program-level one")
        if isinstance(checkpoint, LatencyPredictor) or checkpoint is None:
            self.predictor_ = checkpoint
        else:
            self.predictor_ = LatencyPredictor.from_pretrained(checkpoint, granularity="program")
        self.graphs_: dict[str, OpGraph] = {}
        self.records_: list[Record] = []
        self.updates_ = 0
        self._program_cache: dict[int, tuple[str, OpGraph]] = {}

    # ------------------------------------------------------------ MetaSchedule API
    def predict(self, context: Any, candidates: Sequence[Any]) -> np.ndarray:
        """One finite float64 score per candidate, higher = faster."""
        programs = [self._program(c.sch.mod["main"]) for c in candidates]
        if self.predictor_ is None:
            return np.array([int(key, 16) / 16.0 ** 16 for key, _ in programs], dtype=np.float64)
        return np.nan_to_num(1.0 / np.maximum(self._latency_ms(programs), _MIN_MS), nan=0.0)

    def update(self, context: Any, candidates: Sequence[Any], results: Sequence[Any]) -> None:
        """Keep the successful measurements; train when ``OnlineConfig.due``."""
        workload = _workload_key(context)
        for candidate, result in zip(candidates, results):
            # The rules of the tuning records: no times, non-finite, or MetaSchedule's failure sentinel is a failure.
            seconds = None if result.error_msg is not None else mean_run_secs(result.run_secs)
            if seconds is None:
                continue
            key, graph = self._program(candidate.sch.mod["main"])
            self.graphs_[key] = graph
            self.records_.append((workload, key, seconds * 1e3))
        self.updates_ += 1
        if self.records_ and self.online.due(self.updates_):
            self._train()

    def save(self, path: str) -> None:
        """Write the records (and the trained predictor) into the directory ``path``."""
        root = Path(path)
        if self.predictor_ is not None:
            self.predictor_.save_pretrained(root / PREDICTOR_DIR)
        used = {key for _, key, _ in self.records_}
        payload = {
            "format_version": RECORDS_FORMAT_VERSION,
            "target": self.target.to_dict(),
            "updates": self.updates_,
            "has_predictor": self.predictor_ is not None,
            "graphs": {key: self.graphs_[key].to_json() for key in sorted(used)},
            "records": [list(r) for r in self.records_],
        }
        write_text_atomic(root / RECORDS_FILE, json.dumps(payload, separators=(",", ":")))

    def load(self, path: str) -> None:
        """Read what ``save`` wrote; the records must be for this model's target."""
        file = Path(path) / RECORDS_FILE
        payload = read_json(file, CheckpointError, missing="missing (LeDGCostModel.save writes it)")
        if payload.get("format_version") != RECORDS_FORMAT_VERSION:
            raise CheckpointError(f"{file}: format_version {payload.get('format_version')!r}, "
                                  f"this tvm-ledg reads {RECORDS_FORMAT_VERSION}")
        name = payload.get("target", {}).get("name")
        if name != self.target.name:
            raise CheckpointError(f"{file}: records of target {name!r}, but this cost model is for "
                                  f"{self.target.name!r}; construct LeDGCostModel({name!r})")
        try:
            graphs = {key: OpGraph.from_json(g, source=f"{file} graph {key}") for key, g in payload["graphs"].items()}
            records = [(str(w), str(k), float(v)) for w, k, v in payload["records"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{file}: malformed records ({exc})") from exc
        missing = sorted({k for _, k, _ in records} - set(graphs))
        if missing:
            raise CheckpointError(f"{file}: records name programs without a graph: {missing[:3]}")
        self.graphs_, self.records_, self.updates_ = graphs, records, int(payload.get("updates", 0))
        if payload.get("has_predictor"):
            self.predictor_ = LatencyPredictor.from_pretrained(Path(path) / PREDICTOR_DIR, granularity="program")

    # -------------------------------------------------------------------- helpers
    def latency_ms(self, funcs: Sequence[Any]) -> np.ndarray:
        """Predicted latency (ms) of scheduled PrimFuncs; needs a trained or pre-trained predictor."""
        if self.predictor_ is None:
            raise CheckpointError(f"LeDGCostModel for {self.target.name}: no predictor yet; pass checkpoint=... "
                                  "or update() it with measurements first")
        return self._latency_ms([self._program(f) for f in funcs])

    def _program(self, func: Any) -> tuple[str, OpGraph]:
        """``(content hash, program graph)`` of a scheduled PrimFunc, cached by its structural hash."""
        shash = structural_hash(func)
        hit = self._program_cache.get(shash)
        if hit is None:
            graph = program_graph(func)
            hit = (graph.content_hash(), graph)
            if len(self._program_cache) >= _GRAPH_CACHE_SIZE:
                del self._program_cache[next(iter(self._program_cache))]
            self._program_cache[shash] = hit
        return hit

    def _latency_ms(self, programs: Sequence[tuple[str, OpGraph]]) -> np.ndarray:
        pairs = [(key, self.target.name) for key, _ in programs]
        return self.predictor_.predict(dict(programs), {self.target.name: self.target}, pairs)

    def _train(self) -> None:
        start = time.perf_counter()
        rows = [(key, self.target.name, latency) for _, key, latency in self.records_]
        if self.predictor_ is None:
            self.predictor_ = self._fit_from_scratch(rows)
        else:
            self._fine_tune(rows)
        log.info("LeDGCostModel %s: trained on %d records in %.2f s", self.target.name, len(rows),
                 time.perf_counter() - start)

    def _fit_from_scratch(self, rows: list[tuple[str, str, float]]) -> LatencyPredictor:
        cfg = self.online
        per_epoch = min(len(rows), cfg.steps * cfg.batch_size)
        epochs = max(1, math.ceil(cfg.steps / math.ceil(per_epoch / cfg.batch_size)))
        train = TrainConfig(epochs=epochs, batch_size=cfg.batch_size, lr=cfg.lr, rank_weight=cfg.rank_weight,
                            seed=cfg.seed, rows_per_epoch=per_epoch)
        predictor = LatencyPredictor(encoder=_COLD_ENCODER, model=_COLD_MODEL, train=train, granularity="program")
        return predictor.fit(self.graphs_, {self.target.name: self.target}, rows)

    def _fine_tune(self, rows: list[tuple[str, str, float]]) -> None:
        """``steps`` AdamW steps from the current weights, each on ``batch_size`` records drawn without
        replacement (one-batch epochs of the shared loop); ranking pairs only within a workload."""
        cfg, predictor = self.online, self.predictor_
        workloads = {w: i for i, w in enumerate(sorted({w for w, _, _ in self.records_}))}
        task = predictor.training_task(self.graphs_, {self.target.name: self.target}, rows,
                                       groups=[workloads[w] for w, _, _ in self.records_],
                                       rank_weight=cfg.rank_weight, history=[])
        settings = LoopSettings(epochs=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=1e-4,
                                optimizer="adamw", clip_norm=1.0, seed=cfg.seed * 100_003 + self.updates_,
                                rows_per_epoch=min(cfg.batch_size, len(rows)))
        try:
            run_training(task, settings, describe="fine-tune", log_level=logging.DEBUG)
        finally:
            predictor.model_.eval()
            predictor.encoder_.eval()


def _workload_key(context: Any) -> str:
    """The tuning task a measurement belongs to: a structural hash of its unscheduled module."""
    mod = getattr(context, "mod", None)
    if mod is None:
        return "workload"
    return f"{structural_hash(mod) & 0xFFFFFFFFFFFFFFFF:016x}"
