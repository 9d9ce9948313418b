"""One validation run of the cost model: held-out validation devices plus in-domain validation architectures.

Choosing width, loss, schedule or dropout must not look at test data. This
trains one ``LatencyPredictor`` on every public device table except the
``--hold`` devices (``--archs`` training architectures per device, chosen as
``cost_model.training`` caps them), then scores validation-split architectures
only (``assign_arch_split(spec, 0, 0.2, 0.1) == "val"``): zero-shot on the held
devices, in-domain on the others. Each run writes ``<out>/<name>.md`` and
``.json`` with its settings, the validation learning curve and the per-device
metrics, so a sweep is a folder of runs. Usage::

    python -m benchmarks.validation_sweep --graph-store .cache/graphs --name rank0 --rank-weight 0 \\
        --hold help:1080ti_1 help:samsung_a50 oneproxy:eagle_jetson help-ofa:v100_32
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from benchmarks import common
from benchmarks.common import md_table, write_results
import targets
from cost_model.data import assign_arch_split, load_all
from cost_model.metrics import latency_metrics
from cost_model.predictor import LatencyPredictor
from cost_model.target_inputs import TARGET_INPUTS
from cost_model.training import load_latency_data, load_run_config


def main() -> None:
    parser = common.parser(__doc__, Path("docs/results/validation_sweep"))
    parser.add_argument("--graph-store", required=True, help="graph store holding the public architectures")
    parser.add_argument("--name", required=True, help="the run's file name under --out")
    parser.add_argument("--hold", nargs="*", default=[], help="validation devices (aliases) held out of training")
    parser.add_argument("--archs", type=int, default=500, help="training architectures per device")
    parser.add_argument("--val-archs", type=int, default=100, help="early-stopping architectures per device")
    parser.add_argument("--eval-archs", type=int, default=400, help="scored validation architectures per device")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--rank-weight", type=float, default=0.5)
    parser.add_argument("--target-offsets", type=float, default=0.01)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--factors", type=int, default=16)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--target-inputs", choices=TARGET_INPUTS, default="all",
                        help="what the target conditioning reads (cost_model.target_inputs)")
    parser.add_argument("--device", default="auto")
    args, started = common.start(parser)
    logging.basicConfig(level=logging.ERROR)
    tables = load_all()
    devices = [t.target_alias for t in tables if t.target_alias not in set(args.hold)]
    config = load_run_config({
        "data": {"graph_store": args.graph_store, "devices": devices, "max_train_archs": args.archs,
                 "max_val_archs": args.val_archs},
        "model": {"dim": args.dim, "layers": args.layers, "heads": 4, "factors": args.factors,
                  "target_inputs": args.target_inputs,
                  "dropout": args.dropout},
        "train": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": 0,
                  "rank_weight": args.rank_weight, "target_offsets": args.target_offsets,
                  "patience": args.epochs}})
    data = load_latency_data(config)
    predictor = LatencyPredictor(encoder=config.encoder, model=config.model, train=config.train, device=args.device)
    fit_start = time.time()
    predictor.fit(data.graphs, data.targets, data.rows["train"], data.rows["val"])
    fit_seconds = time.time() - fit_start
    results = {}
    for table in tables:
        rows = [(a, ms) for a, ms, ok in zip(table.archs, table.latency_ms, table.valid)
                if ok and a in data.graphs and assign_arch_split(a, 0, 0.2, 0.1) == "val"][: args.eval_archs]
        desc = targets.load(table.target_alias)
        pred = predictor.predict(data.graphs, {table.target_alias: desc}, [(a, table.target_alias) for a, _ in rows])
        truth = np.array([ms for _, ms in rows])
        results[table.target_alias] = {"held_out": table.target_alias in args.hold, **latency_metrics(truth, pred)}
    summary = []
    for label, held in (("held-out (zero-shot)", True), ("in-domain", False)):
        part = [r for r in results.values() if r["held_out"] == held]
        if part:
            summary.append([label, len(part), f"{np.mean([r['spearman'] for r in part]):.3f}",
                            f"{np.median([r['median_ape'] for r in part]):.1f}"])
    curve = " ".join(f"{h['val_log_rmse']:.3f}" for h in predictor.history_ if "val_log_rmse" in h)
    body = "\n".join([
        f"Held out: {', '.join(args.hold) or 'none'}; {args.archs} training architectures per device; "
        f"{fit_seconds:.0f} s of training. Validation architectures only.",
        "",
        md_table(["devices", "n", "mean Spearman", "median of per-device median APE %"], summary),
        "",
        f"Validation log-RMSE by epoch (training devices): {curve}",
        "",
        md_table(["device", "held out", "Spearman", "MAPE %", "median APE %"],
                 [[k, "yes" if r["held_out"] else "", f"{r['spearman']:.3f}", f"{r['mape']:.1f}",
                   f"{r['median_ape']:.1f}"] for k, r in results.items()]),
    ])
    write_results(args.out / args.name, f"Validation run {args.name}", body,
                  {"settings": vars(args) | {"out": str(args.out)}, "history": predictor.history_,
                   "fit_seconds": fit_seconds, "results": results}, started)


if __name__ == "__main__":
    main()
