"""The tuning-curve benchmark's pre-trained models and how well they rank schedules.

The suite is split into ``--folds`` workload folds; each fold is tuned with a model pre-trained on the tuning
records of the other folds on ``--pretrain-targets``, so neither the tuned workload nor (by default) the tuned
target was seen in pre-training. A second model, trained the same way on every workload's records, is the
control for ranking: only the target is new to it. Each model is kept under ``<out>.parts/pretrained/`` with
the pre-training it was made with (``identity``); a model made otherwise is an error, not reused.

``pretrained_checkpoints`` returns, beside the checkpoints, the pre-training summary the report shows and
stores (a JSON record: ``id``, ``targets``, ``epochs`` and per fold the data its model was trained on).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

import targets as target_registry
from cost_model.io import read_json
from cost_model.metrics import pairwise_accuracy, topk_score
from cost_model.predictor import LatencyPredictor, TrainConfig
from cost_model.tuning_records import ProgramRecord, training_rows
from targets.errors import DataError
from targets.schema import TargetDescriptor
from tvm_ledg.tuning import list_workloads
from tvm_ledg.tuning.workloads import Workload

__all__ = ["TOP_K", "fold_of", "pretrained_checkpoints", "pretrained_model", "ranking_quality",
           "seen_workload_model"]

TOP_K = (1, 5)

# Fold models: the size LeDGCostModel uses when it trains from scratch, so cold and pre-trained compare.
PRETRAIN_ENCODER: dict[str, Any] = {"kind": "builtin", "dim": 32}
PRETRAIN_MODEL: dict[str, Any] = {"dim": 32, "layers": 2, "heads": 4, "dropout": 0.0, "variance_head": True}


def fold_of(workload: str, folds: int) -> int:
    """Workload fold: position in the suite, round robin (stable as long as the suite's order is)."""
    return list_workloads().index(workload) % folds


def pretrained_checkpoints(args: argparse.Namespace, records: list[ProgramRecord], workloads: list[Workload],
                           root: Path) -> tuple[dict[str, Path], dict[str, Any]]:
    """Checkpoint per tuned workload, and a summary of how each was trained.

    With ``--checkpoint`` every workload gets it. Otherwise one model per fold of the suite, trained on
    the records of the other folds (kept in ``root``; skipped when present and made with the same
    settings). ``summary["id"]`` identifies the pre-training: runs made with another are not reused.
    """
    if args.checkpoint is not None:
        LatencyPredictor.from_pretrained(args.checkpoint)  # fail now, not after hours of tuning
        return ({w.name: args.checkpoint for w in workloads},
                {"checkpoint": str(args.checkpoint), "id": {"checkpoint": str(args.checkpoint.resolve())}})
    if not records:
        return {}, {}
    if args.folds < 2:
        raise DataError(f"--folds must be >= 2 (one fold held out, the others trained on), got {args.folds}")
    known = sorted({r.target for r in records})
    train_targets = args.pretrain_targets or [t for t in known if t != args.target]
    if not train_targets:
        raise DataError(f"{args.records} holds records of {known} only; pre-training on other targets needs records "
                        f"of another one (or give --pretrain-targets {args.target} to pre-train on the tuned target)")
    missing = sorted(set(train_targets) - set(known))
    if missing:
        raise DataError(f"--pretrain-targets {missing}: no records in {args.records} (it has {known})")
    descs = {name: target_registry.load(name) for name in known}
    needed = sorted({fold_of(w.name, args.folds) for w in workloads}
                    | {fold_of(r.workload, args.folds) for r in records})
    identity = {"records_sha256": hashlib.sha256(args.records.read_bytes()).hexdigest(), "folds": args.folds,
                "targets": train_targets, "epochs": args.pretrain_epochs,
                "rows_per_epoch": args.pretrain_rows_per_epoch}
    summary: dict[str, Any] = {"folds": {}, "targets": train_targets, "epochs": args.pretrain_epochs, "id": identity}
    paths: dict[int, Path] = {}
    for fold in needed:
        train = [r for r in records if fold_of(r.workload, args.folds) != fold and r.target in train_targets]
        held_out = sorted({w for w in list_workloads() if fold_of(w, args.folds) == fold})
        if not train:
            raise DataError(f"fold {fold} (held out: {', '.join(held_out)}): no records of the other workloads on "
                            f"{train_targets} in {args.records}; collect more workloads or lower --folds")
        path = root / f"fold{fold}"
        data = pretrained_model(train, train_targets, descs, path, identity, args,
                         {"train_workloads": sorted({r.workload for r in train}), "train_targets": train_targets,
                          "held_out_workloads": held_out})
        paths[fold] = path
        summary["folds"][str(fold)] = {"path": str(path), **data}
    return {w.name: paths[fold_of(w.name, args.folds)] for w in workloads}, summary


def pretrained_model(train: list[ProgramRecord], train_targets: list[str], descs: dict[str, TargetDescriptor],
                     path: Path, identity: dict[str, Any], args: argparse.Namespace,
                     data: dict[str, Any]) -> dict[str, Any]:
    """Train one pre-training model on ``train`` and keep it at ``path``, unless one made with the same
    ``identity`` is there already; returns what it was trained on (its checkpoint's data summary)."""
    if not (path / "config.json").is_file():
        graphs, rows = training_rows(train)
        t0 = time.time()
        predictor = LatencyPredictor(
            encoder=PRETRAIN_ENCODER, model=PRETRAIN_MODEL,
            train=TrainConfig(epochs=args.pretrain_epochs, batch_size=32, lr=2e-3, rank_weight=1.0, seed=0,
                              rows_per_epoch=min(len(rows), args.pretrain_rows_per_epoch)))
        resume = path.with_name(path.name + ".resume")
        predictor.fit(graphs, {t: descs[t] for t in train_targets}, rows, resume_dir=resume, progress=True)
        # save_pretrained writes the checkpoint atomically: a fold model is there complete or not at all, and
        # its presence marks the fold done
        predictor.save_pretrained(path, data_summary={"pretraining": identity, "train_rows": len(rows), **data,
                                                      "train_seconds": round(time.time() - t0, 1)})
        shutil.rmtree(resume, ignore_errors=True)
    saved = read_json(path / "config.json", DataError).get("data", {})
    if saved.get("pretraining") != identity:
        raise DataError(f"{path}: pre-trained with {saved.get('pretraining')}, now {identity}; "
                        f"delete it or choose another --out")
    return saved


def seen_workload_model(args: argparse.Namespace, records: list[ProgramRecord], pretrain: dict[str, Any],
                        root: Path) -> dict[str, Any]:
    """The cross-target control for ranking: one model pre-trained like the fold models, on the same targets, but on
    the records of *every* workload, so that only the target is new when it ranks the tuned target's records."""
    targets = pretrain["targets"]
    identity = {**{k: v for k, v in pretrain["id"].items() if k != "folds"}, "workloads": "all"}
    train = [r for r in records if r.target in targets]
    descs = {name: target_registry.load(name) for name in targets}
    path = root / "all-workloads"
    data = pretrained_model(train, targets, descs, path, identity, args,
                     {"train_workloads": sorted({r.workload for r in train}), "train_targets": targets,
                      "held_out_workloads": []})
    return {"path": str(path), **data}


def ranking_quality(records: list[ProgramRecord], desc: TargetDescriptor, pretrain: dict[str, Any],
                    seen: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Top-k and pairwise accuracy of each fold model on its held-out workloads' records on ``desc``, of the
    ``seen`` model (every workload seen on the pre-training targets; keys ``seen_*``) and of random orders."""
    by_workload: dict[str, list[ProgramRecord]] = {}
    for r in records:
        if r.target == desc.name:
            by_workload.setdefault(r.workload, []).append(r)
    if "checkpoint" in pretrain:
        models = {w: Path(pretrain["checkpoint"]) for w in by_workload}
    else:
        models = {w: Path(d["path"]) for d in pretrain["folds"].values() for w in d["held_out_workloads"]}
    loaded: dict[Path, LatencyPredictor] = {}
    rng = np.random.default_rng(0)
    rows = []
    for workload, path in sorted(models.items()):
        recs = by_workload.get(workload, [])
        if len(recs) < 2:
            continue
        graphs, train_rows = training_rows(recs)
        true = np.array([row[2] for row in train_rows])
        shuffled = [rng.permutation(len(true)) for _ in range(200)]
        row: dict[str, Any] = {"workload": workload, "records": len(recs), "checkpoint": str(path),
                               "random_pairwise": 0.5}
        for prefix, model in (("", path), ("seen_", Path(seen["path"]) if seen else None)):
            if model is None:
                continue
            if model not in loaded:
                loaded[model] = LatencyPredictor.from_pretrained(model)
            predictor = loaded[model]
            pred = predictor.predict(graphs, {desc.name: desc}, [(r[0], r[1]) for r in train_rows])
            row[f"{prefix}pairwise"] = pairwise_accuracy(true, pred)
            for k in TOP_K:
                row[f"{prefix}top{k}"] = topk_score(true, pred, k)
        for k in TOP_K:
            row[f"random_top{k}"] = float(np.mean([topk_score(true, order.astype(float), k) for order in shuffled]))
        rows.append(row)
    return rows
