"""``LatencyPredictor``: text encoder + LeDG-Former behind fit / predict / save / load.

Rows are ``(graph_key, target_name, latency_ms)``; graphs and targets are
passed as mappings so each graph is featurized once and each distinct text is
embedded once, however many targets it is measured on.

Training is seeded and resumable: with ``resume_dir`` every finished epoch
writes the weights, optimizer and scheduler state (safetensors + JSON, no
pickle) atomically, and a restarted ``fit`` with the same data and settings
continues from the last finished epoch. Shuffling and dropout are seeded per
epoch, so a resumed run follows the same path as an uninterrupted one.

Few-shot adaptations (``cost_model.adapt``) are stored per target (keyed by
the descriptor's content hash) and applied by ``predict`` automatically.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from cost_model.batch import GraphTensors, collate
from cost_model.checkpoint import check_compatible, config_field, load_checkpoint, save_checkpoint
from cost_model.early_stopping import EarlyStopping
from cost_model.encoders import TextEncoder, make_encoder
from cost_model.featurize import FEATURE_NAMES, feature_schema_hash, graph_tensors
from cost_model.graph import OpGraph
from cost_model.ledgformer import LeDGFormer, LeDGFormerConfig, LeDGOutput
from cost_model.losses import latency_loss
from cost_model.metrics import log_rmse
from cost_model.rows import Row, validate_rows
from targets.errors import CheckpointError, DataError
from targets.schema import FEATURE_NAMES as TARGET_FEATURE_NAMES
from targets.schema import SCHEMA_VERSION, TargetDescriptor

__all__ = ["TrainConfig", "Adaptation", "Prediction", "LatencyPredictor"]

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Optimisation settings. ``rows_per_epoch`` (None: all) samples that many training rows
    per epoch, so that an epoch has a bounded cost however many devices are in the data."""

    epochs: int = 20
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    rank_weight: float = 0.5
    huber_delta: float = 1.0
    patience: int = 5
    seed: int = 0
    rows_per_epoch: int | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "train") -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise DataError(f"{source}: unknown training settings {unknown} (known: {sorted(known)})")
        return cls(**d)


@dataclass
class Adaptation:
    """A few-shot correction for one target: ``log y = scale_a + scale_b * log(model(offset))``."""

    descriptor: dict[str, Any]
    scale_a: float = 0.0
    scale_b: float = 1.0
    offset: torch.Tensor | None = None  # (dim,) added to the target conditioning vector
    samples: int = 0
    method: str = "zero-shot"

    @property
    def changes_predictions(self) -> bool:
        """False when applying it is a no-op (adaptation kept the model as it was)."""
        return self.offset is not None or self.scale_a != 0.0 or self.scale_b != 1.0

    def describe(self) -> str:
        """What was done, in words: which correction, from how many measurements."""
        n = f"{self.samples} measurement" + ("" if self.samples == 1 else "s")
        if not self.changes_predictions:
            return f"nothing adapted: the model as trained fits the {n} best (cross-validated), predictions unchanged"
        factor = math.exp(self.scale_a)
        if self.offset is None and self.scale_b == 1.0:
            how = "not cross-validated" if self.samples == 1 else "cross-validated"
            return f"scale-only calibration from {n} ({how}): every prediction x {factor:.3g}"
        what = "target offset fine-tuned, then calibrated" if self.offset is not None else "calibrated"
        return (f"{what} from {n} (cross-validated): "
                f"log y = {self.scale_a:.3f} + {self.scale_b:.3f} log y_model")

    def to_json(self) -> dict[str, Any]:
        return {"descriptor": self.descriptor, "scale_a": self.scale_a, "scale_b": self.scale_b,
                "has_offset": self.offset is not None, "samples": self.samples, "method": self.method}


@dataclass
class Prediction:
    """Predictions for a list of pairs: ``latency_ms`` (P,), ``std_log`` (P,) or None, and
    ``per_op_ms``: one array per pair (its graph's operators in node order) when asked for."""

    latency_ms: np.ndarray
    std_log: np.ndarray | None = None
    per_op_ms: list[np.ndarray] | None = None


