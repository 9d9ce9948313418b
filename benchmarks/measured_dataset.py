"""Benchmarks on the project's own measured dataset (issue 4, section 5).

Three protocols on a measurement store or its export (``tvm-ledg db export``):

* ``in-domain``: per family, 90 % of its networks train and 10 % test (all
  families and targets together, one model), reported per family;
* ``leave-one-family-out``: train on every other family, test on the held-out
  family (NNLQP's out-of-domain protocol);
* ``leave-one-target-out``: train on every other target, predict the held-out
  target from its descriptor alone (zero-shot).

Baselines in the same splits: FLOPs and params (per-target log-linear fits;
zero-shot through the descriptor ridge), GraphSAGE and, for the held-out
target only, the proxy device (the most similar training target's measurement
of the same network, rescaled; on a seen target it is the FLOPs fit). Next to
every MAPE the table gives the noise floor: per target the larger of the
median within-measurement CV in the store and, when
``docs/results/noise_floor.json`` exists, the repeat-run spread measured by
``noise_floor.py``; averaged over the targets of a fold, as MAPE is. Usage::

    python benchmarks/measured_dataset.py --data datasets/local-zen3.jsonl.gz --out docs/results/measured_dataset
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from common import REPO, load_fold, md_table, write_results

from cost_model.baselines import make_baseline
from cost_model.evaluation import evaluate_rows
from cost_model.graph import write_text_atomic
from cost_model.measurement_store import MeasurementStore
from cost_model.predictor import LatencyPredictor, TrainConfig

PROTOCOLS = ("in-domain", "leave-one-family-out", "leave-one-target-out")
TARGET_ONLY_BASELINES = ("proxy",)  # meaningful only where the test networks are measured on other targets
TRAINED_BASELINES = ("graphsage", "mlp")
SPLIT_VERSION = "graph-hash buckets; in-domain 10 % per family"
ENCODER: dict[str, Any] = {"kind": "builtin", "dim": 32}
MODEL: dict[str, Any] = {"dim": 32, "layers": 2, "heads": 4, "dropout": 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="measurement store (.sqlite) or export (.jsonl.gz)")
    ap.add_argument("--out", type=Path, default=Path("docs/results/measured_dataset"))
    ap.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=PROTOCOLS)
    ap.add_argument("--baselines", nargs="*", default=["flops", "params", "graphsage", "proxy"])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--rows-per-epoch", type=int, default=6000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    graphs, descs, rows, families, noise = _load(args.data)
    settings = {"data_rows": _fingerprint(rows), "split": SPLIT_VERSION, "model": MODEL, "encoder": ENCODER,
                "epochs": args.epochs, "rows_per_epoch": args.rows_per_epoch, "seed": args.seed,
                "baselines": args.baselines}
    part_dir = args.out.with_name(args.out.name + ".parts")
    part_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    for protocol in args.protocols:
        for name, train, test in _splits(protocol, rows, families, args.seed):
            path = part_dir / f"{protocol}-{name}.json"
            done = load_fold(path, settings, args.out)
            if done is not None:
                results.setdefault(protocol, {})[name] = done
                continue
            val = [r for r in train if _bucket(r[0], args.seed + 1) < 0.1]  # whole networks, like the test split
            train = [r for r in train if _bucket(r[0], args.seed + 1) >= 0.1]
            model = LatencyPredictor(encoder=ENCODER, model=MODEL,
                                     train=TrainConfig(epochs=args.epochs, batch_size=64, lr=3e-3, seed=args.seed,
                                                       patience=3, rows_per_epoch=args.rows_per_epoch))
            t0 = time.time()
            model.fit(graphs, descs, train, val, progress=True)
            entry = {"settings": settings, "train_rows": len(train), "test_rows": len(test),
                     "train_seconds": round(time.time() - t0, 1),
                     "methods": {"ledg": _evaluate(model, graphs, descs, test, protocol, families)}}
            for b in args.baselines:
                if b in TARGET_ONLY_BASELINES and protocol != "leave-one-target-out":
                    continue
                base = make_baseline("flops", feature=b) if b in ("flops", "params") else make_baseline(b)
                # Trained baselines stop early on the validation rows like LeDG; closed-form fits use them too.
                base.fit(graphs, descs, train if b in TRAINED_BASELINES else train + val, val)
                entry["methods"][b] = _evaluate(base, graphs, descs, test, protocol, families)
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


def _evaluate(predictor, graphs, descs, test, protocol: str, families: dict[str, str]) -> dict[str, Any]:
    """``evaluate_rows`` on the test rows; in-domain also per family (``by_family``)."""
    report = evaluate_rows(predictor, graphs, descs, test)
    if protocol == "in-domain":
        by_family: dict[str, list] = defaultdict(list)
        for r in test:
            by_family[families.get(r[0], "?")].append(r)
        report["by_family"] = {f: evaluate_rows(predictor, graphs, descs, rs) for f, rs in sorted(by_family.items())}
    return report


def _fingerprint(rows) -> str:
    """Digest of the rows, so that parts computed on a smaller or other dataset are not reused."""
    text = "\n".join(f"{k}\t{t}\t{ms!r}" for k, t, ms in sorted(rows))
    return f"{len(rows)} rows, sha256 {hashlib.sha256(text.encode()).hexdigest()[:16]}"


def _bucket(key: str, seed: int) -> float:
    return int(hashlib.sha256(f"{seed}\0{key}".encode()).hexdigest()[:8], 16) / 16**8


def _splits(protocol: str, rows, families: dict[str, str], seed: int):
    """(name, train rows, test rows) per fold of ``protocol``; networks are split by graph hash."""
    if protocol == "in-domain":
        members: dict[str, list[str]] = defaultdict(list)
        for key in sorted({r[0] for r in rows}, key=lambda k: _bucket(k, seed)):
            members[families.get(key, "?")].append(key)
        held = {k for keys in members.values() for k in keys[:math.ceil(0.1 * len(keys))]}
        yield "all", [r for r in rows if r[0] not in held], [r for r in rows if r[0] in held]
    elif protocol == "leave-one-family-out":
        for fam in sorted({families.get(r[0], "?") for r in rows}):
            yield fam, [r for r in rows if families.get(r[0]) != fam], [r for r in rows if families.get(r[0]) == fam]
    else:
        for target in sorted({r[1] for r in rows}):
            yield target, [r for r in rows if r[1] != target], [r for r in rows if r[1] == target]


def _report(args, results, noise, started) -> None:
    lines = [(f"Data: `{args.data}`. LeDG-Former trained per fold ({args.epochs} epochs x {args.rows_per_epoch} "
             "rows); networks are split by graph hash. MAPE and Spearman are means over the fold's targets. "
             "Noise floor: per target the larger of its median within-measurement CV and its repeat-run spread "
             "(`noise_floor.md`), averaged over the fold's targets, in %."), ""]
    summary: dict[str, Any] = {}
    for protocol, folds in results.items():
        lines += [f"## {protocol}", ""]
        methods = list(next(iter(folds.values()))["methods"])
        table = []
        for name, entry in folds.items():
            parts = entry["methods"]["ledg"].get("by_family") or {name: entry["methods"]["ledg"]}
            for part in parts:
                reports = [entry["methods"][m].get("by_family", {}).get(part, entry["methods"][m]) for m in methods]
                per_target = reports[0]["per_target"]
                floor = sum(noise.get(t) or 0.0 for t in per_target) / len(per_target) * 100
                n = sum(int(m.get("n", 0)) for m in per_target.values()) or entry["test_rows"]
                table.append([part, n, *[r["mean"]["mape"] for r in reports], *[r["mean"]["spearman"] for r in reports],
                              floor])
        means = {m: {k: sum(e["methods"][m]["mean"][k] for e in folds.values()) / len(folds)
                     for k in ("mape", "spearman")} for m in methods}
        summary[protocol] = means
        if len(folds) > 1:
            table.append(["**mean over folds**", "", *[means[m]["mape"] for m in methods],
                          *[means[m]["spearman"] for m in methods], ""])
        else:
            table.append(["**all test networks**", next(iter(folds.values()))["test_rows"],
                          *[means[m]["mape"] for m in methods], *[means[m]["spearman"] for m in methods], ""])
        lines += [md_table(["fold", "test rows", *[f"{m} MAPE %" for m in methods],
                            *[f"{m} Spearman" for m in methods], "noise floor %"], table), ""]
    write_results(args.out, "Measured dataset: in-domain, leave-one-family-out, leave-one-target-out",
                  "\n".join(lines), {"summary": summary, "results": results, "noise_floor": noise,
                                     "settings": {k: str(v) for k, v in vars(args).items()}}, started)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
