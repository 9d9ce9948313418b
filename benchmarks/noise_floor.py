"""Repeat-run noise floor of each target: the spread no latency predictor can beat (issue 4).

Takes ``--networks`` networks already measured in a store, measures each again
``--repeats`` times per target (a fresh session every time: new ORT session,
new TVM compile, so setup effects count) with the store's protocol, and
reports per target the median over networks of the coefficient of variation
of those repeat medians (``repeat_rel_spread``), next to the median
within-measurement CV the store already holds. Like the collection, it
measures under the busy-machine check (``QuietPolicy``).

``--compare OLD.sqlite`` adds, per target, how far another store's medians of
the same networks are from this store's (median and 90th percentile of
``|old/new - 1|``, and the share off by more than 20 %): e.g. measurements
taken before the busy-machine check existed, against the same networks
measured again with it. Usage::

    python benchmarks/noise_floor.py --db .cache/measurements.sqlite --networks 30 --repeats 3 \
        --compare .cache/measurements-unguarded.sqlite
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from common import md_table, write_results

from cost_model.measurement_store import MeasurementStore
from tvm_ledg.measure import MachineBusy, MeasureProtocol, QuietPolicy, measure
from tvm_ledg.measure.backends import Network


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("docs/results/noise_floor"))
    ap.add_argument("--networks", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compare", type=Path, help="another store of the same networks and targets to compare with")
    args = ap.parse_args()
    started = time.time()
    with MeasurementStore(args.db, readonly=True) as store:
        descs = store.targets()
        stored = list(store.measurements())
        within = {t: s["median_cv"] for t, s in store.stats()["per_target"].items()}
    by_spec: dict[str, dict[str, float]] = {}
    for m in stored:
        by_spec.setdefault(m.spec, {})[m.target_hash] = m.median_ms
    complete = sorted(s for s, per in by_spec.items() if len(per) == len(descs))
    pick = [complete[i] for i in sorted(np.random.default_rng(args.seed).permutation(len(complete))[:args.networks])]
    protocol = MeasureProtocol()
    spreads: dict[str, list[float]] = {d.name: [] for d in descs.values()}
    for n, spec in enumerate(pick, 1):
        net = Network.from_spec(spec)
        for h, desc in descs.items():
            try:
                medians = [by_spec[spec][h]] + [measure(net, desc, protocol, quiet=QuietPolicy()).stats.median_ms
                                                for _ in range(args.repeats)]
            except MachineBusy as exc:  # skipped and said so; the other networks still count
                print(f"{spec} on {desc.name}: skipped ({exc})")
                continue
            spreads[desc.name].append(float(np.std(medians, ddof=1) / np.mean(medians)))
        print(f"{n}/{len(pick)} {spec}")
    per_target = {t: {"repeat_rel_spread": float(np.median(v)), "within_cv": within.get(t), "networks": len(v)}
                  for t, v in spreads.items() if v}
    rows = [[t, v["networks"], 100 * v["repeat_rel_spread"], 100 * (v["within_cv"] or 0.0)]
            for t, v in sorted(per_target.items())]
    body = "\n".join([
        f"{len(pick)} networks of `{args.db}`, each measured {args.repeats} more times per target in fresh "
        "sessions; spread = CV of the repeat medians (stored one included), median over networks.", "",
        md_table(["target", "networks", "repeat-run spread %", "median within-run CV %"], rows)])
    results = {"per_target": per_target, "networks": pick}
    if args.compare:
        names = {h: d.name for h, d in descs.items()}
        results["compare"] = _compare(args.compare, by_spec, names)
        rows = [[t, v["pairs"], 100 * v["median_rel_diff"], 100 * v["p90_rel_diff"], 100 * v["share_over_20pct"]]
                for t, v in sorted(results["compare"].items())]
        body += "\n\n" + "\n".join([
            f"## `{args.compare}` against this store", "",
            "Per target, over the networks measured in both: |other median / this median - 1|.", "",
            md_table(["target", "pairs", "median diff %", "p90 diff %", "share > 20 % off (%)"], rows)])
    write_results(args.out, "Noise floor per target", body, results, started)
    print(body)


def _compare(other: Path, by_spec: dict[str, dict[str, float]], names: dict[str, str]) -> dict[str, dict[str, float]]:
    """Per target: how far ``other``'s medians are from this store's for the same (network, target)."""
    diffs: dict[str, list[float]] = {}
    with MeasurementStore(other, readonly=True) as store:
        for m in store.measurements():
            mine = by_spec.get(m.spec, {}).get(m.target_hash)
            if mine is not None and m.target_hash in names:
                diffs.setdefault(names[m.target_hash], []).append(abs(m.median_ms / mine - 1.0))
    return {t: {"pairs": len(d), "median_rel_diff": float(np.median(d)), "p90_rel_diff": float(np.quantile(d, 0.9)),
                "share_over_20pct": float(np.mean(np.asarray(d) > 0.2))} for t, d in diffs.items()}


if __name__ == "__main__":
    main()
