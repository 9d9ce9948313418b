"""Ablations and trained baselines under the zero-shot hardware-transfer protocol.

Same folds, splits and budget as ``hardware_transfer.py`` (import of its
``Protocol``); every variant is trained per fold from scratch with the same
seed and evaluated zero-shot on the held-out devices' test architectures.

Variants of LeDG-Former (all else equal):

* ``ledg``: the default (built-in trainable token encoder, dynamic gates, BGIFFN,
  numeric target features, FiLM, global token);
* ``nnformer``: NN-Former's static relation masks (one head per relation, so
  ``heads=8``) instead of dynamic gates, BGIFFN kept;
* ``no-bgiffn``: a plain position-wise FFN instead of the bidirectional GIN FFN;
* ``no-target-features``: the target enters only as text (no numeric features);
* ``minilm``: frozen all-MiniLM-L6-v2 text embeddings instead of trainable tokens.

Trained baselines: ``graphsage`` (NNLP-style GNN + global features) and ``mlp``
(one-hot cell MLP), both conditioned on the numeric target features. Usage::

    python -m benchmarks.ablations --graph-store .cache/graphs --folds 3 --out docs/results/ablations

Per-fold results are kept in ``<out>.folds/`` (one file per method and fold); a
fold file made with other settings (``method_settings``) is refused, not reused.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import NETWORK_MODEL, load_fold, md_table, parser, start, write_results
from benchmarks.hardware_transfer import TRAIN, add_protocol_arguments, fold_file, load_protocol

from cost_model.baselines import make_baseline
from cost_model.io import write_text_atomic
from cost_model.metrics import aggregate, latency_metrics
from cost_model.predictor import LatencyPredictor, TrainConfig

BASE_MODEL = NETWORK_MODEL
VARIANTS: dict[str, tuple[Any, dict[str, Any]]] = {
    "ledg": ({"kind": "builtin", "dim": 32}, {}),
    "nnformer": ({"kind": "builtin", "dim": 32}, {"gate": "static", "heads": 8}),
    "no-bgiffn": ({"kind": "builtin", "dim": 32}, {"bgiffn": False}),
    "no-target-features": ({"kind": "builtin", "dim": 32}, {"use_target_features": False}),
    "minilm": ("minilm", {}),
}
TRAINED_BASELINES = ("graphsage", "mlp")
METRICS = ("spearman", "kendall", "mape", "acc10", "log_rmse")


def method_settings(args: argparse.Namespace, method: str) -> dict[str, Any]:
    """What a method's fold results depend on besides the devices held out (paths and threads aside)."""
    data = {k: getattr(args, k) for k in ("max_train_archs", "max_test_archs", "seed")}
    if method not in VARIANTS:  # a trained baseline: its own width and rate, the variants' budget
        return {**data, "epochs": args.epochs, "rows_per_epoch": args.rows_per_epoch}
    encoder, overrides = VARIANTS[method]
    return {**data, "epochs": args.epochs, "rows_per_epoch": args.rows_per_epoch, "encoder": encoder,
            "model": {**BASE_MODEL, **overrides}, "train": TRAIN}


