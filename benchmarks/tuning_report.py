"""The tuning-curve report: ``<out>.md`` and ``<out>.json`` (through ``write_results``), and two plots,
``<out>_workloads.png`` (curves per workload) and ``<out>_suite.png`` (suite mean). A value that was not
measured is shown as ``-`` in the tables and stored as null in the JSON."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import md_table, write_results
from benchmarks.tuning_analysis import (VERSUS_MARGIN, Analysis, analyse, checkpoints_of, evaluate_goals,
                                        geomean_curve, xgb_recorded)
from benchmarks.tuning_pretrain import TOP_K
from benchmarks.tuning_results import CurveRun, PredictedRun
from benchmarks.tuning_runs import MEASURE_TOP, METHODS

__all__ = ["report", "plot"]

TITLE = "Tuning curves with LeDG-Former as MetaSchedule cost model"


def report(args: argparse.Namespace, settings: dict[str, Any], pretrain: dict[str, Any], curves: list[CurveRun],
           predicted: list[PredictedRun], ranking: list[dict[str, Any]], started: float) -> None:
    """Write the report of ``curves``, ``predicted`` and ``ranking`` (``settings``: the shared search settings;
    ``pretrain``: the pre-training summary) and print the goals."""
    trials = args.trials
    methods = [m for m in METHODS if any(c.method == m for c in curves)]
    analysis = analyse(curves, trials, methods)
    goals = evaluate_goals(analysis, predicted, trials)
    lines = ["## Goals, computed from the runs below", ""]
    lines += [f"- {g.text}" for g in goals]
    lines += ["", "## Setup", "",
              f"Target `{settings['target']}`; {trials} measured trials per run in rounds of "
              f"{settings['trials_per_round']}; evolutionary search, population {settings['population']}; "
              f"seeds {args.seeds}; workloads: {', '.join(analysis.per_workload)}.",
              f"XGB scores by its model after {args.xgb_warmup} measurements (one round by default; "
              "MetaSchedule's default warm-up of 100 would make it a random search for most of this budget).",
              "Pre-training: " + _pretrain_text(pretrain, settings["target"]), ""]
    lines += _suite_section(analysis, curves, predicted, trials)
    lines += _workload_section(analysis, curves, methods, trials)
    if ranking:
        lines += _ranking_section(ranking, settings["target"])
    if predicted:
        lines += _predicted_section(predicted, curves, trials)
    plots = plot(args.out, analysis, trials)
    lines += ["", "## Plots", "", *[f"![{p.stem}]({p.name})" for p in plots]]
    payload = {"settings": {**settings, "seeds": args.seeds, "methods": methods, "records": str(args.records)},
               "pretraining": pretrain, "goals": [g.to_json() for g in goals],
               "suite_relative": {m: c.tolist() for m, c in analysis.suite.items()},
               "suite_relative_per_seed": {m: {str(seed): c.tolist() for seed, c in by_seed.items()}
                                           for m, by_seed in analysis.per_seed.items()},
               "versus_xgb": analysis.versus_xgb,
               "reference_ms": analysis.reference_ms, "reach": analysis.reach,
               "per_workload_reach": analysis.per_workload_reach, "ranking": ranking,
               "predicted": [p.to_json() for p in predicted],
               "runs": [{k: v for k, v in c.to_json().items() if k != "settings"} for c in curves]}
    write_results(args.out, TITLE, "\n".join(lines), payload, started)
    print("\n".join(g.text for g in goals))


def _suite_section(analysis: Analysis, curves: list[CurveRun], predicted: list[PredictedRun],
                   trials: int) -> list[str]:
    lines = ["## Suite mean: best latency relative to the best any run found (geometric mean over workloads and "
             "seeds; 1.0 = that best)", ""]
    ns = checkpoints_of(trials)
    lines.append(md_table(["method", *[f"N={n}" for n in ns]],
                          [[m, *[float(analysis.suite[m][n - 1]) for n in ns]] for m in analysis.suite]))
    seeds = sorted({seed for by_seed in analysis.per_seed.values() for seed in by_seed})
    if len(seeds) > 1:
        lines += ["", f"The same per seed (seeds {' / '.join(map(str, seeds))}; each cell lists the seeds' suite "
                  "means in that order):", ""]
        lines.append(md_table(["method", *[f"N={n}" for n in ns]],
                              [[m, *[" / ".join(f"{by_seed[s][n - 1]:.2f}" if s in by_seed else "-" for s in seeds)
                                     for n in ns]] for m, by_seed in analysis.per_seed.items()]))
    if analysis.versus_xgb:
        retimed = [pair[0] / recorded for p in predicted if (pair := p.versus_xgb()) is not None
                   and (recorded := xgb_recorded(p, curves, trials)) is not None]
        noise = (f" (timing XGB's best schedule again changed it by a median of "
                 f"{np.median(np.abs(np.log(retimed))) * 100:.0f} %, range {min(retimed):.2f}-{max(retimed):.2f}x: "
                 "see the predicted-runner table)") if retimed else ""
        lines += ["", f"Best after {trials} trials against XGB's in the same (workload, seed); within "
                  f"{(VERSUS_MARGIN - 1) * 100:.0f} % counts as a tie{noise}:", ""]
        lines.append(md_table(["method", "faster than XGB", "tie", "slower than XGB"],
                              [[m, t["wins"], t["ties"], t["losses"]] for m, t in analysis.versus_xgb.items()]))
    if analysis.reach:
        lines += ["", "Trials each method needs to reach XGB's suite-mean best-at-N (`-`: not within the budget):", ""]
        lines.append(md_table(["method", *[f"N={n}" for n in ns]],
                              [[m, *[_or_dash(analysis.reach[m][n]) for n in ns]] for m in analysis.reach]))
    short = [f"{c.workload} {c.method} seed {c.seed} ({len(c.run_secs)})" for c in curves if len(c.run_secs) < trials]
    if short:
        lines += ["", f"Runs whose search ran out of new candidates before {trials} trials (their best is carried "
                  f"to N): {'; '.join(short)}."]
    return lines


def _workload_section(analysis: Analysis, curves: list[CurveRun], methods: list[str], trials: int) -> list[str]:
    lines = ["", f"## Per workload: best latency after {trials} trials (ms, geometric mean over seeds)", ""]
    header = ["workload", *methods, *[f"{m}: trials to XGB@{trials}" for m in methods if m != "xgb"]]
    rows = []
    for w, by_method in analysis.per_workload.items():
        reach = analysis.per_workload_reach.get(w, {})
        rows.append([w, *[float(geomean_curve(by_method[m])[-1]) if m in by_method else "-" for m in methods],
                     *[_or_dash(reach.get(m)) for m in methods if m != "xgb"]])
    lines.append(md_table(header, rows))
    lines += ["", "## Wall-clock per round (s; rounds after the first, which also builds the search space)", ""]
    lines.append(md_table(["method", "round s (mean)", "model s per round (predict + update)", "wall s per run (mean)"],
                          [[m, *map(_or_dash, _round_times([c for c in curves if c.method == m]))]
                           for m in methods]))
    return lines


def _ranking_section(ranking: list[dict[str, Any]], target: str) -> list[str]:
    lines = ["", f"## Ranking quality on the tuned target's records ({target})", "",
             "Each workload's records on the tuned target, ranked by a model that saw neither that target nor the "
             "workload (its fold model, as in ledg-pretrained), and by one pre-trained the same way on the same "
             "targets' records of every workload (only the target is new: the cross-target case). Top-k score: "
             "true best latency over the best true latency among the k predicted fastest (TenSet; 1 = best "
             "found); pairwise: share of pairs ordered right. Random: mean over 200 random orders.", ""]
    cols = [*[f"top{k}" for k in TOP_K], "pairwise"]
    groups = [("new workload ", ""), ("seen workload ", "seen_"), ("random ", "random_")]
    groups = [(label, prefix) for label, prefix in groups if f"{prefix}pairwise" in ranking[0]]
    table = [[r["workload"], r["records"], *[r[prefix + c] for _, prefix in groups for c in cols]] for r in ranking]
    table.append(["mean", sum(r["records"] for r in ranking),
                  *[float(np.mean([r[prefix + c] for r in ranking])) for _, prefix in groups for c in cols]])
    lines.append(md_table(["workload", "records", *[label + c for label, _ in groups for c in cols]], table))
    return lines


def _predicted_section(predicted: list[PredictedRun], curves: list[CurveRun], trials: int) -> list[str]:
    lines = ["", "## Predicted runner: tuned on predictions alone, chosen schedules measured", ""]
    lines += [f"Both the predicted top-1 and XGB's best schedule after {trials} trials (same seed) are timed "
              "once more in one runner call; the ratio compares those two fresh timings. XGB's best as "
              "recorded during its tuning (the minimum of many noisy timings) is shown for reference.", ""]
    rows = []
    for p in predicted:
        again = p.versus_xgb()
        rows.append([p.workload, p.seed, p.predicted_ms[0], p.measured_ms[0], min(p.measured_ms),
                     _or_dash(xgb_recorded(p, curves, trials)), *(again if again is not None else ("-", "-")),
                     p.wall_seconds])
    lines.append(md_table(["workload", "seed", "predicted top-1 ms", "measured top-1 ms",
                           f"best measured of top-{MEASURE_TOP} ms", f"XGB best@{trials} ms (recorded)",
                           "XGB best (timed again) ms", "top-1 / XGB", "tuning s"], rows))
    return lines


def _round_times(runs: list[CurveRun]) -> list[float | None]:
    """Mean seconds per round and model seconds per round (rounds after the first), and mean wall seconds per run."""
    rounds = [s for c in runs for s in c.round_seconds[1:]]
    model = [s for c in runs for s in c.round_model_seconds[1:]]
    walls = [c.wall_seconds for c in runs]
    return [float(np.mean(values)) if values else None for values in (rounds, model, walls)]


def _or_dash(value: float | int | None) -> float | int | str:
    return "-" if value is None else value


def _finite(values: np.ndarray) -> np.ndarray:
    """inf (no successful trial yet) as nan, which matplotlib leaves out."""
    return np.where(np.isfinite(values), values, np.nan)


def _pretrain_text(pretrain: dict[str, Any], tuned: str) -> str:
    if not pretrain:
        return "none (no --records or --checkpoint; ledg-pretrained and the predicted runner were skipped)."
    if "checkpoint" in pretrain:
        return f"the given checkpoint `{pretrain['checkpoint']}` (its training data are not known here)."
    folds = "; ".join(f"fold {k}: {d.get('train_rows')} records of {', '.join(d.get('train_workloads', []))} "
                      f"(held out: {', '.join(d.get('held_out_workloads', []))})" for k, d in pretrain["folds"].items())
    seen = "includes" if tuned in pretrain["targets"] else "does not include"
    return (f"one model per workload fold, trained on the other folds' records of {', '.join(pretrain['targets'])} "
            f"(which {seen} the tuned target) for {pretrain['epochs']} epochs; {folds}.")


def plot(out: Path, analysis: Analysis, trials: int) -> list[Path]:
    """Best latency vs trials per workload (seed geometric mean, band = min/max over seeds) and the suite mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per = analysis.per_workload
    x = np.arange(1, trials + 1)
    cols = min(3, len(per))
    rows = math.ceil(len(per) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, (workload, by_method) in zip(axes.flat, per.items()):
        for method in METHODS:
            if method not in by_method:
                continue
            stack = _finite(np.stack(by_method[method]))
            (line,) = ax.plot(x, _finite(geomean_curve(by_method[method])), label=method)
            ax.fill_between(x, stack.min(axis=0), stack.max(axis=0), color=line.get_color(), alpha=0.15)
        ax.set_yscale("log")
        ax.set_title(workload, fontsize=9)
        ax.set_xlabel("measured trials")
        ax.set_ylabel("best latency (ms)")
    for ax in list(axes.flat)[len(per):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    workloads_png = out.with_name(out.name + "_workloads.png")
    fig.savefig(workloads_png, dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for method, curve in analysis.suite.items():
        ax.plot(x, _finite(curve), label=method)
    ax.set_yscale("log")
    ax.set_xlabel("measured trials")
    ax.set_ylabel("best latency / best found (geo. mean)")
    ax.set_title("suite mean")
    ax.legend(fontsize=8)
    fig.tight_layout()
    suite_png = out.with_name(out.name + "_suite.png")
    fig.savefig(suite_png, dpi=110)
    plt.close(fig)
    return [workloads_png, suite_png]
