"""Roofline head vs free head at equal training budget, on validation data only.

Two cheap protocols (architectures split by ``assign_arch_split``; test
architectures are never loaded into training or evaluation):

* ``in_domain``: one device (default ``help:1080ti_1``), at most ``--train-archs``
  training architectures, evaluated on the device's validation architectures.
* ``held_out``: every other NB201 device of the sources trains (its validation rows drive
  the learning curve); the ``--held-out`` devices are never trained on and are evaluated
  on their validation architectures.

Each (protocol, head) run is written to ``<out>.parts/`` as it finishes, so a stopped
run continues with the runs still missing. Both heads share the seed, data, width,
depth, epochs and rows per epoch.

    python -m benchmarks.roofline_head --graph-store /work/main/.cache/graphs
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, load_fold, md_table, parser, start, write_results

import torch

from cost_model.io import write_text_atomic
from cost_model.metrics import aggregate, latency_metrics
from cost_model.predictor import LatencyPredictor, TrainConfig
from cost_model.rows import Row
from cost_model.training import load_latency_data, load_run_config

HEADS = ("roofline", "free")


def _rows(protocol: str, args: argparse.Namespace) -> tuple[Any, list[Row], list[Row], list[Row]]:
    """``(data, train, val, evaluate)`` rows of one protocol, loaded once so both heads see the same rows
    even while the graph store grows."""
    data_cfg: dict[str, Any] = {"graph_store": str(args.graph_store), "sources": ["help-nb201", "oneproxy"],
                                "split": {"seed": 0, "test_fraction": 0.2, "val_fraction": 0.1}}
    if args.data_root:
        data_cfg["root"] = str(args.data_root)
    if protocol == "in_domain":
        data_cfg.update(devices=[args.device], max_train_archs=args.train_archs)
    config = load_run_config({"data": data_cfg})
    data = load_latency_data(config)
    train, val = data.rows["train"], data.rows["val"]
    if protocol == "held_out":
        held = set(args.held_out)
        train = [r for r in train if r[1] not in held]
        evaluate = [r for r in val if r[1] in held]
        val = _per_device_cap([r for r in val if r[1] not in held], args.curve_archs)
    else:
        val = evaluate = _per_device_cap(val, args.val_archs)
    return data, train, val, evaluate


def _per_device_cap(rows: list[Row], cap: int) -> list[Row]:
    """At most ``cap`` rows per device, the architectures whose names hash lowest (the same on every run)."""
    key = lambda r: hashlib.sha256(r[0].encode()).digest()  # noqa: E731
    kept: dict[str, list[Row]] = {}
    for row in sorted(rows, key=key):
        if len(kept.setdefault(row[1], [])) < cap:
            kept[row[1]].append(row)
    return [r for part in kept.values() for r in part]


def _run(protocol: str, head: str, rows: tuple[Any, list[Row], list[Row], list[Row]],
         args: argparse.Namespace) -> dict[str, Any]:
    data, train, val, evaluate = rows
    train_cfg = TrainConfig(epochs=args.epochs, batch_size=64, lr=3e-3, patience=args.epochs, seed=0,
                            rows_per_epoch=args.rows_per_epoch)
    predictor = LatencyPredictor(encoder={"kind": "builtin", "dim": 32},
                                 model={"dim": 32, "layers": 2, "heads": 4, "head": head}, train=train_cfg)
    started = time.time()
    predictor.fit(data.graphs, data.targets, train, val)
    fit_s = time.time() - started
    pred = predictor.predict(data.graphs, data.targets, [(r[0], r[1]) for r in evaluate])
    per_device = {}
    for device in sorted({r[1] for r in evaluate}):
        idx = [i for i, r in enumerate(evaluate) if r[1] == device]
        per_device[device] = latency_metrics([evaluate[i][2] for i in idx], pred[idx])
    return {"protocol": protocol, "head": head, "train_rows": len(train), "val_rows": len(val),
            "eval_rows": len(evaluate), "fit_seconds": round(fit_s, 1), "history": predictor.history_,
            "per_device": per_device, "mean": aggregate(list(per_device.values()))}


def _markdown(parts: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        "Roofline-bounded output head (kernel time = max(F/P, B/BW) / efficiency + overhead) against the free "
        "head (per-node log contribution + per-target offset), same data, seed, width 32, 2 layers, "
        f"{args.epochs} epochs, builtin text encoder. Validation architectures only; test architectures are "
        "never used. The best epoch is chosen on the training devices' validation rows (for `in_domain` these "
        "are also the evaluation rows, for both heads alike). `fit s` is wall time on a 2-core machine shared with "
        "other jobs, not a speed comparison.",
        "",
    ]
    rows = []
    for p in parts:
        for device, m in p["per_device"].items():
            rows.append([p["protocol"], p["head"], device, m["n"], m["spearman"], m["mape"], m["log_rmse"],
                         p["fit_seconds"]])
    lines += [md_table(["protocol", "head", "device", "n", "Spearman", "MAPE %", "log RMSE", "fit s"], rows), ""]
    lines += [f"Training time over all runs: {sum(p['fit_seconds'] for p in parts):.0f} s (runs are kept in "
              f"`{args.out.name}.parts/`; the header's wall time is the last invocation's).", ""]
    lines += ["Learning curves (validation log RMSE per epoch, training devices):", ""]
    curve_rows = [[p["protocol"], p["head"], " ".join(f"{e['val_log_rmse']:.3f}" for e in p["history"])]
                  for p in parts]
    lines += [md_table(["protocol", "head", "val log RMSE by epoch"], curve_rows)]
    return "\n".join(lines)


def main() -> None:
    p = parser(__doc__, REPO / "docs" / "results" / "roofline_head")
    p.add_argument("--graph-store", type=Path, default=REPO / ".cache" / "graphs")
    p.add_argument("--data-root", type=Path, default=None)
    p.add_argument("--device", default="help:1080ti_1")
    p.add_argument("--train-archs", type=int, default=1000)
    p.add_argument("--held-out", nargs="+", default=["help:2080ti_32", "oneproxy:eagle_jetson"])
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--rows-per-epoch", type=int, default=1000)
    p.add_argument("--val-archs", type=int, default=500, help="in_domain: validation architectures evaluated")
    p.add_argument("--curve-archs", type=int, default=30,
                   help="held_out: validation architectures per training device for the learning curve")
    p.add_argument("--protocols", nargs="+", default=["in_domain", "held_out"])
    args, started = start(p)
    torch.set_num_threads(1)
    parts_dir = args.out.with_suffix(".parts")
    parts_dir.mkdir(parents=True, exist_ok=True)
    settings = {k: str(v) for k, v in vars(args).items() if k not in ("out", "protocols", "graph_store", "data_root")}
    parts = []
    for protocol in args.protocols:
        rows = None
        for head in HEADS:
            path = parts_dir / f"{protocol}-{head}.json"
            done = load_fold(path, settings, args.out)
            if done is None:
                rows = rows or _rows(protocol, args)
                done = {**_run(protocol, head, rows, args), "settings": settings}
                write_text_atomic(path, json.dumps(done, indent=1, default=float))
            parts.append(done)
            print(protocol, head, {k: round(v, 4) for k, v in done["mean"].items() if k in ("spearman", "mape")},
                  flush=True)
    write_results(args.out, "Roofline head vs free head (validation)", _markdown(parts, args),
                  {"settings": settings, "parts": parts}, started)


if __name__ == "__main__":
    main()
