"""Zero-shot and few-shot prediction on hardware never trained on.

Protocol. Devices are grouped by hardware (the descriptor's ``model``: the
three HELP batch sizes of a GTX 1080 Ti, the HELP-NB201 and HELP-OFA tables of
one GPU, Jetson Nano fp32/fp16 and the two Edge TPU tables are one group each)
and the groups are dealt into ``--folds`` folds. For each fold a model is
trained on every other device and predicts the fold's devices from their
descriptors alone (zero-shot); then, per held-out device, k = 10 and 20 of its
measured training-split architectures are given (few-shot, HELP's protocol)
and the model is adapted with ``cost_model.adapt``. Every device is held out
exactly once, and never together with another setting of the same hardware,
which is stricter than leave-one-device-out (a GTX 1080 Ti at batch 32 would
otherwise teach the model the GTX 1080 Ti at batch 1). ``--grouping class``
holds out one device class per fold (all phones CPUs, all desktop GPUs, ...),
``--grouping device`` is plain leave-one-device-out (every device held out in
turn: 43 folds); ``--hold`` restricts a run to the folds holding the named devices.

Baselines: ``proxy``, ``flops``, ``params`` predict held-out devices zero-shot;
per-device models that need the device's own rows (``additive``, see
``cost_model.linear_baselines``) are not applicable zero-shot (the tables say
"-") and enter at k shots, fitted on the k samples with the training devices'
mean weights as the prior. ``--baselines-only`` skips LeDG-Former, so the
baseline rows of a protocol cost seconds per fold, e.g.::

    python -m benchmarks.hardware_transfer --graph-store .cache/graphs --grouping device --baselines-only \
        --baselines proxy flops additive --out docs/results/baselines.parts/leave_one_device_out

Architectures are split by spec string (``assign_arch_split``): metrics are on
test-split architectures only, which no model has seen on any device. The
proxy-device baseline may read the training devices' measurements of the test
architectures (a practitioner has the proxy's full table); it never reads the
held-out device.

Usage::

    python -m benchmarks.hardware_transfer --graph-store .cache/graphs --out docs/results/hardware_transfer

Per-fold results are kept in ``<out>.folds/`` so an interrupted run resumes; a
fold file made with other settings (``fold_settings``) is refused, not reused.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (NETWORK_ENCODER, NETWORK_MODEL, NETWORK_TRAIN, load_fold, md_table, parser, start,
                               write_results)

import targets
from cost_model.adapt import adapt
from cost_model.baselines import make_baseline
from cost_model.data import assign_arch_split, load_all
from cost_model.io import write_text_atomic
from cost_model.graph_store import GraphStore
from cost_model.loglinear import fit_loglinear
from cost_model.metrics import aggregate, latency_metrics
from cost_model.predictor import LatencyPredictor, TrainConfig

METRICS = ("spearman", "kendall", "mape", "median_ape", "acc10", "log_rmse")
SHOT_ONLY_BASELINES = ("additive",)  # per-device models: need the device's own samples
GROUPINGS = ("hardware", "class", "device")
HELD_OUT = {"hardware": "whole hardware groups held out", "class": "one device class held out per fold",
            "device": "one device held out per fold, other settings of its hardware stay in training"}
ENCODER = NETWORK_ENCODER
MODEL = NETWORK_MODEL
TRAIN = NETWORK_TRAIN  # with --epochs, --rows-per-epoch, --seed; patience = epochs (the best epoch is kept)
ADAPT: dict[str, Any] = {"steps": 30, "folds": 3, "reference": True}


class _Loaded(dict):
    """Graphs read from the store once, on first use; membership asks the store once per key."""

    def __init__(self, store: GraphStore) -> None:
        super().__init__()
        self.store = store
        self.known: dict[str, bool] = {}

    def __missing__(self, key: str):
        self[key] = graph = self.store[key]
        return graph

    def __contains__(self, key: object) -> bool:
        if dict.__contains__(self, key):
            return True
        if not isinstance(key, str):
            return False
        if key not in self.known:
            self.known[key] = key in self.store
        return self.known[key]


def fold_settings(args: argparse.Namespace) -> dict[str, Any]:
    """What a fold's results depend on besides the devices it holds out (paths and threads aside)."""
    keys = ("max_train_archs", "max_test_archs", "seed", "epochs", "rows_per_epoch", "shots", "baselines")
    only = {"baselines_only": True} if args.baselines_only else {}  # absent otherwise: older folds stay valid
    return {**{k: getattr(args, k) for k in keys}, "encoder": ENCODER, "model": MODEL, "train": TRAIN,
            "adapt": ADAPT, "subsets": "shared", "device_groups": "by descriptor", **only}


