"""``LatencyPredictor``: text encoder + LeDG-Former behind fit / predict / save / load.

Rows are ``(graph_key, target_name, latency_ms)``; graphs and targets are
passed as mappings so each graph is featurized once and each distinct text is
embedded once, however many targets it is measured on.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cost_model.batch import GraphTensors, collate
from cost_model.checkpoint import check_compatible, load_checkpoint, save_checkpoint
from cost_model.encoders import TextEncoder, make_encoder
from cost_model.featurize import FEATURE_NAMES, feature_schema_hash, graph_tensors
from cost_model.graph import OpGraph
from cost_model.ledgformer import LeDGFormer, LeDGFormerConfig
from cost_model.losses import latency_loss
from targets.errors import CheckpointError, DataError
from targets.schema import FEATURE_NAMES as TARGET_FEATURE_NAMES
from targets.schema import SCHEMA_VERSION, TargetDescriptor

__all__ = ["TrainConfig", "LatencyPredictor"]

log = logging.getLogger(__name__)

Row = tuple[str, str, float]


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    rank_weight: float = 0.5
    huber_delta: float = 1.0
    patience: int = 5
    seed: int = 0


def _schemas() -> dict[str, Any]:
    return {
        "node_features": feature_schema_hash(),
        "target_schema_version": SCHEMA_VERSION,
        "target_features": list(TARGET_FEATURE_NAMES),
    }


class LatencyPredictor:
    """Predict latency (ms) of (graph, target) pairs; unfitted until ``fit`` or ``from_pretrained``."""

    def __init__(self, encoder: str | dict = "builtin", model: dict | None = None, train: TrainConfig | None = None):
        self.encoder_spec = encoder
        self.model_options = dict(model or {})
        self.train_config = train or TrainConfig()
        self.encoder_: TextEncoder | None = None
        self.model_: LeDGFormer | None = None
        self.history_: list[dict[str, float]] = []
        self._tensors: dict[str, GraphTensors] = {}

    # ------------------------------------------------------------ helpers
    def _graph(self, key: str, graphs: Mapping[str, OpGraph]) -> GraphTensors:
        if key not in self._tensors:
            if key not in graphs:
                raise DataError(f"no graph for {key!r}")
            self._tensors[key] = graph_tensors(graphs[key])
        return self._tensors[key]

    def _forward(self, keys: Sequence[str], descs: Sequence[TargetDescriptor], graphs: Mapping[str, OpGraph]):
        assert self.model_ is not None and self.encoder_ is not None
        batch = collate([self._graph(k, graphs) for k in keys], self.model_.config.relations)
        node_emb = self.encoder_(batch.texts)
        target_emb = self.encoder_([d.to_text() for d in descs])
        feats = [d.to_features() for d in descs]
        values = torch.tensor([f[0] for f in feats], dtype=torch.float32)
        mask = torch.tensor([f[1] for f in feats], dtype=torch.float32)
        return self.model_(batch, node_emb, target_emb, values, mask)

    def _check_fitted(self) -> None:
        if self.model_ is None:
            raise CheckpointError("this LatencyPredictor is not fitted; call fit() or from_pretrained() first")

    # ---------------------------------------------------------------- fit
    def fit(self, graphs: Mapping[str, OpGraph], targets: Mapping[str, TargetDescriptor], rows: Sequence[Row],
            val_rows: Sequence[Row] = ()) -> "LatencyPredictor":
        """Train on ``rows``; early-stop on ``val_rows`` (never on test data), keeping the best weights."""
        cfg = self.train_config
        if not rows:
            raise DataError("fit() needs at least one training row")
        if any(not (r[2] > 0 and math.isfinite(r[2])) for r in rows):
            raise DataError("training latencies must be finite and > 0 ms")
        torch.manual_seed(cfg.seed)
        self.encoder_ = make_encoder(self.encoder_spec)
        self.model_ = LeDGFormer(LeDGFormerConfig(
            text_dim=self.encoder_.dim, num_node_features=len(FEATURE_NAMES),
            num_target_features=len(TARGET_FEATURE_NAMES), **self.model_options))
        keys = sorted({r[0] for r in rows})
        x_num = torch.cat([self._graph(k, graphs).x_num for k in keys])
        feats = torch.tensor([targets[t].to_features()[0] for t in sorted({r[1] for r in rows})])
        masks = torch.tensor([targets[t].to_features()[1] for t in sorted({r[1] for r in rows})])
        self.model_.fit_normalizers(x_num.float(), feats.float(), masks.float())
        log_y = np.log([r[2] for r in rows])
        self.model_.init_output_bias(float(log_y.mean()), float(np.mean([self._graph(k, graphs).num_nodes for k in keys])))
        params = [*self.model_.parameters(), *(self.encoder_.parameters() if self.encoder_.trainable else [])]
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps = cfg.epochs * math.ceil(len(rows) / cfg.batch_size)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(steps, 1))
        target_ids = {t: i for i, t in enumerate(sorted(targets))}
        rng = np.random.default_rng(cfg.seed)
        best, best_state, bad_epochs = math.inf, None, 0
        for epoch in range(cfg.epochs):
            self.model_.train()
            self.encoder_.train(self.encoder_.trainable)
            order = rng.permutation(len(rows))
            total = 0.0
            for start in range(0, len(rows), cfg.batch_size):
                chunk = [rows[i] for i in order[start:start + cfg.batch_size]]
                out = self._forward([r[0] for r in chunk], [targets[r[1]] for r in chunk], graphs)
                y = torch.tensor([r[2] for r in chunk], dtype=torch.float32)
                group = torch.tensor([target_ids[r[1]] for r in chunk])
                loss = latency_loss(out, y, group, huber_delta=cfg.huber_delta, rank_weight=cfg.rank_weight).total
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(chunk)
            entry = {"epoch": epoch, "train_loss": total / len(rows)}
            if val_rows:
                pred = self.predict(graphs, targets, [(r[0], r[1]) for r in val_rows])
                entry["val_log_rmse"] = float(np.sqrt(np.mean((np.log(pred) - np.log([r[2] for r in val_rows])) ** 2)))
                if entry["val_log_rmse"] < best:
                    best, bad_epochs = entry["val_log_rmse"], 0
                    best_state = {k: v.detach().clone() for k, v in self._state().items()}
                else:
                    bad_epochs += 1
            self.history_.append(entry)
            log.info("epoch %s", entry)
            if val_rows and bad_epochs >= cfg.patience:
                break
        if best_state is not None:
            self._load_state(best_state)
        return self

    # ------------------------------------------------------------ predict
    @torch.inference_mode()
    def predict(self, graphs: Mapping[str, OpGraph], targets: Mapping[str, TargetDescriptor],
                pairs: Sequence[tuple[str, str]], batch_size: int = 256) -> np.ndarray:
        """Latency in ms for each ``(graph_key, target_name)`` pair."""
        self._check_fitted()
        self.model_.eval()
        self.encoder_.eval()
        out = []
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start:start + batch_size]
            res = self._forward([p[0] for p in chunk], [targets[p[1]] for p in chunk], graphs)
            out.append(res.latency_ms.double().numpy())
        return np.concatenate(out) if out else np.zeros(0)

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
        save_checkpoint(directory, self._state(), {
            "kind": "ledgformer-latency",
            "model": self.model_.config.to_dict(),
            "encoder": {"config": self.encoder_.config(), "id": self.encoder_.encoder_id},
            "schemas": _schemas(),
            "train": dataclasses.asdict(self.train_config),
            "history": self.history_,
            "data": data_summary or {},
        })

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str]) -> "LatencyPredictor":
        state, config = load_checkpoint(directory)
        check_compatible(config, _schemas(), source=str(directory))
        self = cls(encoder=config["encoder"]["config"], train=TrainConfig(**config.get("train", {})))
        self.encoder_ = make_encoder(config["encoder"]["config"])
        if self.encoder_.encoder_id != config["encoder"]["id"]:
            raise CheckpointError(f"{directory}: trained with encoder {config['encoder']['id']!r}, "
                                  f"but {self.encoder_.encoder_id!r} was found")
        self.model_ = LeDGFormer(LeDGFormerConfig.from_dict(config["model"]))
        self._load_state(state)
        self.history_ = list(config.get("history", []))
        return self
