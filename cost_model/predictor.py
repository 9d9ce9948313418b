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

Why one module of about 650 lines: fit, predict, adaptation lookup and persistence all read and
write the same fitted state (model, encoder, known targets, adaptations, data summary); split across
modules that state would have to become public. The training loop, adaptation, the model and the
checkpoint format live in their own modules.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from cost_model import distributed
from cost_model.batch import GraphTensors, collate
from cost_model.checkpoint import check_compatible, config_field, load_checkpoint, save_checkpoint
from cost_model.device import resolve_device
from cost_model.encoders import TextEncoder, make_encoder
from cost_model.estimator import LatencyEstimator
from cost_model.featurize import FEATURE_NAMES, feature_schema_hash, graph_tensors
from cost_model.graph import OpGraph
from cost_model.ledgformer import LeDGFormer, LeDGFormerConfig, LeDGOutput
from cost_model.losses import latency_loss
from cost_model.metrics import log_rmse
from cost_model.roofline import BOUND_LABELS, SPEC_FEATURE_NAMES, roofline_targets, target_roofline
from cost_model.rows import Row, validate_rows
from cost_model.target_inputs import conditioning_features, conditioning_text
from cost_model.trainer import LoopSettings, TrainingState, TrainTask, run_training
from targets import registry as targets_registry
from targets.errors import ArgumentError, CheckpointError, DataError, LedgError, TargetError
from targets.schema import FEATURE_NAMES as TARGET_FEATURE_NAMES
from targets.schema import SCHEMA_VERSION, TargetDescriptor

__all__ = ["TrainConfig", "Adaptation", "Prediction", "LatencyPredictor"]

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Optimisation settings. ``rows_per_epoch`` (None: all) samples that many training rows
    per epoch, so that an epoch has a bounded cost however many devices are in the data.
    ``target_offsets``: learn a correction of each training target's conditioning (a table
    row, kept in the checkpoint and applied when that target is predicted), pulled toward zero
    with this L2 weight, so that the shared descriptor mapping carries what targets have in
    common; None learns none (every target is predicted from its descriptor alone).
    ``rank_weight`` defaults to 0: on network latency the pairwise ranking term held the validation
    log-RMSE at twice the level reached without it, and ranking came out better without it too
    (docs/results/validation_sweep/); tuning, which ranks candidate programs, sets its own."""

    epochs: int = 20
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    rank_weight: float = 0.0
    huber_delta: float = 1.0
    patience: int = 5
    seed: int = 0
    rows_per_epoch: int | None = None
    target_offsets: float | None = 0.01

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "train") -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ArgumentError(f"{source}: unknown training settings {unknown} (known: {sorted(known)})")
        return cls(**d)


@dataclass
class Adaptation:
    """A few-shot correction for one target: ``log y = scale_a + scale_b * log(model(offset))``.

    With a ``reference`` (the descriptor of a training target) the model predicts the target as that
    training target, whose learned predictions rank the measured samples best, and the calibration maps
    them to this target: the model's counterpart of a proxy device, needing no measurement table."""

    descriptor: dict[str, Any]
    scale_a: float = 0.0
    scale_b: float = 1.0
    offset: torch.Tensor | None = None  # (dim,) added to the target conditioning vector
    samples: int = 0
    method: str = "zero-shot"
    reference: TargetDescriptor | None = None

    @property
    def changes_predictions(self) -> bool:
        """False when applying it is a no-op (adaptation kept the model as it was)."""
        return (self.offset is not None or self.reference is not None or self.scale_a != 0.0
                or self.scale_b != 1.0)

    def describe(self) -> str:
        """What was done, in words: which correction, from how many measurements."""
        n = f"{self.samples} measurement" + ("" if self.samples == 1 else "s")
        if not self.changes_predictions:
            return f"nothing adapted: the model as trained fits the {n} best (cross-validated), predictions unchanged"
        factor = math.exp(self.scale_a)
        if self.offset is None and self.reference is None and self.scale_b == 1.0:
            how = "not cross-validated" if self.samples == 1 else "cross-validated"
            return f"scale-only calibration from {n} ({how}): every prediction x {factor:.3g}"
        what = "target offset fine-tuned, then calibrated" if self.offset is not None else "calibrated"
        if self.reference is not None:
            what = f"predicted as training target {self.reference.name}, then calibrated"
        return (f"{what} from {n} (cross-validated): "
                f"log y = {self.scale_a:.3f} + {self.scale_b:.3f} log y_model")

    def to_json(self) -> dict[str, Any]:
        return {"descriptor": self.descriptor, "scale_a": self.scale_a, "scale_b": self.scale_b,
                "has_offset": self.offset is not None, "samples": self.samples, "method": self.method,
                **({"reference": self.reference.to_dict()} if self.reference is not None else {})}