def fold_file(held: list[str]) -> str:
    """A fold's result file is named by the devices it holds out, so folds can be run in any subset."""
    return "fold-" + hashlib.sha1("+".join(sorted(held)).encode()).hexdigest()[:12] + ".json"


def assign_folds(groups: dict[str, list[str]], folds: int) -> list[list[str]]:
    """Deal hardware groups (largest first) into the currently smallest fold: balanced, deterministic."""
    out: list[list[str]] = [[] for _ in range(folds)]
    for _, devices in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        min(out, key=len).extend(devices)
    return [sorted(f) for f in out if f]


@dataclass
class Protocol:
    """Everything a fold needs: descriptors, measurements, graphs, the architecture split and the folds."""

    descs: dict[str, Any]
    measured: dict[str, dict[str, float]]
    have: set[str]
    split: dict[str, str]
    folds: list[list[str]]
    graphs: _Loaded
    rank: dict[str, int]  # a seeded order of the architectures, the same for every device

    def rows_of(self, alias: str, part: str, cap: int | None) -> list[tuple[str, str, float]]:
        """(arch, device, ms) of one device and split part: its first ``cap`` architectures in the shared
        seeded order, so devices measured on one space train on the same graphs (a graph is encoded once
        for all its devices)."""
        rows = sorted((self.rank[a], a, alias, ms) for a, ms in self.measured[alias].items()
                      if a in self.have and self.split[a] == part)
        if cap is not None:
            rows = rows[:cap]
        return sorted(r[1:] for r in rows)

    def train_val(self, held: list[str], max_train: int) -> tuple[list[str], list, list]:
        train_devices = [a for a in self.descs if a not in held]
        train = [r for a in train_devices for r in self.rows_of(a, "train", max_train)]
        val = [r for a in train_devices for r in self.rows_of(a, "val", 40)]
        return train_devices, train, val


def add_protocol_arguments(ap: argparse.ArgumentParser) -> None:
    """The options that pick the devices, folds and architectures (its caller's ``parser`` adds ``--threads``,
    ``--seed`` and ``--data-root``)."""
    ap.add_argument("--graph-store", type=Path, required=True)
    ap.add_argument("--grouping", choices=GROUPINGS, default="hardware",
                    help="what is held out together: one hardware (all its settings), a device class, or one device")
    ap.add_argument("--folds", type=int, default=8, help="number of folds (grouping 'hardware' only)")
    ap.add_argument("--hold", nargs="*", default=None,
                    help="evaluate only the folds that hold out these devices (default: every fold)")
    ap.add_argument("--max-train-archs", type=int, default=300, help="training architectures per device")
    ap.add_argument("--max-test-archs", type=int, default=1000, help="test architectures per device")


def load_protocol(args: argparse.Namespace) -> Protocol:
    store = GraphStore(args.graph_store)
    tables = load_all(root=args.data_root)
    descs = {t.target_alias: targets.load(t.target_alias) for t in tables}
    measured: dict[str, dict[str, float]] = {}
    for t in tables:
        measured[t.target_alias] = {a: float(ms) for a, ms, ok in zip(t.archs, t.latency_ms, t.valid) if ok}
    all_archs = sorted({a for m in measured.values() for a in m})
    have = {a for a in all_archs if a in store}
    split = {a: assign_arch_split(a, args.seed, 0.2, 0.1) for a in have}
    groups: dict[str, list[str]] = defaultdict(list)
    for alias, d in descs.items():
        # "device" is a setting: aliases of one descriptor (a device measured on two spaces) are held out
        # together, else the held-out setting would be in training under its other name
        key = {"hardware": d.model, "class": d.device_class, "device": d.content_hash()}[args.grouping]
        groups[key].append(alias)
    folds = assign_folds(groups, args.folds) if args.grouping == "hardware" else sorted(sorted(g) for g in groups.values())
    if args.hold:
        unknown = set(args.hold) - set(descs)
        if unknown:
            raise SystemExit(f"--hold: unknown devices {sorted(unknown)}; known: {sorted(descs)}")
        folds = [f for f in folds if set(f) & set(args.hold)]
    graphs = _Loaded(store)
    graphs.known = {a: a in have for a in all_archs}
    order = np.random.default_rng(args.seed).permutation(len(all_archs))
    rank = {all_archs[i]: r for r, i in enumerate(order)}
    return Protocol(descs, measured, have, split, folds, graphs, rank)


