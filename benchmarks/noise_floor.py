"""Repeat-run noise floor of each target: the error no latency predictor can beat.

Takes ``--networks`` networks that a store holds on every local target
(``--targets``, default: every target of the store measurable here: runtime
``onnxruntime``, ``pytorch`` or untuned ``tvm``, measured locally with the
default ``MeasureProtocol``) and measures each again ``--repeats`` times per
target the way the collector does: a fresh session every time (new ORT
session, new TVM compile, so setup effects count), one output run, then the
timing protocol, under the busy-machine check (``QuietPolicy``).

Per target, over the networks, from the repeat medians plus the stored one:

* ``repeat_mape_floor``: mean over networks of the mean ``|median / mean of the
  medians - 1|``: the MAPE a predictor of the true mean latency would still
  get against one measurement. This is the floor next to every MAPE in
  ``measured_dataset.md``;
* ``repeat_rel_spread``: median over networks of the CV of the medians;
* ``within_cv``: the median within-measurement CV in the store (spread of
  single samples in one run, not of the median: shown for reference).

Each finished (network, target) pair is kept under ``<out>.parts/`` so an
interrupted run resumes; a pair that fails is recorded with its reason and
skipped; a busy machine (``MachineBusy``) stops the run (exit code 3), as in
the collector. The networks chosen by the first run are kept there too. ``--compare OLD.sqlite`` adds, per target, how far another
store's medians of the same networks are from this store's (median and 90th
percentile of ``|old/new - 1|``, share off by more than 20 %): e.g.
measurements taken before the busy-machine check existed. Usage::

    python -m benchmarks.noise_floor --db .cache/measurements.sqlite --networks 30 --repeats 3 \\
        --compare .cache/measurements-unguarded.sqlite
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import REPO, load_fold, md_table, parser, start, write_results

from cost_model.io import write_text_atomic
from cost_model.measurement_store import MeasurementStore
from targets.errors import DataError
from targets.schema import TargetDescriptor
from tvm_ledg.measure import MachineBusy, MeasureProtocol, QuietPolicy, measure_session, open_session
from tvm_ledg.measure.backends import BACKENDS, Network


def main() -> None:
    ap = parser(__doc__, REPO / "docs" / "results" / "noise_floor", seed=0)
    ap.add_argument("--db", type=Path, required=True)
    ap.add_argument("--targets", nargs="+", help="target names (default: every locally measurable one in the store)")
    ap.add_argument("--networks", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--compare", type=Path, help="another store of the same networks and targets to compare with")
    ap.add_argument("--max-wait", type=float, default=600.0,
                    help="seconds one measurement may wait for a quiet machine before the run stops (0: no limit)")
    args, started = start(ap)
    protocol = MeasureProtocol()
    quiet = QuietPolicy(max_wait_s=args.max_wait or None)
    with MeasurementStore(args.db, readonly=True) as store:
        stored = [m for m in store.measurements() if m.protocol == protocol.id]
        descs = _targets(store.targets(), stored, args.targets, args.db)
        within = {t: s["median_cv"] for t, s in store.stats()["per_target"].items()}
    by_spec: dict[str, dict[str, float]] = {}
    for m in stored:
        if m.target_hash in descs:
            by_spec.setdefault(m.spec, {})[m.target_hash] = m.median_ms
    complete = sorted(s for s, per in by_spec.items() if len(per) == len(descs))
    if len(complete) < args.networks:
        raise DataError(f"{args.db}: only {len(complete)} networks are measured on all of "
                        f"{sorted(d.name for d in descs.values())} with protocol {protocol.id}; "
                        f"need --networks {args.networks}")
    settings = {"db": str(args.db), "protocol": protocol.id, "repeats": args.repeats}
    parts = args.out.with_name(args.out.name + ".parts")
    chosen = parts / "networks.json"  # the first run's choice stands, even if the store grew since
    picked = load_fold(chosen, {**settings, "networks": args.networks, "seed": args.seed}, args.out)
    if picked is None:
        order = np.random.default_rng(args.seed).permutation(len(complete))[:args.networks]
        picked = {"networks": [complete[i] for i in sorted(order)],
                  "settings": {**settings, "networks": args.networks, "seed": args.seed}}
        write_text_atomic(chosen, json.dumps(picked))
    pick = picked["networks"]
    if set(pick) - set(complete):
        raise DataError(f"{chosen}: networks {sorted(set(pick) - set(complete))[:3]} ... are no longer complete in "
                        f"{args.db}; delete {parts} to choose again")
    pairs: dict[str, list[dict[str, Any]]] = {d.name: [] for d in descs.values()}
    for n, spec in enumerate(pick, 1):
        net: Network | None = None
        for h, desc in descs.items():
            path = parts / f"{hashlib.sha1(spec.encode()).hexdigest()[:12]}__{desc.name}.json"
            part = load_fold(path, settings, args.out)
            if part is None:
                try:
                    net = net or Network.load(spec)
                    part = {"spec": spec, "target": desc.name, "stored_ms": by_spec[spec][h],
                            "repeats_ms": [_measure_like_the_collector(net, desc, protocol, quiet)
                                           for _ in range(args.repeats)]}
                except MachineBusy as exc:
                    print(f"{spec} on {desc.name}: {exc}; the rest is left for the next run", file=sys.stderr)
                    sys.exit(3)
                except Exception as exc:  # this pair fails; the others still count
                    part = {"spec": spec, "target": desc.name, "error": f"{type(exc).__name__}: {exc}"[:500]}
                    print(f"{spec} on {desc.name}: failed ({part['error']})", file=sys.stderr)
                part["settings"] = settings
                write_text_atomic(path, json.dumps(part))
            pairs[desc.name].append(part)
        print(f"{n}/{len(pick)} {spec}")
    per_target = {t: _floor(ps, within.get(t)) for t, ps in pairs.items()}
    rows = [[t, v["networks"], v["failed"], 100 * v["repeat_mape_floor"], 100 * v["repeat_rel_spread"],
             100 * (v["within_cv"] or 0.0)] for t, v in sorted(per_target.items())]
    body = "\n".join([
        f"{len(pick)} networks of `{args.db}`, each measured {args.repeats} more times per target in fresh "
        "sessions, as the collector measures. MAPE floor: mean over networks of the mean |median / mean of the "
        "medians - 1| (stored median included): what a predictor of the true latency would still score. "
        "Spread: median over networks of the CV of those medians. Within-run CV: the store's median CV of "
        "single samples in one run (not an error of the median).", "",
        md_table(["target", "networks", "failed", "MAPE floor %", "repeat spread %", "within-run CV %"], rows)])
    results: dict[str, Any] = {"per_target": per_target, "networks": pick, "settings": settings}
    if args.compare:
        names = {h: d.name for h, d in descs.items()}
        results["compare"] = _compare(args.compare, by_spec, names)
        rows = [[t, v["pairs"], 100 * v["median_rel_diff"], 100 * v["p90_rel_diff"], 100 * v["share_over_20pct"]]
                for t, v in sorted(results["compare"].items())]
        body += "\n\n" + "\n".join([
            f"## `{args.compare}` against this store", "",
            "Per target, over the networks measured in both with the same target descriptor: "
            "|other median / this median - 1|.", "",
            md_table(["target", "pairs", "median diff %", "p90 diff %", "share > 20 % off (%)"], rows)])
    write_results(args.out, "Noise floor per target", body, results, started)
    print(body)


def _targets(known: dict[str, TargetDescriptor], stored: list[Any], names: list[str] | None,
             db: Path) -> dict[str, TargetDescriptor]:
    """The targets to re-measure, by hash: named ones, or every one measured locally and measurable here."""
    measured = {m.target_hash for m in stored if not (m.environment or {}).get("remote")}
    local = {h: d for h, d in known.items() if h in measured and d.runtime in BACKENDS
             and not (d.tvm is not None and d.tvm.tuned)}
    if names is None:
        return local
    by_name = {d.name: h for h, d in local.items()}
    missing = sorted(set(names) - set(by_name))
    if missing:
        raise DataError(f"{db}: targets {missing} have no local measurements here (measured: {sorted(by_name)})")
    return {by_name[n]: local[by_name[n]] for n in names}


def _measure_like_the_collector(net: Network, desc: TargetDescriptor, protocol: MeasureProtocol,
                                quiet: QuietPolicy) -> float:
    """Median ms of one fresh session, opened, run once for outputs and timed as ``tvm_ledg.collect`` does."""
    with open_session(net, desc) as session:
        session.outputs()
        return measure_session(session, protocol, quiet).stats.median_ms


def _floor(parts: list[dict[str, Any]], within_cv: float | None) -> dict[str, Any]:
    ok = [p for p in parts if "error" not in p]
    devs, spreads = [], []
    for p in ok:
        medians = np.asarray([p["stored_ms"], *p["repeats_ms"]])
        devs.append(float(np.mean(np.abs(medians / medians.mean() - 1.0))))
        spreads.append(float(np.std(medians, ddof=1) / medians.mean()))
    return {"repeat_mape_floor": float(np.mean(devs)) if devs else float("nan"),
            "repeat_rel_spread": float(np.median(spreads)) if spreads else float("nan"),
            "within_cv": within_cv, "networks": len(ok), "failed": len(parts) - len(ok)}


def _compare(other: Path, by_spec: dict[str, dict[str, float]], names: dict[str, str]) -> dict[str, dict[str, float]]:
    """Per target: how far ``other``'s medians are from this store's for the same (network, target)."""
    diffs: dict[str, list[float]] = {}
    with MeasurementStore(other, readonly=True) as store:
        for m in store.measurements():
            mine = by_spec.get(m.spec, {}).get(m.target_hash)
            if mine is not None and m.target_hash in names:
                diffs.setdefault(names[m.target_hash], []).append(abs(m.median_ms / mine - 1.0))
    missing = sorted(set(names.values()) - set(diffs))
    if missing:
        print(f"{other}: no measurements of targets {missing} with the same descriptor hash", file=sys.stderr)
    return {t: {"pairs": len(d), "median_rel_diff": float(np.median(d)), "p90_rel_diff": float(np.quantile(d, 0.9)),
                "share_over_20pct": float(np.mean(np.asarray(d) > 0.2))} for t, d in diffs.items()}


if __name__ == "__main__":
    main()