@dataclass
class Prediction:
    """Predictions for a list of pairs: ``latency_ms`` (P,), ``std_log`` (P,) or None, and
    ``per_op_ms``: one array per pair (its graph's operators in node order) when asked for;
    ``bound``: alongside it, each operator's limit (``roofline.BOUND_LABELS``: "compute",
    "memory" or "overhead") when the model has the roofline head."""

    latency_ms: np.ndarray
    std_log: np.ndarray | None = None
    per_op_ms: list[np.ndarray] | None = None
    bound: list[np.ndarray] | None = None


def _schemas() -> dict[str, Any]:
    return {
        "node_features": feature_schema_hash(),
        "target_schema_version": SCHEMA_VERSION,
        "target_features": list(TARGET_FEATURE_NAMES),
    }


class LatencyPredictor(LatencyEstimator):
    """Predict latency (ms) of (graph, target) pairs; unfitted until ``fit`` or ``from_pretrained``."""

    _fitted_attribute = "model_"
    _how_to_fit = "call fit() or from_pretrained() first"

    def __init__(self, encoder: str | dict = "builtin", model: dict | None = None, train: TrainConfig | None = None,
                 feature_cache: MutableMapping[str, GraphTensors] | None = None, granularity: str = "network",
                 device: str = "auto"):
        """``encoder``: the text encoder's spec (``make_encoder``); ``model``: ``LeDGFormerConfig`` options;
        ``train``: optimisation settings. ``feature_cache``: featurized graphs shared by predictors that
        see the same graph keys (benchmarks train one model per fold on one graph store). ``granularity``:
        what a row's graph is, "network" (a whole model) or "program" (one scheduled TIR function); saved,
        and checked by whoever loads the checkpoint for one use. ``device``: where ``fit`` trains and the
        fitted model predicts ("auto": CUDA when available, else the CPU; "cpu", "cuda", "cuda:N"); not a
        training setting, so a run may resume on another device, and checkpoints are saved from the CPU."""
        if granularity not in _GRANULARITIES:
            raise ArgumentError(f"granularity {granularity!r}: expected one of {sorted(_GRANULARITIES)}")
        self.encoder = encoder
        self.model = dict(model or {})
        self.train = train or TrainConfig()
        self.feature_cache: MutableMapping[str, GraphTensors] = {} if feature_cache is None else feature_cache
        self.granularity = granularity
        self.device = device
        self._reset_fitted()

    def _reset_fitted(self) -> None:
        self.encoder_: TextEncoder | None = None
        self.model_: LeDGFormer | None = None
        self.history_: list[dict[str, float]] = []
        self.adaptations_: dict[str, Adaptation] = {}
        self.known_targets_: dict[str, int] = {}  # descriptor content hash -> row of model_.target_table
        self.data_summary_: dict[str, Any] = {}
        self.device_ = torch.device("cpu")  # where model_ and encoder_ live

    # ------------------------------------------------------------ helpers
    def _graph(self, key: str, graphs: Mapping[str, OpGraph | GraphTensors]) -> GraphTensors:
        if key not in self.feature_cache:
            if key not in graphs:
                raise DataError(f"no graph for {key!r}")
            graph = graphs[key]  # already featurized: space graphs assembled from block features
            self.feature_cache[key] = graph if isinstance(graph, GraphTensors) else graph_tensors(graph)
        return self.feature_cache[key]

    def forward(self, keys: Sequence[str], descs: Sequence[TargetDescriptor], graphs: Mapping[str, OpGraph],
                offsets: torch.Tensor | None = None) -> LeDGOutput:
        """Raw model output for (graph, target) rows; ``offsets`` (B, dim) replace stored adaptations
        (they are added to the training targets' learned offsets). With late fusion each distinct
        graph of the rows is encoded once."""
        assert self.model_ is not None and self.encoder_ is not None
        pair_graph = None
        if self.model_.config.fusion == "late":
            distinct = dict.fromkeys(keys)
            position = {k: i for i, k in enumerate(distinct)}
            pair_graph = torch.tensor([position[k] for k in keys], dtype=torch.long)
            keys = list(distinct)
        batch = collate([self._graph(k, graphs) for k in keys], self.model_.config.relations)
        node_emb = self.encoder_(batch.texts)
        # a batch repeats a few targets over many rows: embed and featurize each distinct one once
        distinct_descs = list({id(d): d for d in descs}.values())
        row_of = {id(d): i for i, d in enumerate(distinct_descs)}
        index = torch.tensor([row_of[id(d)] for d in descs], dtype=torch.long)
        texts = [conditioning_text(d, self.model_.config.target_inputs) for d in distinct_descs]
        target_emb = self.encoder_(texts)[index.to(self.device_)]
        values, mask = (t[index] for t in self._target_features(distinct_descs))
        if offsets is None and self.adaptations_:
            offsets = self._stored_offsets(descs)
        known = self._known_offsets(descs)
        if known is not None:
            offsets = known if offsets is None else known + offsets.to(self.device_)
        elif offsets is not None:
            offsets = offsets.to(self.device_)
        values, mask = values.to(self.device_), mask.to(self.device_)
        roofline = None
        if self.model_.config.head == "roofline":
            _warn_estimated_specs(descs)
            roofline = roofline_targets(descs)
        return self.model_(batch, node_emb, target_emb, values, mask, roofline, target_offset=offsets,
                           pair_graph=pair_graph)

    def _known_offsets(self, descs: Sequence[TargetDescriptor]) -> torch.Tensor | None:
        """The learned table rows of the training targets among ``descs`` (zero for other targets)."""
        table = self.model_.target_table
        if table is None or not self.known_targets_:
            return None
        hashes = {id(d): d.content_hash() for d in descs}
        rows = torch.tensor([self.known_targets_.get(hashes[id(d)], -1) for d in descs], device=table.device)
        if not bool((rows >= 0).any()):
            return None
        return table[rows.clamp_min(0)] * (rows >= 0).unsqueeze(-1).to(table.dtype)

    def _stored_offsets(self, descs: Sequence[TargetDescriptor]) -> torch.Tensor | None:
        rows = [self.adaptations_.get(d.content_hash()) for d in descs]
        if not any(a is not None and a.offset is not None for a in rows):
            return None
        zero = torch.zeros(self.model_.config.dim)
        return torch.stack([a.offset.cpu() if a is not None and a.offset is not None else zero for a in rows])

    def _target_features(self, descs: Sequence[TargetDescriptor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(values, mask)``, float32 ``(len(descs), F)``: the descriptor features the conditioning reads."""
        feats = [conditioning_features(d, self.model_.config.target_inputs) for d in descs]
        return (torch.tensor([f[0] for f in feats], dtype=torch.float32),
                torch.tensor([f[1] for f in feats], dtype=torch.float32))

    def _fit_spec_prior(self, names: Sequence[str], targets: Mapping[str, TargetDescriptor]) -> None:
        """Fit the model's estimate of missing peak compute / bandwidth on the training targets."""
        descs = [targets[t] for t in names]
        specs = roofline_targets(descs)
        feats, masks = self._target_features(descs)
        spec_columns = torch.tensor([name in SPEC_FEATURE_NAMES for name in TARGET_FEATURE_NAMES])
        self.model_.fit_spec_prior(feats, masks, specs.log_specs.float(), specs.specs_known, spec_columns)

    def _build(self) -> None:
        """A fresh model. Unless ``model`` options say otherwise, networks get the roofline head (their
        nodes are kernels with a physical bound each) and programs the free head (a program's nodes are
        the loops and blocks of one kernel, which have no roofline of their own), and networks no dropout
        (it held the validation error up, docs/results/validation_sweep/)."""
        self.encoder_ = make_encoder(self.encoder)
        network = self.granularity == "network"
        options = {"head": "roofline" if network else "free", "fusion": "late" if network else "film",
                   **({"dropout": 0.0} if network else {}), **self.model, "known_targets": len(self.known_targets_)}
        self.model_ = LeDGFormer(LeDGFormerConfig(
            text_dim=self.encoder_.dim, num_node_features=len(FEATURE_NAMES),
            num_target_features=len(TARGET_FEATURE_NAMES), **options))

    # ---------------------------------------------------------------- fit
    def fit(self, graphs: Mapping[str, OpGraph], targets: Mapping[str, TargetDescriptor], rows: Sequence[Row],
            val_rows: Sequence[Row] = (), *, resume_dir: str | os.PathLike[str] | None = None,
            progress: bool = False) -> "LatencyPredictor":
        """Train on ``rows`` from scratch (earlier fitted state, adaptations included, is dropped);
        early-stop on ``val_rows`` (never on test data), keeping the best weights. Under ``torchrun``
        each process trains on its share of every batch (``cost_model.trainer``)."""
        cfg = self.train
        if not rows:
            raise DataError("fit() needs at least one training row")
        validate_rows(rows, graphs, targets, "training rows")
        validate_rows(val_rows, graphs, targets, "validation rows")
        self._reset_fitted()
        device = resolve_device(self.device)
        torch.manual_seed(cfg.seed)
        train_targets = sorted({r[1] for r in rows})
        if cfg.target_offsets is not None:
            # aliases of one descriptor (a device measured on two spaces) share one row
            hashes = dict.fromkeys(targets[t].content_hash() for t in train_targets)
            self.known_targets_ = {h: i for i, h in enumerate(hashes)}
        self._build()
        keys = sorted({r[0] for r in rows})
        show = progress and distributed.is_main_process()
        tensors = [self._graph(k, graphs) for k in tqdm(keys, desc="featurize", disable=not show, leave=False)]
        feats, masks = self._target_features([targets[t] for t in train_targets])
        self.model_.fit_normalizers(torch.cat([t.x_num for t in tensors]).float(), feats, masks)
        self._fit_spec_prior(train_targets, targets)
        log_y = np.log([r[2] for r in rows])
        self.model_.init_output_bias(float(log_y.mean()), float(np.mean([t.num_nodes for t in tensors])))
        self._move(device)
        run_training(self.training_task(graphs, targets, rows, val_rows), self.loop_settings(), progress=progress,
                     state=None if resume_dir is None else TrainingState(resume_dir, self._fingerprint(rows, val_rows)))
        self.data_summary_ = {"train_rows": len(rows), "val_rows": len(val_rows), "graphs": len(keys),
                              "targets": train_targets}
        return self

    def loop_settings(self) -> LoopSettings:
        """``self.train`` as settings of the shared loop: AdamW, clipping at 1, one-cycle schedule."""
        cfg = self.train
        return LoopSettings(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=cfg.weight_decay,
                            optimizer="adamw", clip_norm=1.0, one_cycle=True, patience=cfg.patience, seed=cfg.seed,
                            rows_per_epoch=cfg.rows_per_epoch)

    def training_task(self, graphs: Mapping[str, OpGraph], targets: Mapping[str, TargetDescriptor],
                      rows: Sequence[Row], val_rows: Sequence[Row] = (), *, groups: Sequence[int] | None = None,
                      rank_weight: float | None = None, history: list[dict[str, float]] | None = None) -> TrainTask:
        """The current weights as a ``TrainTask`` over ``rows`` with ``latency_loss``; ranking pairs are
        formed within ``groups`` (default: within a target), weighted by ``rank_weight`` (default: the
        training settings'). Validation on ``val_rows`` when given; epochs are recorded in ``history``
        (default: ``history_``)."""
        self._check_fitted()
        cfg = self.train
        rank_weight = cfg.rank_weight if rank_weight is None else rank_weight
        if groups is None:
            target_ids = {t: i for i, t in enumerate(sorted(targets))}
            groups = [target_ids[r[1]] for r in rows]
        group_all = torch.tensor(list(groups), device=self.device_)
        y_all = torch.tensor([r[2] for r in rows], dtype=torch.float32, device=self.device_)
        trained = [self.model_, *([self.encoder_] if self.encoder_.trainable else [])]
        if not self.encoder_.trainable:
            self.encoder_.eval()  # a frozen encoder's dropout stays off while the model trains

        table = self.model_.target_table

        def batch_loss(idx: np.ndarray) -> torch.Tensor:
            chunk = [rows[i] for i in idx]
            out = self.forward([r[0] for r in chunk], [targets[r[1]] for r in chunk], graphs)
            index = torch.from_numpy(idx).to(self.device_)
            loss = latency_loss(out, y_all[index], group_all[index], huber_delta=cfg.huber_delta,
                                rank_weight=rank_weight).total
            if table is not None and cfg.target_offsets:
                loss = loss + cfg.target_offsets * table.pow(2).sum(-1).mean()
            return loss

        def evaluate() -> float:
            pred = self.predict(graphs, targets, [(r[0], r[1]) for r in val_rows])
            return log_rmse([r[2] for r in val_rows], pred)

        batches, steps = None, None
        if self.model_.config.fusion == "late":
            per_epoch = min(len(rows), cfg.rows_per_epoch or len(rows))
            steps = max(math.ceil(per_epoch / cfg.batch_size), 1)
            batches = graph_batches([r[0] for r in rows], per_epoch, steps)
        return TrainTask(params=[p for m in trained for p in m.parameters()], batch_loss=batch_loss,
                         num_rows=len(rows), modules=trained, evaluate=evaluate if val_rows else None,
                         state=self._state, load_state=self._load_state, batches=batches, steps_per_epoch=steps,
                         history=self.history_ if history is None else history)

    def _fingerprint(self, rows: Sequence[Row], val_rows: Sequence[Row]) -> str:
        """Identifies a training run: a resume directory written for other data or settings is refused."""
        h = hashlib.sha256()
        h.update(json.dumps([self.encoder, self.model, dataclasses.asdict(self.train)],
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
        """Latency, uncertainty (when the model has a variance head) and per-operator breakdown; with the
        roofline head the breakdown also says what bounds each operator (``Prediction.bound``).

        With late fusion the pairs are processed grouped by graph, so that a graph predicted on many
        targets is encoded once per chunk; results come back in the order of ``pairs``."""
        self._check_fitted()
        for key, target in pairs:
            if target not in targets:
                raise DataError(f"no target descriptor named {target!r}")
        self._warn_stale_adaptations({targets[t] for _, t in pairs})
        self.model_.eval()
        self.encoder_.eval()
        order = np.arange(len(pairs))
        if self.model_.config.fusion == "late":
            order = np.array(sorted(range(len(pairs)), key=lambda i: pairs[i][0]), dtype=np.int64)
            pairs = [pairs[i] for i in order]
        lat, std, per_op, bound = [], [], [], []
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start:start + batch_size]
            descs = [targets[p[1]] for p in chunk]
            # a stand-in swaps only the descriptor and its learned row: the offsets are the targets' own
            offsets = self._stored_offsets(descs)
            if offsets is None and self.adaptations_:
                offsets = torch.zeros(len(descs), self.model_.config.dim)
            res = self.forward([p[0] for p in chunk], self._stand_ins(descs), graphs, offsets=offsets)
            a, b = self._calibration(descs)
            log_ms = res.log_latency_ms.double().cpu()
            scale = b * log_ms + a
            lat.append(torch.exp(scale).numpy())
            if res.log_var is not None:
                std.append((torch.exp(0.5 * res.log_var.double().cpu()) * b.abs()).numpy())
            if breakdown:
                # per-op shares are kept; the calibrated total is split in the same proportions
                factor = torch.exp(scale - log_ms)
                counts = [self._graph(p[0], graphs).num_nodes for p in chunk]
                for ops, f in zip(torch.split(res.per_op_ms.double().cpu(), counts), factor):
                    per_op.append((ops * f).numpy())
                if res.bound is not None:
                    bound.extend(_LABELS[part.numpy()] for part in torch.split(res.bound.cpu(), counts))
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        latency = np.concatenate(lat)[back] if lat else np.zeros(0)
        return Prediction(latency, np.concatenate(std)[back] if std else None,
                          [per_op[i] for i in back] if breakdown else None,
                          [bound[i] for i in back] if breakdown and bound else None)

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

    def _stand_ins(self, descs: Sequence[TargetDescriptor]) -> list[TargetDescriptor]:
        """Each target, or the training target its adaptation predicts it as (``Adaptation.reference``)."""
        if not self.adaptations_:
            return list(descs)
        found = [self.adaptations_.get(d.content_hash()) for d in descs]
        return [d if a is None or a.reference is None else a.reference for d, a in zip(descs, found)]

    def reference_targets(self) -> dict[str, TargetDescriptor]:
        """The training targets few-shot adaptation may predict a new target as: those of the training data
        whose registered descriptor is the one trained on (its learned offset row applies)."""
        out = {}
        for alias in self.data_summary_.get("targets", []):
            try:
                desc = targets_registry.load(alias)
            except TargetError:
                continue
            if desc.content_hash() in self.known_targets_:
                out[alias] = desc
        return out

    def _calibration(self, descs: Sequence[TargetDescriptor]) -> tuple[torch.Tensor, torch.Tensor]:
        found = [self.adaptations_.get(d.content_hash()) for d in descs] if self.adaptations_ else [None] * len(descs)
        a = torch.tensor([x.scale_a if x else 0.0 for x in found], dtype=torch.float64)
        b = torch.tensor([x.scale_b if x else 1.0 for x in found], dtype=torch.float64)
        return a, b

    # ---------------------------------------------------------- persistence
    def _move(self, device: torch.device) -> None:
        """Put the model and encoder on ``device``; batches follow them in ``forward``."""
        self.model_.to(device)
        self.encoder_.to(device)
        self.device_ = device

    def _state(self) -> dict[str, torch.Tensor]:
        """The weights as CPU tensors, so checkpoints and resume state load anywhere."""
        state = {f"model.{k}": v.cpu() for k, v in self.model_.state_dict().items()}
        if self.encoder_.trainable:
            state.update({f"encoder.{k}": v.cpu() for k, v in self.encoder_.state_dict().items()})
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
                state[f"adapt.{key}.offset"] = adaptation.offset.cpu()
        save_checkpoint(directory, state, {
            "kind": "ledgformer-latency",
            "granularity": self.granularity,
            "model": self.model_.config.to_dict(),
            "encoder": {"config": self.encoder_.config(), "id": self.encoder_.encoder_id},
            "schemas": _schemas(),
            "train": dataclasses.asdict(self.train),
            "history": self.history_,
            "data": data_summary if data_summary is not None else self.data_summary_,
            "adaptations": {k: a.to_json() for k, a in self.adaptations_.items()},
            "known_targets": self.known_targets_,
        })

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str], *, granularity: str | None = None,
                        feature_cache: MutableMapping[str, GraphTensors] | None = None,
                        device: str = "cpu") -> "LatencyPredictor":
        """Load a checkpoint; ``granularity`` ("network" or "program"), when given, must match the one it was
        trained for, since a program-level model returns plausible-looking nonsense for whole networks.
        ``feature_cache`` as in the constructor (a bounded mapping keeps a long-lived predictor's memory flat).
        ``device``: where it predicts (and fine-tunes); the CPU unless asked, whatever it was trained on."""
        where = resolve_device(device)
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
        except (ArgumentError, TypeError) as exc:
            raise CheckpointError(f"{source}: field 'train': {exc}") from exc
        encoder = config["encoder"]
        encoder_spec = config_field(encoder, "config", (dict, str), source, where="encoder")
        encoder_id = config_field(encoder, "id", str, source, where="encoder")
        self = cls(encoder=encoder_spec, model=_model_options(config["model"]), train=train, granularity=found,
                   feature_cache=feature_cache, device=device)
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
        self.known_targets_ = _known_targets_from_json(config.get("known_targets", {}), self.model_.config, source)
        self._move(where)
        return self


def graph_batches(keys: Sequence[str], per_epoch: int,
                  steps: int) -> Callable[[np.random.Generator], Iterator[np.ndarray]]:
    """Batches that keep every row of a graph together, so late fusion encodes each graph once per step.

    Each epoch shuffles the graphs, takes them in that order until ``per_epoch`` rows are covered,
    and cuts that sequence into exactly ``steps`` batches of about equal row counts (a batch may be
    empty when one graph has more rows than a batch holds)."""
    rows_of: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        rows_of.setdefault(key, []).append(i)
    groups = [np.asarray(v, dtype=np.int64) for v in rows_of.values()]
    sizes = np.array([len(g) for g in groups])

    def batches(rng: np.random.Generator) -> Iterator[np.ndarray]:
        order = rng.permutation(len(groups))
        covered = np.cumsum(sizes[order])
        order = order[: int(np.searchsorted(covered, per_epoch)) + 1]
        covered = covered[: len(order)]
        cuts = np.searchsorted(covered, np.arange(1, steps) * covered[-1] / steps, side="right")
        for part in np.split(order, cuts):
            yield np.concatenate([groups[g] for g in part]) if len(part) else np.zeros(0, dtype=np.int64)

    return batches


_LABELS = np.array(BOUND_LABELS)
_WARNED_SPECS: set[tuple[str, str]] = set()


def _warn_estimated_specs(descs: Sequence[TargetDescriptor]) -> None:
    """Say, once per target and spec, when the roofline head uses an estimate instead of a stated spec."""
    for desc in {id(d): d for d in descs}.values():
        specs = target_roofline(desc)
        missing = [(f"peak_tops for {desc.precision or 'fp32'}", specs.peak_flops),
                   ("memory.bandwidth_gbps", specs.bandwidth)]
        for what, value in missing:
            if value is None and (desc.name, what) not in _WARNED_SPECS:
                _WARNED_SPECS.add((desc.name, what))
                log.warning("target %s: the descriptor has no %s; the roofline head uses a learned estimate "
                            "(add the vendor figure to the descriptor for a physical bound)", desc.name, what)


# set by _build from the encoder and the feature schemas, not chosen by whoever constructs a predictor
_DERIVED_MODEL_FIELDS = ("text_dim", "num_node_features", "num_target_features", "known_targets")


def _model_options(model: Any) -> dict[str, Any]:
    """A checkpoint's model config as constructor options, so ``get_params`` rebuilds the same architecture."""
    return {k: v for k, v in model.items() if k not in _DERIVED_MODEL_FIELDS} if isinstance(model, dict) else {}


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


def _known_targets_from_json(entry: Any, config: LeDGFormerConfig, source: Path) -> dict[str, int]:
    """The training targets' rows of the offset table, checked against the table's size."""
    if not isinstance(entry, dict) or not all(isinstance(v, int) and not isinstance(v, bool) for v in entry.values()):
        raise CheckpointError(f"{source}: field 'known_targets' must map descriptor hashes to table rows")
    if sorted(entry.values()) != list(range(config.known_targets)):
        raise CheckpointError(f"{source}: field 'known_targets' lists {len(entry)} rows, the model's table has "
                              f"{config.known_targets}")
    return dict(entry)


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
    reference = None
    if "reference" in entry:
        data = config_field(entry, "reference", dict, source, where=where)
        try:
            reference = TargetDescriptor.from_dict(data, origin=f"{source} {where}.reference")
        except LedgError as exc:
            raise CheckpointError(f"{source}: field '{where}.reference' is not a valid target descriptor: {exc}") from exc
    return Adaptation(descriptor, float(scale_a), float(scale_b), offset, int(samples), method, reference)