def main() -> None:
    ap = parser(__doc__, Path("docs/results/hardware_transfer"), threads=2, seed=0, data_root=True)
    add_protocol_arguments(ap)
    ap.add_argument("--epochs", type=int, default=24)
    ap.add_argument("--rows-per-epoch", type=int, default=None, help="training rows per epoch (default: all)")
    ap.add_argument("--shots", type=int, nargs="*", default=[10, 20])
    ap.add_argument("--baselines", nargs="*", default=["proxy", "flops", "params"])
    ap.add_argument("--baselines-only", action="store_true", help="skip LeDG-Former: baseline rows only")
    ap.add_argument("--report-only", action="store_true", help="write the tables from the folds finished so far")
    ap.add_argument("--models", type=Path, default=None,
                    help="keep each fold's trained model here and reuse it (evaluation can change without retraining)")
    args, started = start(ap)
    proto = load_protocol(args)
    descs, measured, graphs, folds, rows_of = proto.descs, proto.measured, proto.graphs, proto.folds, proto.rows_of
    cache: dict[str, Any] = {}
    histograms: dict[str, Any] = {}  # the additive baseline's per-graph features, shared by the folds
    fold_dir = args.out.with_name(args.out.name + ".folds")
    fold_dir.mkdir(parents=True, exist_ok=True)
    settings = fold_settings(args)

    per_device: dict[str, dict[str, Any]] = {}
    fold_info = []
    for fi, held in enumerate(folds):
        path = fold_dir / fold_file(held)
        done = load_fold(path, settings, args.out)
        if done is not None and done.get("held") == held:
            per_device.update(done["devices"])
            fold_info.append(done["info"])
            print(f"fold {fi}: loaded {path}")
            continue
        if args.report_only:
            continue
        train_devices, train, val = proto.train_val(held, args.max_train_archs)
        t0 = time.time()
        model = None
        if not args.baselines_only:
            model = _fold_model(args, held, graphs, descs, train, val, cache)
        train_s = time.time() - t0
        baselines = {}
        for name in args.baselines:
            t1 = time.time()
            if name == "proxy":  # reference tables of the training devices, all architectures
                reference = [(a, dev, ms) for dev in train_devices for a, ms in measured[dev].items() if a in proto.have]
                baselines[name] = make_baseline("proxy").fit(graphs, descs, reference)
            elif name in ("flops", "params"):
                baselines[name] = make_baseline("flops", feature=name).fit(graphs, descs, train)
            elif name == "additive":
                baselines[name] = make_baseline(name, histogram_cache=histograms).fit(graphs, descs, train, val)
            else:
                baselines[name] = make_baseline(name).fit(graphs, descs, train, val)
            print(f"fold {fi}: baseline {name} fitted in {time.time() - t1:.0f} s")
        devices: dict[str, Any] = {}
        for alias in held:
            test = rows_of(alias, "test", args.max_test_archs)
            if len(test) < 20:
                continue
            pairs = [(r[0], r[1]) for r in test]
            y = np.array([r[2] for r in test])
            res: dict[str, Any] = {"n_test": len(test), "class": descs[alias].device_class,
                                   "hardware": descs[alias].model, "zero_shot": {}, "few_shot": {}}
            if model is not None:
                res["zero_shot"]["ledg"] = latency_metrics(y, model.predict(graphs, descs, pairs))
            for name, base in baselines.items():
                if name not in SHOT_ONLY_BASELINES:
                    res["zero_shot"][name] = latency_metrics(y, base.predict(graphs, descs, pairs))
            pool = rows_of(alias, "train", None)
            for k in args.shots:
                if len(pool) < k:
                    continue
                pick = np.random.default_rng([args.seed, k, len(alias)]).choice(len(pool), k, replace=False)
                samples = [(pool[i][0], pool[i][2]) for i in sorted(pick)]
                shot: dict[str, Any] = {}
                if model is not None:
                    adaptation = adapt(model, descs[alias], samples, graphs, seed=args.seed, **ADAPT)
                    shot["ledg"] = {**latency_metrics(y, model.predict(graphs, descs, pairs)),
                                    "method": adaptation.method}
                    model.adaptations_.clear()
                shot.update(_few_shot_baselines(samples, test, measured, train_devices, graphs))
                for name in SHOT_ONLY_BASELINES:
                    if name in baselines:
                        baselines[name].adapt(alias, samples, graphs)
                        shot[name] = latency_metrics(y, baselines[name].predict(graphs, descs, pairs))
                res["few_shot"][str(k)] = shot
            devices[alias] = res
            z = res["zero_shot"]
            print(f"fold {fi} {alias:<28} zero-shot Spearman "
                  + " ".join(f"{n} {m['spearman']:.3f}" for n, m in z.items()))
        info = {"fold": fi, "held": held, "train_rows": len(train), "val_rows": len(val),
                "train_seconds": round(train_s, 1), "epochs_run": 0 if model is None else len(model.history_),
                "val_log_rmse": [] if model is None else [h.get("val_log_rmse") for h in model.history_]}
        write_text_atomic(path, json.dumps({"held": held, "devices": devices, "info": info,
                                            "settings": settings}))
        per_device.update(devices)
        fold_info.append(info)

    _report(args, per_device, fold_info, folds, len(proto.have), started)