def main() -> None:
    ap = parser(__doc__, Path("docs/results/ablations"), threads=2, seed=0, data_root=True)
    add_protocol_arguments(ap)
    ap.add_argument("--epochs", type=int, default=24, help="epochs of every variant and trained baseline")
    ap.add_argument("--rows-per-epoch", type=int, default=None, help="training rows per epoch (default: all)")
    ap.add_argument("--methods", nargs="+", default=[*VARIANTS, *TRAINED_BASELINES],
                    choices=[*VARIANTS, *TRAINED_BASELINES])
    args, started = start(ap)
    proto = load_protocol(args)
    part_dir = args.out.with_name(args.out.name + ".folds")
    part_dir.mkdir(parents=True, exist_ok=True)
    caches: dict[str, dict[str, Any]] = {}
    results: dict[str, dict[str, Any]] = {m: {} for m in args.methods}
    seconds: dict[str, float] = {m: 0.0 for m in args.methods}
    for fi, held in enumerate(proto.folds):
        train_devices, train, val = proto.train_val(held, args.max_train_archs)
        tests = {a: proto.rows_of(a, "test", args.max_test_archs) for a in held}
        tests = {a: rows for a, rows in tests.items() if len(rows) >= 20}
        for method in args.methods:
            path = part_dir / f"{method}-{fold_file(held)}"
            settings = method_settings(args, method)
            done = load_fold(path, settings, args.out)
            if done is not None:
                results[method].update(done["devices"])
                seconds[method] += done["train_seconds"]
                print(f"{method} fold {fi}: loaded {path}")
                continue
            t0 = time.time()
            if method in VARIANTS:
                encoder, overrides = VARIANTS[method]
                model = LatencyPredictor(encoder=encoder, model={**BASE_MODEL, **overrides},
                                         train=TrainConfig(epochs=args.epochs, seed=args.seed, patience=args.epochs,
                                                           rows_per_epoch=args.rows_per_epoch, **TRAIN),
                                         feature_cache=caches.setdefault(json.dumps(encoder), {}))
                model.fit(proto.graphs, proto.descs, train, val, progress=True)
            else:
                model = make_baseline(method, epochs=args.epochs, rows_per_epoch=args.rows_per_epoch,
                                      patience=args.epochs, seed=args.seed).fit(proto.graphs, proto.descs, train, val)
            train_s = time.time() - t0
            devices = {}
            for alias, rows in tests.items():
                pred = model.predict(proto.graphs, proto.descs, [(r[0], r[1]) for r in rows])
                devices[alias] = {**latency_metrics(np.array([r[2] for r in rows]), pred), "n": len(rows)}
            write_text_atomic(path, json.dumps({"held": held, "devices": devices, "train_seconds": train_s,
                                                "settings": settings}))
            results[method].update(devices)
            seconds[method] += train_s
            mean = aggregate([{k: d[k] for k in METRICS} for d in devices.values()])
            print(f"{method} fold {fi}: mean zero-shot Spearman {mean['spearman']:.3f} ({train_s:.0f} s)")
    _report(args, proto, results, seconds, started)


def _report(args, proto, results, seconds, started) -> None:
    devices = sorted(set.intersection(*(set(r) for r in results.values())))
    rows, summary = [], {}
    for method, per_device in results.items():
        mean = aggregate([{k: per_device[d][k] for k in METRICS} for d in devices])
        summary[method] = {**mean, "devices": len(devices), "train_seconds": round(seconds[method], 1)}
        rows.append([method, len(devices), mean["spearman"], mean["kendall"], mean["mape"], mean["acc10"],
                     mean["log_rmse"], round(seconds[method])])
    per_dev = [[d, *[f"{results[m][d]['spearman']:.3f}" for m in results]] for d in devices]
    body = "\n".join([
        f"Zero-shot on held-out hardware ({args.grouping} grouping, {len(proto.folds)} folds, same splits and "
        f"seeds as `hardware_transfer.py`), {args.epochs} epochs x {args.rows_per_epoch} rows per fold, at most "
        f"{args.max_train_archs} training architectures per device. Every method is trained per fold from scratch.",
        "",
        "## Mean over held-out devices",
        "",
        md_table(["method", "devices", "Spearman", "Kendall", "MAPE %", "Acc10", "log-RMSE", "train s (all folds)"],
                 rows),
        "",
        "## Per device (zero-shot Spearman)",
        "",
        md_table(["device", *results], per_dev),
    ])
    write_results(args.out, "Ablations and trained baselines (zero-shot hardware transfer)", body,
                  {"summary": summary, "devices": results,
                   "settings": {k: str(v) for k, v in vars(args).items()}}, started)
    print(body.split("## Per device")[0])


if __name__ == "__main__":
    main()