def _schemas() -> dict[str, Any]:
    return {
        "node_features": feature_schema_hash(),
        "target_schema_version": SCHEMA_VERSION,
        "target_features": list(TARGET_FEATURE_NAMES),
    }


class LatencyPredictor:
    """Predict latency (ms) of (graph, target) pairs; unfitted until ``fit`` or ``from_pretrained``."""

    def __init__(self, encoder: str | dict = "builtin", model: dict | None = None, train: TrainConfig | None = None,
                 feature_cache: dict[str, GraphTensors] | None = None, granularity: str = "network"):
        """``feature_cache``: featurized graphs shared by predictors that see the same graph keys
        (benchmarks train one model per fold on one graph store). ``granularity``: what a row's graph
        is, "network" (a whole model) or "program" (one scheduled TIR function); saved, and checked
        by whoever loads the checkpoint for one use."""
        if granularity not in _GRANULARITIES:
            raise DataError(f"granularity {granularity!r}: expected one of {sorted(_GRANULARITIES)}")
        self.granularity = granularity
        self.encoder_spec = encoder
        self.model_options = dict(model or {})
        self.train_config = train or TrainConfig()
        self.encoder_: TextEncoder | None = None
        self.model_: LeDGFormer | None = None
        self.history_: list[dict[str, float]] = []
        self.adaptations_: dict[str, Adaptation] = {}
        self.data_summary_: dict[str, Any] = {}
        self._tensors: dict[str, GraphTensors] = {} if feature_cache is None else feature_cache

    # ------------------------------------------------------------ helpers
    def _graph(self, key: str, graphs: Mapping[str, OpGraph]) -> GraphTensors:
        if key not in self._tensors:
            if key not in graphs:
                raise DataError(f"no graph for {key!r}")
            self._tensors[key] = graph_tensors(graphs[key])
        return self._tensors[key]

    def forward(self, keys: Sequence[str], descs: Sequence[TargetDescriptor], graphs: Mapping[str, OpGraph],
                offsets: torch.Tensor | None = None) -> LeDGOutput:
        """Raw model output for (graph, target) rows; ``offsets`` (B, dim) override stored adaptations."""
        assert self.model_ is not None and self.encoder_ is not None
        batch = collate([self._graph(k, graphs) for k in keys], self.model_.config.relations)
        node_emb = self.encoder_(batch.texts)
        target_emb = self.encoder_([d.to_text() for d in descs])
        feats = [d.to_features() for d in descs]
        values = torch.tensor([f[0] for f in feats], dtype=torch.float32)
        mask = torch.tensor([f[1] for f in feats], dtype=torch.float32)
        if offsets is None and self.adaptations_:
            offsets = self._stored_offsets(descs)
        return self.model_(batch, node_emb, target_emb, values, mask, target_offset=offsets)

    def _stored_offsets(self, descs: Sequence[TargetDescriptor]) -> torch.Tensor | None:
        rows = [self.adaptations_.get(d.content_hash()) for d in descs]
        if not any(a is not None and a.offset is not None for a in rows):
            return None
        zero = torch.zeros(self.model_.config.dim)
        return torch.stack([a.offset if a is not None and a.offset is not None else zero for a in rows])

    def _check_fitted(self) -> None:
        if self.model_ is None:
            raise CheckpointError("this LatencyPredictor is not fitted; call fit() or from_pretrained() first")

    def _build(self) -> None:
        self.encoder_ = make_encoder(self.encoder_spec)
        self.model_ = LeDGFormer(LeDGFormerConfig(
            text_dim=self.encoder_.dim, num_node_features=len(FEATURE_NAMES),
            num_target_features=len(TARGET_FEATURE_NAMES), **self.model_options))

    # ---------------------------------------------------------------- fit
    def fit(self, graphs: Mapping[str, OpGraph], targets: Mapping[str, TargetDescriptor], rows: Sequence[Row],
            val_rows: Sequence[Row] = (), *, resume_dir: str | os.PathLike[str] | None = None,
            progress: bool = False) -> "LatencyPredictor":
        """Train on ``rows``; early-stop on ``val_rows`` (never on test data), keeping the best weights."""
        cfg = self.train_config
        if not rows:
            raise DataError("fit() needs at least one training row")
        validate_rows(rows, graphs, targets, "training rows")
        validate_rows(val_rows, graphs, targets, "validation rows")
        torch.manual_seed(cfg.seed)
        self._build()
        keys = sorted({r[0] for r in rows})
        tensors = [self._graph(k, graphs) for k in tqdm(keys, desc="featurize", disable=not progress, leave=False)]
        train_targets = sorted({r[1] for r in rows})
        feats = torch.tensor([targets[t].to_features()[0] for t in train_targets])
        masks = torch.tensor([targets[t].to_features()[1] for t in train_targets])
        self.model_.fit_normalizers(torch.cat([t.x_num for t in tensors]).float(), feats.float(), masks.float())
        log_y = np.log([r[2] for r in rows])
        self.model_.init_output_bias(float(log_y.mean()), float(np.mean([t.num_nodes for t in tensors])))
        params = [*self.model_.parameters(), *(self.encoder_.parameters() if self.encoder_.trainable else [])]
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        per_epoch = min(len(rows), cfg.rows_per_epoch or len(rows))
        steps = cfg.epochs * math.ceil(per_epoch / cfg.batch_size)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(steps, 1))
        target_ids = {t: i for i, t in enumerate(sorted(targets))}
        resume = _Resume(resume_dir, self._fingerprint(rows, val_rows)) if resume_dir is not None else None
        stopper, start_epoch = EarlyStopping(cfg.patience), 0
        if resume is not None and resume.exists():
            start_epoch = resume.load(self, opt, sched, stopper)
            log.info("resuming after epoch %d from %s", start_epoch - 1, resume.root)
        y_all = np.array([r[2] for r in rows], dtype=np.float32)
        for epoch in range(start_epoch, cfg.epochs):
            if val_rows and stopper.should_stop:
                break
            torch.manual_seed(cfg.seed * 100_003 + epoch)
            self.model_.train()
            self.encoder_.train(self.encoder_.trainable)
            order = np.random.default_rng([cfg.seed, epoch]).permutation(len(rows))[:per_epoch]
            total = 0.0
            bar = tqdm(range(0, per_epoch, cfg.batch_size), desc=f"epoch {epoch + 1}/{cfg.epochs}",
                       disable=not progress, leave=False)
            for start in bar:
                idx = order[start:start + cfg.batch_size]
                chunk = [rows[i] for i in idx]
                out = self.forward([r[0] for r in chunk], [targets[r[1]] for r in chunk], graphs)
                group = torch.tensor([target_ids[r[1]] for r in chunk])
                loss = latency_loss(out, torch.from_numpy(y_all[idx]), group, huber_delta=cfg.huber_delta,
                                    rank_weight=cfg.rank_weight).total
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(chunk)
                bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
            entry = {"epoch": epoch, "train_loss": total / per_epoch}
            if val_rows:
                pred = self.predict(graphs, targets, [(r[0], r[1]) for r in val_rows])
                entry["val_log_rmse"] = log_rmse([r[2] for r in val_rows], pred)
                stopper.update(entry["val_log_rmse"], self._state())
            self.history_.append(entry)
            log.info("epoch %s", entry)
            if progress:
                tqdm.write(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in entry.items()))
            if resume is not None:
                resume.save(self, opt, sched, epoch + 1, stopper)
        if stopper.best_state is not None:
            self._load_state(stopper.best_state)
        self.data_summary_ = {"train_rows": len(rows), "val_rows": len(val_rows), "graphs": len(keys),
                              "targets": train_targets}
        return self

    def _fingerprint(self, rows: Sequence[Row], val_rows: Sequence[Row]) -> str:
        """Identifies a training run: a resume directory written for other data or settings is refused."""
        h = hashlib.sha256()
        h.update(json.dumps([self.encoder_spec, self.model_options, dataclasses.asdict(self.train_config)],
                            sort_keys=True, default=str).encode())
        for r in (*rows, "|", *val_rows):
            h.update(repr(r).encode())
        return h.hexdigest()[:16]

    # ------------------------------------------------------------ predict
    @torch.inference_mode()
    def predict(self, graphs: Mapping[str, OpGraph], targets: Mapping[str, TargetDescriptor],
                pairs: Sequence[tuple[str, str]], batch_size: int = 256) -> np.ndarray:
        """Latency in ms for each ``(graph_key, target_name)`` pair."""
        return self.predict_detailed(graphs, targets, pairs, batch_size=batch_size).latency_ms

    @torch.inference_mode()
    def predict_detailed(self, graphs: Mapping[str, OpGraph], targets: Mapping[str, TargetDescriptor],
                         pairs: Sequence[tuple[str, str]], *, breakdown: bool = False,
                         batch_size: int = 256) -> Prediction:
        """Latency, uncertainty (when the model has a variance head) and per-operator breakdown."""
        self._check_fitted()
        for key, target in pairs:
            if target not in targets:
                raise DataError(f"no target descriptor named {target!r}")
        self._warn_stale_adaptations({targets[t] for _, t in pairs})
        self.model_.eval()
        self.encoder_.eval()
        lat, std, per_op = [], [], []
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start:start + batch_size]
            descs = [targets[p[1]] for p in chunk]
            res = self.forward([p[0] for p in chunk], descs, graphs)
            a, b = self._calibration(descs)
            scale = b * res.log_latency_ms.double() + a
            lat.append(torch.exp(scale).numpy())
            if res.log_var is not None:
                std.append((torch.exp(0.5 * res.log_var.double()) * b.abs()).numpy())
            if breakdown:
                # per-op shares are kept; the calibrated total is split in the same proportions
                factor = torch.exp(scale - res.log_latency_ms.double())
                counts = [self._graph(p[0], graphs).num_nodes for p in chunk]
                for ops, f in zip(torch.split(res.per_op_ms.double(), counts), factor):
                    per_op.append((ops * f).numpy())
        latency = np.concatenate(lat) if lat else np.zeros(0)
        return Prediction(latency, np.concatenate(std) if std else None, per_op if breakdown else None)

    def adaptation_for(self, desc: TargetDescriptor) -> Adaptation | None:
        """The stored adaptation that changes ``desc``'s predictions, if any."""
        found = self.adaptations_.get(desc.content_hash())
        return found if found is not None and found.changes_predictions else None

    def _warn_stale_adaptations(self, descs: set[TargetDescriptor]) -> None:
        """An adaptation is keyed by the descriptor's content hash, so editing any field of the
        descriptor silently drops it; say so when a target's name matches a stored adaptation."""
        if not self.adaptations_:
            return
        by_name: dict[str, list[str]] = {}
        for key, adaptation in self.adaptations_.items():
            by_name.setdefault(str(adaptation.descriptor.get("name")), []).append(key)
        for desc in sorted(descs, key=lambda d: d.name):
            if desc.content_hash() not in self.adaptations_ and desc.name in by_name:
                log.warning("target %s: this checkpoint holds an adaptation for a descriptor of the same name with "
                            "other fields (hash %s, now %s); it is not applied: adapt again to the edited descriptor",
                            desc.name, ", ".join(by_name[desc.name]), desc.content_hash())

    def _calibration(self, descs: Sequence[TargetDescriptor]) -> tuple[torch.Tensor, torch.Tensor]:
        found = [self.adaptations_.get(d.content_hash()) for d in descs] if self.adaptations_ else [None] * len(descs)
        a = torch.tensor([x.scale_a if x else 0.0 for x in found], dtype=torch.float64)
        b = torch.tensor([x.scale_b if x else 1.0 for x in found], dtype=torch.float64)
        return a, b

    # ---------------------------------------------------------- persistence
    def _state(self) -> dict[str, torch.Tensor]:
        state = {f"model.{k}": v for k, v in self.model_.state_dict().items()}
        if self.encoder_.trainable:
            state.update({f"encoder.{k}": v for k, v in self.encoder_.state_dict().items()})
        return state

    def _load_state(self, state: Mapping[str, torch.Tensor]) -> None:
        def part(prefix: str) -> dict[str, torch.Tensor]:
            return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}

        try:
            self.model_.load_state_dict(part("model."))
            if self.encoder_.trainable:
                self.encoder_.load_state_dict(part("encoder."))
        except RuntimeError as exc:
            raise CheckpointError(f"weights do not fit the configured model: {exc}") from exc

    def save_pretrained(self, directory: str | os.PathLike[str], *, data_summary: dict | None = None) -> None:
        self._check_fitted()
        state = self._state()
        for key, adaptation in self.adaptations_.items():
            if adaptation.offset is not None:
                state[f"adapt.{key}.offset"] = adaptation.offset
        save_checkpoint(directory, state, {
            "kind": "ledgformer-latency",
            "granularity": self.granularity,
            "model": self.model_.config.to_dict(),
            "encoder": {"config": self.encoder_.config(), "id": self.encoder_.encoder_id},
            "schemas": _schemas(),
            "train": dataclasses.asdict(self.train_config),
            "history": self.history_,
            "data": data_summary if data_summary is not None else self.data_summary_,
            "adaptations": {k: a.to_json() for k, a in self.adaptations_.items()},
        })

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str], *, granularity: str | None = None,
                        feature_cache: MutableMapping[str, GraphTensors] | None = None) -> "LatencyPredictor":
        """Load a checkpoint; ``granularity`` ("network" or "program"), when given, must match the one it was
        trained for, since a program-level model returns plausible-looking nonsense for whole networks.
        ``feature_cache`` as in the constructor (a bounded mapping keeps a long-lived predictor's memory flat)."""
        state, config = load_checkpoint(directory)
        source = Path(directory) / "config.json"
        check_compatible(config, _schemas(), source=str(directory))
        if config.get("kind") != "ledgformer-latency":
            raise CheckpointError(f"{directory}: a {config.get('kind')!r} checkpoint, expected 'ledgformer-latency'")
        found = _granularity_of(config, source)
        if granularity is not None and found != granularity:
            raise CheckpointError(
                f"{directory}: a checkpoint of kind 'ledgformer-latency/{found}' ({_GRANULARITIES[found]}), expected "
                f"'ledgformer-latency/{granularity}' ({_GRANULARITIES[granularity]})")
        try:
            train = TrainConfig.from_dict(config.get("train", {}), source=f"{source} train")
        except (DataError, TypeError) as exc:
            raise CheckpointError(f"{source}: field 'train': {exc}") from exc
        encoder = config["encoder"]
        encoder_spec = config_field(encoder, "config", (dict, str), source, where="encoder")
        encoder_id = config_field(encoder, "id", str, source, where="encoder")
        self = cls(encoder=encoder_spec, train=train, granularity=found, feature_cache=feature_cache)
        try:
            self.encoder_ = make_encoder(encoder_spec)
            self.model_ = LeDGFormer(LeDGFormerConfig.from_dict(config["model"]))
        except (CheckpointError, TypeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{source}: field 'encoder' or 'model' does not describe a model ({exc})") from exc
        if self.encoder_.encoder_id != encoder_id:
            raise CheckpointError(f"{directory}: trained with encoder {encoder_id!r}, "
                                  f"but {self.encoder_.encoder_id!r} was found")
        self._load_state({k: v for k, v in state.items() if not k.startswith("adapt.")})
        self.history_ = list(config.get("history", []))
        self.data_summary_ = dict(config.get("data", {}))
        for key, entry in config.get("adaptations", {}).items():
            self.adaptations_[key] = _adaptation_from_json(key, entry, state.get(f"adapt.{key}.offset"), source)
        return self


_GRANULARITIES = {"network": "predicts whole networks", "program": "predicts scheduled TIR programs, for tuning"}


def _granularity_of(config: Mapping[str, Any], source: Path) -> str:
    """What a checkpoint predicts; checkpoints written before the field existed say it through their data."""
    if "granularity" in config:
        found = config["granularity"]
        if found not in _GRANULARITIES:
            raise CheckpointError(f"{source}: field 'granularity' is {found!r}, expected one of {sorted(_GRANULARITIES)}")
        return found
    run = config.get("data", {}).get("config", {})
    run_data = run.get("data", {}) if isinstance(run, dict) else {}
    return "program" if isinstance(run_data, dict) and run_data.get("tuning_records") else "network"


def _adaptation_from_json(key: str, entry: Any, offset: torch.Tensor | None, source: Path) -> Adaptation:
    where = f"adaptations.{key}"
    if not isinstance(entry, dict):
        raise CheckpointError(f"{source}: field {where!r} is not an object")
    descriptor = config_field(entry, "descriptor", dict, source, where=where)
    scale_a = config_field(entry, "scale_a", float, source, where=where)
    scale_b = config_field(entry, "scale_b", float, source, where=where)
    samples = config_field(entry, "samples", int, source, where=where) if "samples" in entry else 0
    method = config_field(entry, "method", str, source, where=where) if "method" in entry else ""
    has_offset = config_field(entry, "has_offset", bool, source, where=where) if "has_offset" in entry else False
    if has_offset and offset is None:
        raise CheckpointError(f"{source}: adaptation {key} lists an offset that model.safetensors lacks")
    return Adaptation(descriptor, float(scale_a), float(scale_b), offset, int(samples), method)


class _Resume:
    """Per-epoch training state in ``root`` (a checkpoint directory of kind ``training-state``), replaced atomically."""

    def __init__(self, root: str | os.PathLike[str], fingerprint: str) -> None:
        self.root = Path(root)
        self.fingerprint = fingerprint

    def exists(self) -> bool:
        return (self.root / "config.json").is_file()

    def save(self, predictor: LatencyPredictor, opt: torch.optim.Optimizer, sched: Any, next_epoch: int,
             stopper: EarlyStopping) -> None:
        tensors = {f"cur.{k}": v for k, v in predictor._state().items()}
        if stopper.best_state is not None:
            tensors.update({f"best.{k}": v for k, v in stopper.best_state.items()})
        opt_state = opt.state_dict()
        for pid, slots in opt_state["state"].items():
            for name, value in slots.items():
                tensors[f"opt.{pid}.{name}"] = torch.as_tensor(value)
        meta = {"fingerprint": self.fingerprint, "next_epoch": next_epoch,
                "best": stopper.best if math.isfinite(stopper.best) else None, "bad_epochs": stopper.bad_epochs,
                "has_best": stopper.best_state is not None, "history": predictor.history_,
                "param_groups": opt_state["param_groups"], "scheduler": sched.state_dict()}
        save_checkpoint(self.root, tensors, {"kind": "training-state", "model": {}, "encoder": {}, "schemas": {},
                                             "resume": meta})

    def load(self, predictor: LatencyPredictor, opt: torch.optim.Optimizer, sched: Any,
             stopper: EarlyStopping) -> int:
        """Restore the model, optimizer, scheduler and ``stopper``; returns the next epoch to run."""
        tensors, config = load_checkpoint(self.root)
        meta = config.get("resume", {})
        if meta.get("fingerprint") != self.fingerprint:
            raise CheckpointError(f"{self.root}: resume state belongs to another run (different data or settings); "
                                  "delete it or choose another output directory")
        predictor._load_state({k[4:]: v for k, v in tensors.items() if k.startswith("cur.")})
        slots: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("opt."):
                _, pid, name = key.split(".", 2)
                slots.setdefault(int(pid), {})[name] = value
        opt.load_state_dict({"state": slots, "param_groups": meta["param_groups"]})
        sched.load_state_dict(meta["scheduler"])
        predictor.history_ = list(meta["history"])
        stopper.best_state = ({k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
                              if meta["has_best"] else None)
        stopper.best = math.inf if meta["best"] is None else float(meta["best"])
        stopper.bad_epochs = int(meta["bad_epochs"])
        return int(meta["next_epoch"])
