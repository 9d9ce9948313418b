"""Benchmarks on the project's own measured dataset (issue 4, section 5).

Three protocols on a measurement store or its export (``tvm-ledg db export``):

* ``in-domain``: per family, 90 % of its networks train (all families and
  targets together, one model) and 10 % test;
* ``leave-one-family-out``: train on every other family, test on the held-out
  family (NNLQP's out-of-domain protocol);
* ``leave-one-target-out``: train on every other target, predict the held-out
  target from its descriptor alone (zero-shot).

Baselines in the same splits: FLOPs and params (per-target log-linear fits;
zero-shot through the descriptor ridge) and GraphSAGE. Next to every MAPE the
table gives the target's noise floor: the median within-measurement CV in the
store and, when ``docs/results/noise_floor.json`` exists, the repeat-run
spread measured by ``noise_floor.py``. Usage::

    python benchmarks/measured_dataset.py --data datasets/local-zen3.jsonl.gz --out docs/results/measured_dataset
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from common import REPO, md_table, write_results

from cost_model.baselines import make_baseline
from cost_model.evaluation import evaluate_rows
from cost_model.graph import write_text_atomic
from cost_model.measurement_store import MeasurementStore
from cost_model.predictor import LatencyPredictor, TrainConfig

PROTOCOLS = ("in-domain", "leave-one-family-out", "leave-one-target-out")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="measurement store (.sqlite) or export (.jsonl.gz)")
    ap.add_argument("--out", type=Path, default=Path("docs/results/measured_dataset"))
    ap.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=PROTOCOLS)
    ap.add_argument("--baselines", nargs="*", default=["flops", "params", "graphsage"])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--rows-per-epoch", type=int, default=6000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    graphs, descs, rows, families, noise = _load(args.data)
    part_dir = args.out.with_name(args.out.name + ".parts")
    part_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    for protocol in args.protocols:
        for name, train, test in _splits(protocol, rows, families, args.seed):
            path = part_dir / f"{protocol}-{name}.json"
            if path.is_file():
                results.setdefault(protocol, {})[name] = json.loads(path.read_text())
                continue
            val = [r for r in train if _bucket(r[0], args.seed + 1) < 0.1]  # whole networks, like the test split
            train = [r for r in train if _bucket(r[0], args.seed + 1) >= 0.1]
            model = LatencyPredictor(encoder={"kind": "builtin", "dim": 32},
                                     model={"dim": 32, "layers": 2, "heads": 4, "dropout": 0.0},
                                     train=TrainConfig(epochs=args.epochs, batch_size=64, lr=3e-3, seed=args.seed,
                                                       patience=3, rows_per_epoch=args.rows_per_epoch))
            t0 = time.time()
            model.fit(graphs, descs, train, val, progress=True)
            entry = {"train_rows": len(train), "test_rows": len(test), "train_seconds": round(time.time() - t0, 1),
                     "methods": {"ledg": evaluate_rows(model, graphs, descs, test)}}
            for b in args.baselines:
                base = make_baseline("flops", feature=b) if b in ("flops", "params") else make_baseline(b)
                base.fit(graphs, descs, train, val)
                entry["methods"][b] = evaluate_rows(base, graphs, descs, test)
            write_text_atomic(path, json.dumps(entry))
            results.setdefault(protocol, {})[name] = entry
            print(f"{protocol} {name}: ledg MAPE {entry['methods']['ledg']['mean']['mape']:.1f}%")
    _report(args, results, noise, started)


def _load(path: Path):
    """Rows, graphs, descriptors, family per graph and the noise floor per target from a store or export."""
    with tempfile.TemporaryDirectory() as tmp:
        if path.name.endswith(".jsonl.gz"):
            store = MeasurementStore(Path(tmp) / "m.sqlite")
            store.import_jsonl(path)
        else:
            store = MeasurementStore(path, readonly=True)
        with store:
            graphs, descs, rows = store.training_rows()
            families = store.families()
            noise = {t: s["median_cv"] for t, s in store.stats()["per_target"].items()}
    repeat = REPO / "docs" / "results" / "noise_floor.json"
    if repeat.is_file():
        for t, v in json.loads(repeat.read_text()).get("per_target", {}).items():
            noise[t] = max(noise.get(t) or 0.0, v.get("repeat_rel_spread", 0.0))
    return graphs, descs, rows, families, noise


def _bucket(key: str, seed: int) -> float:
    return int(hashlib.sha256(f"{seed}\0{key}".encode()).hexdigest()[:8], 16) / 16**8


def _splits(protocol: str, rows, families: dict[str, str], seed: int):
    """(name, train rows, test rows) per fold of ``protocol``; networks are split by graph hash."""
    if protocol == "in-domain":
        test = [r for r in rows if _bucket(r[0], seed) < 0.1]
        yield "all", [r for r in rows if _bucket(r[0], seed) >= 0.1], test
    elif protocol == "leave-one-family-out":
        for fam in sorted({families.get(r[0], "?") for r in rows}):
            yield fam, [r for r in rows if families.get(r[0]) != fam], [r for r in rows if families.get(r[0]) == fam]
    else:
        for target in sorted({r[1] for r in rows}):
            yield target, [r for r in rows if r[1] != target], [r for r in rows if r[1] == target]


def _report(args, results, noise, started) -> None:
    lines = [f"Data: `{args.data}`. LeDG-Former trained per fold ({args.epochs} epochs x {args.rows_per_epoch} "
             "rows); networks are split by graph hash. Noise floor = the larger of the target's median "
             "within-measurement CV and its repeat-run spread (`noise_floor.md`), in %.", ""]
    summary: dict[str, Any] = {}
    for protocol, folds in results.items():
        lines += [f"## {protocol}", ""]
        methods = list(next(iter(folds.values()))["methods"])
        rows = []
        for name, entry in folds.items():
            per_target = entry["methods"]["ledg"]["per_target"]
            floor = max((noise.get(t) or 0.0) for t in per_target) * 100
            rows.append([name, entry["test_rows"], *[entry["methods"][m]["mean"]["mape"] for m in methods],
                         entry["methods"]["ledg"]["mean"]["spearman"], floor])
        means = {m: sum(e["methods"][m]["mean"]["mape"] for e in folds.values()) / len(folds) for m in methods}
        summary[protocol] = means
        rows.append(["**mean**", "", *[means[m] for m in methods], "", ""])
        lines += [md_table(["fold", "test rows", *[f"{m} MAPE %" for m in methods], "ledg Spearman",
                            "noise floor %"], rows), ""]
    write_results(args.out, "Measured dataset: in-domain, leave-one-family-out, leave-one-target-out",
                  "\n".join(lines), {"summary": summary, "results": results, "noise_floor": noise,
                                     "settings": {k: str(v) for k, v in vars(args).items()}}, started)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