def _fold_model(args: argparse.Namespace, held: list[str], graphs, descs, train, val, cache) -> LatencyPredictor:
    """The fold's trained LeDG-Former. With ``--models`` it is saved there by fold, and a saved one (made with
    the same settings) is loaded instead of trained, so evaluation can change without retraining."""
    path = None if args.models is None else args.models / fold_file(held).replace(".json", "")
    made_with = {"encoder": ENCODER, "model": MODEL, "rows": hashlib.sha1(
        json.dumps([[r[0], r[1], r[2]] for r in [*train, *val]]).encode()).hexdigest()}
    config = TrainConfig(epochs=args.epochs, seed=args.seed, patience=args.epochs,
                         rows_per_epoch=args.rows_per_epoch, **TRAIN)
    if path is not None and (path / "config.json").is_file():
        model = LatencyPredictor.from_pretrained(path, feature_cache=cache)
        if model.train != config or model.data_summary_.get("fold") != made_with:
            raise SystemExit(f"{path}: trained with other settings or rows; delete it or choose another --models")
        print(f"loaded {path}")
        return model
    model = LatencyPredictor(encoder=ENCODER, model=MODEL, train=config, feature_cache=cache)
    model.fit(graphs, descs, train, val, progress=True)
    if path is not None:
        model.data_summary_["fold"] = made_with
        model.save_pretrained(path)
    return model


def _curve(values: list[float | None]) -> str:
    """Five points of a learning curve (first, quarters, last), or '-' when the fold recorded none."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    points = sorted({0, len(values) // 4, len(values) // 2, 3 * len(values) // 4, len(values) - 1})
    return " → ".join(f"{values[i]:.3f}" for i in points)


def _few_shot_baselines(samples, test, measured, train_devices, graphs) -> dict[str, Any]:
    """FLOPs fitted on the k samples; the proxy device that ranks the k samples best, calibrated on them."""
    from scipy.stats import spearmanr

    y = np.array([r[2] for r in test])
    keys = [s[0] for s in samples]
    ys = np.array([s[1] for s in samples])
    flops_s = np.array([graphs[k].total_flops for k in keys], float)
    flops_t = np.array([graphs[r[0]].total_flops for r in test], float)
    a, b = fit_loglinear(np.log(flops_s), np.log(ys))
    out = {"flops": latency_metrics(y, np.exp(a + b * np.log(flops_t)))}
    best, best_dev = -2.0, None
    for dev in sorted(train_devices):
        m = measured[dev]
        if all(k in m for k in keys) and all(r[0] in m for r in test):
            rho = spearmanr([m[k] for k in keys], ys).statistic
            if np.isfinite(rho) and rho > best:
                best, best_dev = rho, dev
    if best_dev is not None:
        m = measured[best_dev]
        a, b = fit_loglinear(np.log([m[k] for k in keys]), np.log(ys))
        out["proxy"] = {**latency_metrics(y, np.exp(a + b * np.log([m[r[0]] for r in test]))), "proxy": best_dev}
    return out


def _mean(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Mean of each metric over devices, and ``median_median_ape``: the median over devices of their median APE
    (folds written before median APE was recorded lack both)."""
    if not rows:
        return {}
    keys = [k for k in METRICS if all(k in r for r in rows)]
    out = aggregate([{k: r[k] for k in keys} for r in rows])
    if "median_ape" in keys:
        out["median_median_ape"] = float(np.median([r["median_ape"] for r in rows]))
    return out


def _done(fold_info: list[dict[str, Any]], folds: list[list[str]]) -> str:
    """How many folds the tables hold: all of them, or which of the planned ones are missing."""
    missing = [", ".join(f) for f in folds if f not in [i["held"] for i in fold_info]]
    return f"{len(folds)} folds" if not missing else \
        f"{len(fold_info)} of {len(folds)} folds (not run yet: {'; '.join(missing)})"


