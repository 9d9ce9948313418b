"""Repeat-run noise floor of each target: the spread no latency predictor can beat (issue 4).

Takes ``--networks`` networks already measured in a store, measures each again
``--repeats`` times per target (a fresh session every time: new ORT session,
new TVM compile, so setup effects count) with the store's protocol, and
reports per target the median over networks of the coefficient of variation
of those repeat medians (``repeat_rel_spread``), next to the median
within-measurement CV the store already holds. Run it on a quiet machine, like
the collection itself. Usage::

    python benchmarks/noise_floor.py --db .cache/measurements.sqlite --networks 30 --repeats 3
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from common import md_table, write_results

from cost_model.measurement_store import MeasurementStore
from tvm_ledg.measure import MeasureProtocol, measure
from tvm_ledg.measure.backends import Network


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("docs/results/noise_floor"))
    ap.add_argument("--networks", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
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
            medians = [by_spec[spec][h]] + [measure(net, desc, protocol).stats.median_ms for _ in range(args.repeats)]
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
    write_results(args.out, "Noise floor per target", body, {"per_target": per_target, "networks": pick},
                  started)
    print(body)


if __name__ == "__main__":
    main()
