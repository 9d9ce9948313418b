"""Benchmarks on the project's own measured dataset.

Three protocols on a measurement store or its export (``tvm-ledg db export``):

* ``in-domain``: per family, 90 % of its networks train and 10 % test (all
  families and targets together, one model), reported per family;
* ``leave-one-family-out``: train on every other family, test on the held-out
  family (NNLQP's out-of-domain protocol);
* ``leave-one-target-out``: train on every other target, predict the held-out
  target from its descriptor alone (zero-shot).

In-domain and leave-one-family-out split networks by graph hash, so test
networks are measured on no training target; leave-one-target-out holds out a
target only (its networks are measured on the other targets, which is what a
zero-shot user has). A tenth of the training networks (by graph hash) is the
validation set for early stopping, so in-domain is 81/9/10.

Baselines in the same splits: FLOPs and params (per-target log-linear fits;
zero-shot through the descriptor ridge), GraphSAGE (the same epochs over the
same rows as LeDG-Former, its own width, learning rate and batch size of 128, so about four times
LeDG-Former's optimizer steps) and, for the held-out target only, the proxy device (the
most similar training target's measurement of the same network, rescaled; on
a seen target it is the FLOPs fit). The additive linear model
(``cost_model.linear_baselines``: per-target ridge on kernel-kind histograms)
predicts only targets it has rows for, so leave-one-target-out shows "-" for it.
``--baselines-only`` skips LeDG-Former. Next to every MAPE the table gives the
noise floor of the fold's targets (averaged as MAPE is): the repeat-run MAPE
floor measured by ``noise_floor.py`` (``--noise-floor``), and the store's
median within-measurement CV for reference. Fold means skip folds whose metric
is undefined (NaN), and say how many counted. Usage::

    python -m benchmarks.measured_dataset --data datasets/local-zen3.jsonl.gz --out docs/results/measured_dataset
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (NETWORK_ENCODER, NETWORK_MODEL, NETWORK_TRAIN, REPO, load_fold, md_table, open_store,
                               parser, start, write_results)

from cost_model.baselines import make_baseline
from cost_model.evaluation import evaluate_rows
from cost_model.featurize import feature_schema_hash
from cost_model.io import write_text_atomic
from cost_model.predictor import LatencyPredictor, TrainConfig
from cost_model.target_inputs import TARGET_INPUTS
from cost_model.training import descriptor_for

PROTOCOLS = ("in-domain", "leave-one-family-out", "leave-one-target-out")
BASELINES = ("flops", "params", "graphsage", "proxy", "additive")
TARGET_ONLY_BASELINES = ("proxy",)  # meaningful only where the test networks are measured on other targets
SEEN_TARGET_BASELINES = ("additive",)  # per-target models: not applicable to a held-out target
TRAINED_BASELINES = ("graphsage",)
VAL_FRACTION = 0.1
SPLIT_VERSION = "graph-hash buckets; in-domain 10 % per family"
ENCODER = NETWORK_ENCODER
MODEL = NETWORK_MODEL


def main() -> None:
    ap = parser(__doc__, Path("docs/results/measured_dataset"), threads=2, seed=0)
    ap.add_argument("--data", type=Path, required=True, help="measurement store (.sqlite) or export (.jsonl.gz)")
    ap.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=PROTOCOLS)
    ap.add_argument("--baselines", nargs="*", choices=BASELINES, default=list(BASELINES))
    ap.add_argument("--baselines-only", action="store_true", help="skip LeDG-Former: baseline rows only")
    ap.add_argument("--noise-floor", type=Path, default=REPO / "docs" / "results" / "noise_floor.json",
                    help="noise_floor.py's results (repeat-run MAPE floor per target)")
    ap.add_argument("--epochs", type=int, default=24, help="epochs of LeDG-Former and of the trained baselines")
    ap.add_argument("--rows-per-epoch", type=int, default=None, help="training rows per epoch (default: all)")
    ap.add_argument("--drop-targets", nargs="*", default=[],
                    help="leave these targets out of the data entirely: with leave-one-target-out over the rest, a "
                         "validation protocol that never sees a test target")
    ap.add_argument("--hold-targets", nargs="*", default=None,
                    help="leave-one-target-out: only the folds holding out these targets (default: every target)")
    ap.add_argument("--hold-families", nargs="*", default=None,
                    help="leave-one-family-out: only the folds holding out these families (default: every family)")
    ap.add_argument("--target-offsets", type=_offsets_weight, default=0.01,
                    help="L2 weight of the learned per-training-target offsets, or 'none' to learn none")
    ap.add_argument("--target-inputs", choices=TARGET_INPUTS, default=MODEL.get("target_inputs", "all"),
                    help="what LeDG-Former's target conditioning reads (cost_model.target_inputs)")
    args, started = start(ap)
    # recorded only when it differs from the benchmarks' model, so folds run before the option existed stay valid
    model_options = (MODEL if args.target_inputs == MODEL.get("target_inputs", "all")
                     else {**MODEL, "target_inputs": args.target_inputs})
    graphs, descs, rows, families, noise = _load(args.data, args.noise_floor)
    for option, names in (("--drop-targets", args.drop_targets), ("--hold-targets", args.hold_targets or [])):
        unknown = set(names) - set(descs)
        if unknown:
            ap.error(f"{option}: unknown targets {sorted(unknown)}; known: {sorted(descs)}")
    unknown = set(args.hold_families or []) - set(families.values())
    if unknown:
        ap.error(f"--hold-families: unknown families {sorted(unknown)}; known: {sorted(set(families.values()))}")
    if set(args.hold_targets or []) & set(args.drop_targets):
        ap.error("--hold-targets: a dropped target has no rows to hold out")
    rows = [r for r in rows if r[1] not in set(args.drop_targets)]
    train_config = TrainConfig(epochs=args.epochs, seed=args.seed, patience=args.epochs,
                               rows_per_epoch=args.rows_per_epoch, target_offsets=args.target_offsets,
                               **NETWORK_TRAIN)
    # the trained baselines get the same budget (epochs over the same rows, best epoch kept), their own
    # width, learning rate and batch size
    budget = {"seed": args.seed, "epochs": args.epochs, "rows_per_epoch": args.rows_per_epoch, "patience": args.epochs}
    baseline_kw = {b: budget if b in TRAINED_BASELINES else {} for b in args.baselines}
    settings = {"data_rows": _fingerprint(rows), "families": _digest(sorted(families.items())),
                "targets": _digest(sorted((n, d.content_hash()) for n, d in descs.items())),
                "features": feature_schema_hash(), "split": SPLIT_VERSION, "val_fraction": VAL_FRACTION,
                "model": model_options, "encoder": ENCODER, "train": dataclasses.asdict(train_config),
                "baselines": baseline_kw, **({"baselines_only": True} if args.baselines_only else {})}
    part_dir = args.out.with_name(args.out.name + ".parts")
    part_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    for protocol in args.protocols:
        for name, train, test in _splits(protocol, rows, families, args.seed):
            if protocol == "leave-one-target-out" and args.hold_targets is not None and name not in args.hold_targets:
                continue
            if protocol == "leave-one-family-out" and args.hold_families is not None and name not in args.hold_families:
                continue
            path = part_dir / f"{protocol}-{name}.json"
            done = load_fold(path, settings, args.out)
            if done is not None:
                results.setdefault(protocol, {})[name] = done
                continue
            val = [r for r in train if _bucket(r[0], args.seed + 1) < VAL_FRACTION]  # whole networks, like test
            train = [r for r in train if _bucket(r[0], args.seed + 1) >= VAL_FRACTION]
            t0 = time.time()
            entry = {"settings": settings, "train_rows": len(train), "test_rows": len(test), "methods": {}}
            if not args.baselines_only:
                model = LatencyPredictor(encoder=ENCODER, model=model_options, train=train_config)
                model.fit(graphs, descs, train, val, progress=True)
                entry["methods"]["ledg"] = _evaluate(model, graphs, descs, test, protocol, families)
                entry["val_log_rmse"] = [h.get("val_log_rmse") for h in model.history_]
            entry["train_seconds"] = round(time.time() - t0, 1)
            for b in args.baselines:
                if b in TARGET_ONLY_BASELINES and protocol != "leave-one-target-out":
                    continue
                if b in SEEN_TARGET_BASELINES and protocol == "leave-one-target-out":
                    continue
                base = make_baseline("flops", feature=b) if b in ("flops", "params") else make_baseline(b, **baseline_kw[b])
                # Trained baselines stop early on the validation rows like LeDG; closed-form fits use them too.
                base.fit(graphs, descs, train if b in TRAINED_BASELINES else train + val, val)
                entry["methods"][b] = _evaluate(base, graphs, descs, test, protocol, families)
            write_text_atomic(path, json.dumps(entry))
            results.setdefault(protocol, {})[name] = entry
            print(f"{protocol} {name}: " + ", ".join(f"{m} MAPE {r['mean']['mape']:.1f}%"
                                                     for m, r in entry["methods"].items()))
    _report(args, results, noise, started)


def _offsets_weight(text: str) -> float | None:
    """``--target-offsets``: a non-negative L2 weight, or ``none``."""
    if text == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a number nor 'none'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    return value


def _load(path: Path, noise_floor: Path):
    """Rows, graphs, descriptors, family per graph (graphs without one: "?") and the noise floor per target
    (``{"within_cv": ..., "repeat_mape_floor": ...}``) from a store or export and ``noise_floor``."""
    with tempfile.TemporaryDirectory() as tmp, open_store(path, Path(tmp)) as store:
        graphs, stored, rows = store.training_rows()
        known = store.families()
        noise = {t: {"within_cv": s["median_cv"], "repeat_mape_floor": None}
                 for t, s in store.stats()["per_target"].items()}
    descs = {alias: descriptor_for(alias, stored) for alias in stored}  # registered specs added since measuring
    families = {k: known.get(k, "?") for k in graphs}
    if noise_floor.is_file():
        for t, v in json.loads(noise_floor.read_text()).get("per_target", {}).items():
            if t in noise:
                noise[t]["repeat_mape_floor"] = v.get("repeat_mape_floor")
    else:
        print(f"{noise_floor}: missing; the tables show no repeat-run floor (run benchmarks/noise_floor.py)")
    return graphs, descs, rows, families, noise


def _evaluate(predictor, graphs, descs, test, protocol: str, families: dict[str, str]) -> dict[str, Any]:
    """``evaluate_rows`` on the test rows; in-domain also per family (``by_family``)."""
    report = evaluate_rows(predictor, graphs, descs, test)
    if protocol == "in-domain":
        by_family: dict[str, list] = defaultdict(list)
        for r in test:
            by_family[families[r[0]]].append(r)
        report["by_family"] = {f: evaluate_rows(predictor, graphs, descs, rs) for f, rs in sorted(by_family.items())}
    return report


def _fingerprint(rows) -> str:
    """Digest of the rows, so that parts computed on a smaller or other dataset are not reused."""
    text = "\n".join(f"{k}\t{t}\t{ms!r}" for k, t, ms in sorted(rows))
    return f"{len(rows)} rows, sha256 {hashlib.sha256(text.encode()).hexdigest()[:16]}"


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value).encode()).hexdigest()[:16]


def _bucket(key: str, seed: int) -> float:
    return int(hashlib.sha256(f"{seed}\0{key}".encode()).hexdigest()[:8], 16) / 16**8


def _splits(protocol: str, rows, families: dict[str, str], seed: int):
    """(name, train rows, test rows) per fold of ``protocol`` (see the module docstring)."""
    if protocol == "in-domain":
        members: dict[str, list[str]] = defaultdict(list)
        for key in sorted({r[0] for r in rows}, key=lambda k: _bucket(k, seed)):
            members[families[key]].append(key)
        held = {k for keys in members.values() for k in keys[:math.ceil(0.1 * len(keys))]}
        yield "all", [r for r in rows if r[0] not in held], [r for r in rows if r[0] in held]
    elif protocol == "leave-one-family-out":
        for fam in sorted({families[r[0]] for r in rows}):
            yield fam, [r for r in rows if families[r[0]] != fam], [r for r in rows if families[r[0]] == fam]
    else:
        for target in sorted({r[1] for r in rows}):
            yield target, [r for r in rows if r[1] != target], [r for r in rows if r[1] == target]


def _report(args, results, noise, started) -> None:
    trained = ("baselines only, no LeDG-Former" if args.baselines_only
               else f"LeDG-Former trained per fold ({args.epochs} epochs x "
                    f"{'all' if args.rows_per_epoch is None else args.rows_per_epoch} rows)")
    lines = [(f"Data: `{args.data}`. {trained}; see the script's docstring for the splits. "
              "MAPE and Spearman are means over the fold's "
              "targets. Noise floor, averaged over the same targets, in %: the repeat-run MAPE floor (what a "
              "predictor of the true latency would still score against one measurement; `noise_floor.md`) and "
              "the median within-run CV of single samples (for reference; not an error of the median)."), ""]
    summary: dict[str, Any] = {}
    for protocol, folds in results.items():
        lines += [f"## {protocol}", ""]
        methods = list(next(iter(folds.values()))["methods"])
        absent = [b for b in args.baselines if b in SEEN_TARGET_BASELINES and b not in methods]  # not applicable
        table, floors = [], []
        for name, entry in folds.items():
            first = entry["methods"][methods[0]]
            parts = first.get("by_family") or {name: first}
            for part in parts:
                reports = [entry["methods"][m].get("by_family", {}).get(part, entry["methods"][m]) for m in methods]
                per_target = reports[0]["per_target"]
                floor = _mean_floor(noise, per_target, "repeat_mape_floor")
                floors.append(floor)
                n = sum(int(m.get("n", 0)) for m in per_target.values()) or entry["test_rows"]
                table.append([part, n, *[r["mean"]["mape"] for r in reports], *["-"] * len(absent),
                              *[r["mean"]["spearman"] for r in reports], *["-"] * len(absent),
                              floor, _mean_floor(noise, per_target, "within_cv")])
        means = {m: {k: _nanmean([e["methods"][m]["mean"][k] for e in folds.values()]) for k in ("mape", "spearman")}
                 for m in methods}
        summary[protocol] = {m: {"mape": v["mape"][0], "spearman": v["spearman"][0], "folds": len(folds),
                                 "folds_with_spearman": v["spearman"][1]} for m, v in means.items()}
        label = f"**mean over folds** ({len(folds)})" if len(folds) > 1 else "**all test networks**"
        rows = "" if len(folds) > 1 else next(iter(folds.values()))["test_rows"]
        floor, counted, _ = _nanmean(floors)
        table.append([label, rows, *[_with_count(means[m]["mape"]) for m in methods], *["-"] * len(absent),
                      *[_with_count(means[m]["spearman"]) for m in methods], *["-"] * len(absent),
                      floor if counted else "-", ""])
        shown = methods + absent
        lines += [md_table(["fold", "test rows", *[f"{m} MAPE %" for m in shown],
                            *[f"{m} Spearman" for m in shown], "noise floor: repeat MAPE %",
                            "within-run CV %"], table), ""]
        if absent:
            lines += [f"`-`: {', '.join(absent)} not applicable (a per-target model has no rows of a held-out "
                      "target).", ""]
    write_results(args.out, "Measured dataset: in-domain, leave-one-family-out, leave-one-target-out",
                  "\n".join(lines), {"summary": summary, "results": results, "noise_floor": noise,
                                     "settings": {k: str(v) for k, v in vars(args).items()}}, started)
    print("\n".join(lines))


def _mean_floor(noise: dict[str, dict[str, float | None]], targets: dict[str, Any], key: str) -> float | str:
    """Mean over ``targets`` of one noise figure, in %; "-" where a target lacks it."""
    values = [noise.get(t, {}).get(key) for t in targets]
    return "-" if not values or any(v is None for v in values) else 100 * float(np.mean(values))


def _nanmean(values: list[float]) -> tuple[float, int, int]:
    """Mean over the finite values, how many counted, out of how many (a fold can lack a Spearman)."""
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return (float(np.mean(finite)) if finite else float("nan"), len(finite), len(values))


def _with_count(mean: tuple[float, int, int]) -> Any:
    value, counted, total = mean
    return value if counted == total else f"{value:.3g} ({counted}/{total} folds)"


if __name__ == "__main__":
    main()