def _report(args, per_device, fold_info, folds, n_graphs, started) -> None:
    devices = sorted(per_device)
    methods = sorted({m for d in per_device.values() for part in (d["zero_shot"], *d["few_shot"].values())
                      for m in part}, key=lambda m: (m != "ledg", m))
    lines = [
        "Zero-shot: a model trained on the other hardware predicts each device from its descriptor only. "
        f"Few-shot: plus k measured architectures of that device. {len(devices)} devices in {_done(fold_info, folds)} "
        f"({HELD_OUT[args.grouping]}), {n_graphs} architectures with graphs, "
        f"at most {args.max_train_archs} training architectures per device, metrics on test-split architectures "
        f"(at most {args.max_test_archs} per device).",
        "",
        "## Mean over devices",
        "",
    ]
    summary: dict[str, Any] = {}
    table = []
    for setting in ["zero_shot", *[f"k={k}" for k in args.shots]]:
        for m in methods:
            if setting == "zero_shot":
                rows = [per_device[d]["zero_shot"][m] for d in devices if m in per_device[d]["zero_shot"]]
            else:
                k = setting[2:]
                rows = [per_device[d]["few_shot"][k][m] for d in devices
                        if k in per_device[d]["few_shot"] and m in per_device[d]["few_shot"][k]]
            if not rows:  # a per-device model zero-shot: not applicable
                table.append([setting.replace("_", "-"), m, 0, *["-"] * 6])
                continue
            mean = _mean(rows)
            summary[f"{setting}/{m}"] = {**mean, "devices": len(rows)}
            table.append([setting.replace("_", "-"), m, len(rows), mean["spearman"], mean["kendall"], mean["mape"],
                          mean.get("median_ape", "-"), mean.get("median_median_ape", "-"), mean["acc10"]])
    lines.append(md_table(["setting", "method", "devices", "Spearman", "Kendall", "MAPE %", "mean median APE %",
                           "median of median APE %", "Acc10"], table))
    lines += ["", "`-`: not applicable (a per-device model has no rows of a device it has never measured)."]
    lines += ["", "## Zero-shot mean by device class", ""]
    by_class: dict[str, list[str]] = defaultdict(list)
    for d in devices:
        by_class[per_device[d]["class"]].append(d)
    zero_shot = [m for m in methods if any(m in per_device[d]["zero_shot"] for d in devices)]
    class_rows = []
    for cls, ds in sorted(by_class.items()):
        row = [cls, len(ds)]
        for m in zero_shot:
            rs = [per_device[d]["zero_shot"][m] for d in ds if m in per_device[d]["zero_shot"]]
            row.append(_mean(rs).get("spearman", float("nan")))
        class_rows.append(row)
    lines.append(md_table(["class", "devices", *[f"{m} Spearman" for m in zero_shot]], class_rows))
    lines += ["", "## Per device (Spearman; MAPE % in parentheses)", ""]
    dev_rows = []
    for d in devices:
        r = per_device[d]
        row = [d, r["class"], r["n_test"]]
        for m in methods:
            z = r["zero_shot"].get(m)
            row.append("-" if z is None else f"{z['spearman']:.3f} ({z['mape']:.0f})")
        for k in args.shots:
            for m in methods:
                f = r["few_shot"].get(str(k), {}).get(m)
                row.append("-" if f is None else f"{f['spearman']:.3f} ({f['mape']:.0f})")
        dev_rows.append(row)
    lines.append(md_table(["device", "class", "n", *[f"zero-shot {m}" for m in methods],
                           *[f"{m} k={k}" for k in args.shots for m in methods]], dev_rows))
    lines += ["", "## Folds", "", "Validation log-RMSE (training devices' validation architectures) after the first "
              "epoch, at a quarter, half and three quarters of training, and at the last epoch: the learning curve "
              "of each fold's model (the best epoch is kept).", "",
              md_table(["fold", "held out", "train rows", "epochs", "train s", "validation log-RMSE"],
                       [[f["fold"], ", ".join(f["held"]), f["train_rows"], f["epochs_run"], f["train_seconds"],
                         _curve(f.get("val_log_rmse", []))] for f in fold_info])]
    write_results(args.out, "Hardware transfer: zero-shot and few-shot", "\n".join(lines),
                  {"summary": summary, "devices": per_device, "folds": fold_info,
                   "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}},
                  started)
    print("\n".join(lines[:12 + len(table)]))


if __name__ == "__main__":
    main()
