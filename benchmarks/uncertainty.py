"""Is the variance head calibrated? Coverage of predicted intervals on unseen architectures.

The shipped checkpoint predicts a log-latency mean and standard deviation.
For a calibrated Gaussian in log space, ``|log y - log ŷ| <= z·σ`` should hold
for 68.3 % (z = 1), 95.4 % (z = 2) and 99.7 % (z = 3) of the rows. The table
reports the observed coverage on the config's test split (architectures never
trained on), per device class and overall, plus the Spearman correlation
between σ and the actual error (does a larger σ flag a worse prediction?).
Usage::

    python -m benchmarks.uncertainty --config examples/configs/ledg-default.yaml --out docs/results/uncertainty
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import norm, spearmanr

from benchmarks.common import REPO, md_table, parser, start, write_results

from cost_model.predictor import LatencyPredictor
from cost_model.training import load_latency_data, load_run_config

Z = (1.0, 2.0, 3.0)


def main() -> None:
    ap = parser(__doc__, Path("docs/results/uncertainty"), threads=2)
    ap.add_argument("--checkpoint", type=Path, default=REPO / "cost_model" / "checkpoints" / "ledg-default")
    ap.add_argument("--config", type=Path, default=REPO / "examples" / "configs" / "ledg-default.yaml")
    ap.add_argument("--split", default="test")
    ap.add_argument("--max-rows-per-target", type=int, default=500)
    args, started = start(ap)
    data = load_latency_data(load_run_config(args.config))
    per_target: dict[str, list] = defaultdict(list)
    for r in data.rows[args.split]:
        if len(per_target[r[1]]) < args.max_rows_per_target:
            per_target[r[1]].append(r)
    rows = [r for rs in per_target.values() for r in rs]
    model = LatencyPredictor.from_pretrained(args.checkpoint)
    pred = model.predict_detailed(data.graphs, data.targets, [(r[0], r[1]) for r in rows])
    if pred.std_log is None:
        raise SystemExit(f"{args.checkpoint}: this checkpoint has no variance head")
    err = np.abs(np.log([r[2] for r in rows]) - np.log(pred.latency_ms))
    sigma = pred.std_log
    classes = np.array([data.targets[r[1]].device_class for r in rows])

    def coverage(mask: np.ndarray) -> list[float]:
        return [float(np.mean(err[mask] <= z * sigma[mask])) for z in Z]

    table, payload = [], {}
    for name, mask in [("all", np.ones(len(rows), bool)), *[(c, classes == c) for c in sorted(set(classes))]]:
        cov = coverage(mask)
        rho = float(spearmanr(sigma[mask], err[mask]).statistic)
        payload[name] = {"rows": int(mask.sum()), "coverage": dict(zip(map(str, Z), cov)), "spearman_sigma_err": rho,
                         "median_sigma": float(np.median(sigma[mask])), "median_abs_log_err": float(np.median(err[mask]))}
        table.append([name, int(mask.sum()), *[100 * c for c in cov], rho, float(np.median(sigma[mask])),
                      float(np.median(err[mask]))])
    expected = [100 * (2 * norm.cdf(z) - 1) for z in Z]
    body = "\n".join([
        f"Checkpoint `{args.checkpoint.name}`, {args.split} split of `{args.config.name}` (at most "
        f"{args.max_rows_per_target} rows per device). Coverage = % of rows with |log y - log ŷ| <= z·σ; a "
        f"calibrated model gives {expected[0]:.1f} / {expected[1]:.1f} / {expected[2]:.1f} %.", "",
        md_table(["devices", "rows", "z=1 %", "z=2 %", "z=3 %", "Spearman(σ, |err|)", "median σ",
                  "median |log err|"], table)])
    write_results(args.out, "Uncertainty calibration of the variance head", body,
                  {"groups": payload, "expected_coverage": dict(zip(map(str, Z), expected))}, started)
    print(body)


if __name__ == "__main__":
    main()
