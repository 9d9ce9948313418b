"""Tuning curves, candidate ranking and predicted-runner tuning on the workload suite.

Four searches tune each workload of ``tvm_ledg.tuning.workloads`` on one local
CPU target with the project's builder/runner pair, the same evolutionary search
and the same seeds; only the cost model differs:

* ``xgb``: MetaSchedule's XGBoost model, scoring by its model from the second
  round on (``--xgb-warmup``, default one round: MetaSchedule's default of 100
  measurements would leave a 128-trial search random for four rounds of 32);
* ``random``: MetaSchedule's random model (what XGB is during its warm-up);
* ``ledg-cold``: ``LeDGCostModel(target)`` trained online from scratch;
* ``ledg-pretrained``: ``LeDGCostModel(target, checkpoint=...)`` starting from a
  program-level checkpoint pre-trained on tuning records
  (``benchmarks/tuning_records.py``) of *other* workloads on *other* targets:
  the suite is split into ``--folds`` workload folds and each fold is tuned
  with a model trained on the records of the other folds on
  ``--pretrain-targets`` (default: every target in the records but the tuned
  one), so neither the tuned workload nor the tuned target was seen in
  pre-training. ``--checkpoint`` replaces the fold models by one given
  checkpoint (then the report cannot say what it was trained on, and ranking
  quality is not measured).

A curve is the best measured latency after each measured trial (failed
candidates count as trials). Wall-clock per round (one measured batch of
``--trials-per-round``) includes search, build, run and model time; model time
(``predict`` + ``update``) is also reported alone. The runner's busy-machine
check (``make_runner``) times a candidate again when other processes used the
CPU meanwhile; that waiting is taken out of the wall-clock times and counted. Ranking quality: the fold
models score every record of their held-out workloads on the tuned target (top-1
/ top-5 score as in TenSet: true best latency over the best true latency among
the k predicted fastest; pairwise accuracy), next to a random order and to a
model pre-trained on the same targets' records of every workload (kept as
``pretrained/all-workloads``; only the target is new to it: the cross-target case). Predicted
runner: each workload is tuned with ``PredictedRunner`` alone (nothing runs),
then the 5 schedules predicted fastest are measured for real, in the same
runner call as the best schedule of XGB's run with the same seed (measured
again, so that both are one fresh timing: XGB's recorded best is the minimum
of many noisy ones); the top-1 is compared with that.

The tuning goals are evaluated from these numbers: LeDG reaches XGB's
best-at-N latency with <= N/2 measured trials on the suite mean (geometric mean
over workloads and seeds of the best latency relative to the best any run
found for that workload), and the predicted runner's chosen schedules are
within 20 % of the measured-tuning result (geometric mean of the ratio).

Every (workload, method, seed) run, predicted-runner run and fold model is
kept under ``<out>.parts/`` and skipped when present, so an interrupted run
resumes. A run whose machine stayed busy (``MachineBusy``: other processes
kept using the CPU; ``--max-wait``) is left for the next invocation, which the
benchmark asks for by stopping at once with exit code 3; a loop such as
``until python -m benchmarks.tuning_curves ...; do [ $? -eq 3 ] || break; done``
runs it to the end. MetaSchedule
work_dirs go to ``--work-dir``. Outputs: ``<out>.md``,
``<out>.json``, ``<out>_workloads.png`` (curves per workload),
``<out>_suite.png`` (suite mean).

This module is the command line and the resumable order of work; the pieces
are ``tuning_runs`` (one run), ``tuning_results`` (what a run keeps),
``tuning_pretrain`` (fold models, ranking quality), ``tuning_analysis``
(curves, goals) and ``tuning_report`` (Markdown, JSON, plots). Usage::

    python -m benchmarks.tuning_curves --records datasets/tuning-records.jsonl.gz --seeds 0 1 2 \\
        --trials 128 --max-wait 0 --out docs/results/tuning_curves
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tqdm import tqdm

from benchmarks.common import load_fold, parser, start, stop_when_busy
from benchmarks.tuning_pretrain import pretrained_checkpoints, ranking_quality, seen_workload_model
from benchmarks.tuning_records import TARGETS, add_search_arguments
from benchmarks.tuning_report import report
from benchmarks.tuning_results import CurveRun, PredictedRun
from benchmarks.tuning_runs import METHODS, PRETRAINED, Search, run_curve, run_predicted

import targets as target_registry
from cost_model.io import write_text_atomic
from cost_model.tuning_records import read_tuning_records
from tvm_ledg._tvm import ms
from tvm_ledg.measure.quiet import QuietPolicy
from tvm_ledg.tuning import get_workload, list_workloads, make_builder, make_runner, target_of
from tvm_ledg.tuning.search import quiet_metaschedule

_Run = TypeVar("_Run", CurveRun, PredictedRun)


def main() -> None:
    ap = parser(__doc__, Path("docs/results/tuning_curves"), threads=2)
    ap.add_argument("--workloads", nargs="+", default=list_workloads(), help="default: the whole suite")
    ap.add_argument("--target", default=TARGETS[1], help="the local CPU target tuned")
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--trials", type=int, default=128, help="measured trials per run (N)")
    add_search_arguments(ap)
    ap.add_argument("--records", type=Path, default=None,
                    help="tuning records (benchmarks/tuning_records.py): fold pre-training and ranking quality")
    ap.add_argument("--checkpoint", type=Path, default=None,
                    help="one pre-trained program-level checkpoint instead of the fold models")
    ap.add_argument("--folds", type=int, default=2, help="workload folds for pre-training")
    ap.add_argument("--pretrain-targets", nargs="+", default=None,
                    help="default: every target in --records but --target")
    ap.add_argument("--pretrain-epochs", type=int, default=30)
    ap.add_argument("--pretrain-rows-per-epoch", type=int, default=4000)
    ap.add_argument("--no-predicted", action="store_true", help="skip the predicted-runner runs")
    ap.add_argument("--work-dir", type=Path, default=None, help="default: .cache/tuning-curves/<out name>")
    args, started = start(ap)
    desc = target_registry.load(args.target)
    workloads = [get_workload(name) for name in args.workloads]
    parts = args.out.with_name(args.out.name + ".parts")
    work_root = args.work_dir or Path(".cache/tuning-curves") / args.out.name
    settings = {"target": desc.name, "trials": args.trials, "trials_per_round": args.trials_per_round,
                "population": args.population}
    args.xgb_warmup = args.trials_per_round if args.xgb_warmup is None else args.xgb_warmup
    search = Search(args.trials, args.trials_per_round, args.population, args.xgb_warmup)
    records = read_tuning_records(args.records) if args.records is not None else []
    checkpoints, pretrain = pretrained_checkpoints(args, records, workloads, parts / "pretrained")
    methods = [m for m in args.methods if m != PRETRAINED or checkpoints]
    if len(methods) < len(args.methods):
        print(f"{PRETRAINED}: skipped (give --records or --checkpoint)")

    pair: list[Any] = []

    def tuning_pair() -> tuple[Any, Any]:
        """Builder and runner, made on first use after a warm-up TuneContext (it imports tensor_intrin,
        40-50 s once per process), so no timed round pays for that and a finished benchmark only reports."""
        if not pair:
            quiet_metaschedule()
            ms.TuneContext(mod=workloads[0].build(), target=target_of(desc), task_name="warm-up")
            quiet = QuietPolicy(max_wait_s=args.max_wait or None)
            pair.extend([make_builder(), make_runner(desc.threads, quiet=quiet)])
        return pair[0], pair[1]

    curves: list[CurveRun] = []
    jobs = [(w, m, s) for w in workloads for m in methods for s in args.seeds]
    for workload, method, seed in tqdm(jobs, desc="tuning curves", unit="run", dynamic_ncols=True):
        path = parts / "curves" / f"{workload.name}__{method}__s{seed}.json"
        run_settings = curve_settings(settings, method, args, pretrain)
        curves.append(_kept_or_run(
            CurveRun, path, run_settings, args.out, f"{workload.name} {method} seed {seed}",
            lambda: run_curve(workload, method, seed, desc, search, work_root / path.stem, *tuning_pair(),
                              checkpoints.get(workload.name), run_settings),
            lambda run: f"best {run.best_ms:.4g} ms, {run.wall_seconds:.0f} s"))

    predicted: list[PredictedRun] = []
    pending: list[str] = []
    if checkpoints and not args.no_predicted:
        jobs = [(w, s) for w in workloads for s in args.seeds]
        for workload, seed in tqdm(jobs, desc="predicted runner", unit="run", dynamic_ncols=True):
            path = parts / "predicted" / f"{workload.name}__s{seed}.json"
            run_settings = {**curve_settings(settings, PRETRAINED, args, pretrain),
                            "xgb": curve_settings(settings, "xgb", args, pretrain)}
            # this invocation's XGB run of the seed, made with the current settings
            xgb = [c for c in curves if c.method == "xgb" and c.workload == workload.name and c.seed == seed]
            if not xgb and load_fold(path, run_settings, args.out) is None:
                tqdm.write(f"{workload.name} predicted runner seed {seed}: no XGB run of this seed to compare "
                           "with (not in --methods, or left on a busy machine); skipped")
                pending.append(path.stem)
                continue
            predicted.append(_kept_or_run(
                PredictedRun, path, run_settings, args.out, f"{workload.name} predicted runner seed {seed}",
                lambda: run_predicted(workload, seed, desc, search, work_root / path.stem, *tuning_pair(),
                                      checkpoints[workload.name], xgb[0].best_schedule, run_settings),
                lambda run: f"top-1 measured {run.measured_ms[0]:.4g} ms"))

    if pending:
        print(f"predicted-runner runs without an XGB run to compare with: {', '.join(pending)} (left out)")
    held_out = records and pretrain and "checkpoint" not in pretrain  # one given checkpoint may have seen them all
    if held_out and desc.name not in pretrain["targets"]:  # else it would rank records it was trained on
        pretrain["all_workloads"] = seen_workload_model(args, records, pretrain, parts / "pretrained")
    ranking = ranking_quality(records, desc, pretrain, pretrain.get("all_workloads")) if held_out else []
    report(args, settings, pretrain, curves, predicted, ranking, started)


def _kept_or_run(kind: type[_Run], path: Path, settings: dict[str, Any], out: Path, label: str,
                 run: Callable[[], _Run], done: Callable[[_Run], str]) -> _Run:
    """The run kept at ``path`` when it was made with ``settings``; else ``run()``'s, kept there (``done`` says
    how it went). A busy machine ends the process, leaving this run and the later ones to the next invocation."""
    kept = load_fold(path, settings, out)
    if kept is not None:
        return kind.from_json(kept, path)
    with stop_when_busy(label):
        result = run()
    write_text_atomic(path, json.dumps(result.to_json()))
    tqdm.write(f"{label}: {done(result)}")
    return result


def curve_settings(settings: dict[str, Any], method: str, args: argparse.Namespace,
                   pretrain: dict[str, Any]) -> dict[str, Any]:
    """What a run of ``method`` depends on beyond the shared settings (a part made otherwise is not reused)."""
    if method == "xgb":
        return {**settings, "xgb_warmup": args.xgb_warmup}
    if method == "ledg-cold":
        return {**settings, "threads": args.threads}
    if method == PRETRAINED:
        return {**settings, "threads": args.threads, "pretrain": pretrain["id"]}
    return settings


if __name__ == "__main__":
    main()
