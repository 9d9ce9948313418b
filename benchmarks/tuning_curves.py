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
``<out>_suite.png`` (suite mean). Usage::

    python -m benchmarks.tuning_curves --records datasets/tuning-records.jsonl.gz --seeds 0 1 2 \\
        --trials 128 --max-wait 0 --out docs/results/tuning_curves
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from benchmarks.common import load_fold, md_table, write_results
from benchmarks.tuning_records import TARGETS, quiet_metaschedule, search_cost_model, stop_busy, tune

import targets as target_registry
from cost_model.io import write_text_atomic
from cost_model.metrics import pairwise_accuracy, topk_score
from cost_model.predictor import LatencyPredictor, TrainConfig
from cost_model.tuning_records import ProgramRecord, read_tuning_records, training_rows
from targets.errors import DataError
from targets.schema import TargetDescriptor
from tvm_ledg._tvm import derived_object, ms
from tvm_ledg.measure.quiet import QuietPolicy, is_machine_busy
from tvm_ledg.tuning import (
    LeDGCostModel,
    OnlineConfig,
    get_workload,
    list_workloads,
    make_builder,
    make_runner,
    run_secs_in_order,
    target_of,
    tune_with_predictions,
)
from tvm_ledg.tuning.records import mean_run_secs
from tvm_ledg.tuning.workloads import Workload

METHODS = ("xgb", "random", "ledg-cold", "ledg-pretrained")
PRETRAINED = "ledg-pretrained"
GOAL_TRIAL_FRACTION = 0.5
GOAL_PREDICTED_RATIO = 1.2
TOP_K = (1, 5)
MEASURE_TOP = 5  # predicted-fastest schedules measured after predicted-runner tuning
VERSUS_MARGIN = 1.1  # a best within 10 % of XGB's is a tie: about the median change of XGB's best timed again

# Fold models: the size LeDGCostModel uses when it trains from scratch, so cold and pre-trained compare.
PRETRAIN_ENCODER: dict[str, Any] = {"kind": "builtin", "dim": 32}
PRETRAIN_MODEL: dict[str, Any] = {"dim": 32, "layers": 2, "heads": 4, "dropout": 0.0, "variance_head": True}


@derived_object
class TimedCostModel(ms.cost_model.PyCostModel):
    """Delegates to ``inner`` and clocks it: seconds in ``predict`` + ``update``, and when each update ends."""

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self.inner = inner
        self.model_seconds = 0.0
        self.updates: list[tuple[float, float]] = []  # (perf_counter at the end of update, model seconds so far)

    def load(self, path: str) -> None:
        self.inner.load(path)

    def save(self, path: str) -> None:
        self.inner.save(path)

    def update(self, context: Any, candidates: Any, results: Any) -> None:
        start = time.perf_counter()
        self.inner.update(context, candidates, results)
        end = time.perf_counter()
        self.model_seconds += end - start
        self.updates.append((end, self.model_seconds))

    def predict(self, context: Any, candidates: Any) -> np.ndarray:
        start = time.perf_counter()
        scores = self.inner.predict(context, candidates)
        self.model_seconds += time.perf_counter() - start
        return scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", nargs="+", default=list_workloads(), help="default: the whole suite")
    ap.add_argument("--target", default=TARGETS[1], help="the local CPU target tuned")
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--trials", type=int, default=128, help="measured trials per run (N)")
    ap.add_argument("--trials-per-round", type=int, default=32)
    ap.add_argument("--xgb-warmup", type=int, default=None,
                    help="measurements before XGBoost scores by its model (default: one round)")
    ap.add_argument("--max-wait", type=float, default=600.0,
                    help="seconds one candidate may wait for a quiet machine (0: no limit)")
    ap.add_argument("--population", type=int, default=512, help="evolutionary search population")
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
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the LeDG models")
    ap.add_argument("--work-dir", type=Path, default=None, help="default: .cache/tuning-curves/<out name>")
    ap.add_argument("--out", type=Path, default=Path("docs/results/tuning_curves"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    desc = target_registry.load(args.target)
    workloads = [get_workload(name) for name in args.workloads]
    parts = args.out.with_name(args.out.name + ".parts")
    work_root = args.work_dir or Path(".cache/tuning-curves") / args.out.name
    settings = {"target": desc.name, "trials": args.trials, "trials_per_round": args.trials_per_round,
                "population": args.population}
    args.xgb_warmup = args.trials_per_round if args.xgb_warmup is None else args.xgb_warmup
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
            pair.extend([make_builder(), make_runner(desc.threads, quiet=QuietPolicy(max_wait_s=args.max_wait or None))])
        return pair[0], pair[1]

    curves: list[dict[str, Any]] = []
    jobs = [(w, m, s) for w in workloads for m in methods for s in args.seeds]
    for workload, method, seed in tqdm(jobs, desc="tuning curves", unit="run", dynamic_ncols=True):
        path = parts / "curves" / f"{workload.name}__{method}__s{seed}.json"
        run_settings = curve_settings(settings, method, args, pretrain)
        part = load_fold(path, run_settings, args.out)
        if part is None:
            try:
                part = run_curve(workload, method, seed, desc, args, work_root / path.stem, *tuning_pair(),
                                 checkpoints.get(workload.name))
            except Exception as exc:  # MetaSchedule forwards the runner's MachineBusy as another type
                if not is_machine_busy(exc):
                    raise
                stop_busy(f"{workload.name} {method} seed {seed}", exc)
            part["settings"] = run_settings
            write_text_atomic(path, json.dumps(part))
            tqdm.write(f"{workload.name} {method} seed {seed}: best {part['best_ms']:.4g} ms, "
                       f"{part['wall_seconds']:.0f} s")
        curves.append(part)

    predicted: list[dict[str, Any]] = []
    pending: list[str] = []
    if checkpoints and not args.no_predicted:
        jobs = [(w, s) for w in workloads for s in args.seeds]
        for workload, seed in tqdm(jobs, desc="predicted runner", unit="run", dynamic_ncols=True):
            path = parts / "predicted" / f"{workload.name}__s{seed}.json"
            run_settings = {**curve_settings(settings, PRETRAINED, args, pretrain),
                            "xgb": curve_settings(settings, "xgb", args, pretrain)}
            part = load_fold(path, run_settings, args.out)
            if part is None:
                xgb = [c for c in curves if c["method"] == "xgb" and c["workload"] == workload.name
                       and c["seed"] == seed]  # this invocation's, made with the current settings
                if not xgb:
                    tqdm.write(f"{workload.name} predicted runner seed {seed}: no XGB run of this seed to compare "
                               "with (not in --methods, or left on a busy machine); skipped")
                    pending.append(path.stem)
                    continue
                try:
                    part = run_predicted(workload, seed, desc, args, work_root / path.stem, *tuning_pair(),
                                         checkpoints[workload.name], xgb[0]["best_schedule"])
                except Exception as exc:
                    if not is_machine_busy(exc):
                        raise
                    stop_busy(f"{workload.name} predicted runner seed {seed}", exc)
                part["settings"] = run_settings
                write_text_atomic(path, json.dumps(part))
                tqdm.write(f"{workload.name} predicted-runner seed {seed}: top-1 measured "
                           f"{part['measured_ms'][0]:.4g} ms")
            predicted.append(part)

    if pending:
        print(f"predicted-runner runs without an XGB run to compare with: {', '.join(pending)} (left out)")
    held_out = records and pretrain and "checkpoint" not in pretrain  # one given checkpoint may have seen them all
    if held_out and desc.name not in pretrain["targets"]:  # else it would rank records it was trained on
        pretrain["all_workloads"] = seen_workload_model(args, records, pretrain, parts / "pretrained")
    ranking = ranking_quality(records, desc, pretrain, pretrain.get("all_workloads")) if held_out else []
    report(args, settings, pretrain, curves, predicted, ranking, started)


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


# ------------------------------------------------------------------------------------------ pre-training


def fold_of(workload: str, folds: int) -> int:
    """Workload fold: position in the suite, round robin (stable as long as the suite's order is)."""
    return list_workloads().index(workload) % folds


def pretrained_checkpoints(args: argparse.Namespace, records: list[ProgramRecord], workloads: list[Workload],
                           root: Path) -> tuple[dict[str, Path], dict[str, Any]]:
    """Checkpoint per tuned workload, and a summary of how each was trained.

    With ``--checkpoint`` every workload gets it. Otherwise one model per fold of the suite, trained on
    the records of the other folds (kept in ``root``; skipped when present and made with the same
    settings). ``summary["id"]`` identifies the pre-training: runs made with another are not reused.
    """
    if args.checkpoint is not None:
        LatencyPredictor.from_pretrained(args.checkpoint)  # fail now, not after hours of tuning
        return ({w.name: args.checkpoint for w in workloads},
                {"checkpoint": str(args.checkpoint), "id": {"checkpoint": str(args.checkpoint.resolve())}})
    if not records:
        return {}, {}
    if args.folds < 2:
        raise DataError(f"--folds must be >= 2 (one fold held out, the others trained on), got {args.folds}")
    known = sorted({r.target for r in records})
    train_targets = args.pretrain_targets or [t for t in known if t != args.target]
    if not train_targets:
        raise DataError(f"{args.records} holds records of {known} only; pre-training on other targets needs records "
                        f"of another one (or give --pretrain-targets {args.target} to pre-train on the tuned target)")
    missing = sorted(set(train_targets) - set(known))
    if missing:
        raise DataError(f"--pretrain-targets {missing}: no records in {args.records} (it has {known})")
    descs = {name: target_registry.load(name) for name in known}
    needed = sorted({fold_of(w.name, args.folds) for w in workloads}
                    | {fold_of(r.workload, args.folds) for r in records})
    identity = {"records_sha256": hashlib.sha256(args.records.read_bytes()).hexdigest(), "folds": args.folds,
                "targets": train_targets, "epochs": args.pretrain_epochs,
                "rows_per_epoch": args.pretrain_rows_per_epoch}
    summary: dict[str, Any] = {"folds": {}, "targets": train_targets, "epochs": args.pretrain_epochs, "id": identity}
    paths: dict[int, Path] = {}
    for fold in needed:
        train = [r for r in records if fold_of(r.workload, args.folds) != fold and r.target in train_targets]
        held_out = sorted({w for w in list_workloads() if fold_of(w, args.folds) == fold})
        if not train:
            raise DataError(f"fold {fold} (held out: {', '.join(held_out)}): no records of the other workloads on "
                            f"{train_targets} in {args.records}; collect more workloads or lower --folds")
        path = root / f"fold{fold}"
        data = _pretrain(train, train_targets, descs, path, identity, args,
                         {"train_workloads": sorted({r.workload for r in train}), "train_targets": train_targets,
                          "held_out_workloads": held_out})
        paths[fold] = path
        summary["folds"][str(fold)] = {"path": str(path), **data}
    return {w.name: paths[fold_of(w.name, args.folds)] for w in workloads}, summary


def _pretrain(train: list[ProgramRecord], train_targets: list[str], descs: dict[str, TargetDescriptor], path: Path,
              identity: dict[str, Any], args: argparse.Namespace, data: dict[str, Any]) -> dict[str, Any]:
    """Train one pre-training model on ``train`` and keep it at ``path``, unless one made with the same
    ``identity`` is there already; returns what it was trained on (its checkpoint's data summary)."""
    if not (path / "config.json").is_file():
        graphs, rows = training_rows(train)
        t0 = time.time()
        predictor = LatencyPredictor(
            encoder=PRETRAIN_ENCODER, model=PRETRAIN_MODEL,
            train=TrainConfig(epochs=args.pretrain_epochs, batch_size=32, lr=2e-3, rank_weight=1.0, seed=0,
                              rows_per_epoch=min(len(rows), args.pretrain_rows_per_epoch)))
        resume = path.with_name(path.name + ".resume")
        predictor.fit(graphs, {t: descs[t] for t in train_targets}, rows, resume_dir=resume, progress=True)
        _save_atomically(predictor, path, {"pretraining": identity, "train_rows": len(rows), **data,
                                           "train_seconds": round(time.time() - t0, 1)})
        shutil.rmtree(resume, ignore_errors=True)
    saved = json.loads((path / "config.json").read_text()).get("data", {})
    if saved.get("pretraining") != identity:
        raise DataError(f"{path}: pre-trained with {saved.get('pretraining')}, now {identity}; "
                        f"delete it or choose another --out")
    return saved


def seen_workload_model(args: argparse.Namespace, records: list[ProgramRecord], pretrain: dict[str, Any],
                        root: Path) -> dict[str, Any]:
    """The cross-target control for ranking: one model pre-trained like the fold models, on the same targets, but on
    the records of *every* workload, so that only the target is new when it ranks the tuned target's records."""
    targets = pretrain["targets"]
    identity = {**{k: v for k, v in pretrain["id"].items() if k != "folds"}, "workloads": "all"}
    train = [r for r in records if r.target in targets]
    descs = {name: target_registry.load(name) for name in targets}
    path = root / "all-workloads"
    data = _pretrain(train, targets, descs, path, identity, args,
                     {"train_workloads": sorted({r.workload for r in train}), "train_targets": targets,
                      "held_out_workloads": []})
    return {"path": str(path), **data}


def _save_atomically(predictor: LatencyPredictor, path: Path, data: dict[str, Any]) -> None:
    """A fold model appears complete or not at all (its presence marks the fold done)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        predictor.save_pretrained(tmp, data_summary=data)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ------------------------------------------------------------------------------------------ tuning runs


def _fresh(work_dir: Path) -> Path:
    if work_dir.exists():
        shutil.rmtree(work_dir)  # an interrupted run: MetaSchedule cannot resume it
    work_dir.mkdir(parents=True)
    return work_dir


def _cost_model(method: str, seed: int, desc: TargetDescriptor, checkpoint: Path | None, xgb_warmup: int) -> Any:
    if method in ("xgb", "random"):
        return search_cost_model(method, seed, xgb_warmup)
    online = OnlineConfig(seed=seed)
    if method == "ledg-cold":
        return LeDGCostModel(desc, online=online)
    return LeDGCostModel(desc, checkpoint=checkpoint, online=online)


def run_curve(workload: Workload, method: str, seed: int, desc: TargetDescriptor, args: argparse.Namespace,
              work_dir: Path, builder: Any, runner: Any, checkpoint: Path | None) -> dict[str, Any]:
    """Tune ``workload`` with ``method``; the measured run times in order and the time per round."""
    timed = TimedCostModel(_cost_model(method, seed, desc, checkpoint, args.xgb_warmup))
    earlier_waits = len(runner.waits)
    start = time.perf_counter()
    tune(workload.build(), desc, _fresh(work_dir), args.trials, cost_model=timed, seed=seed,
         trials_per_round=args.trials_per_round, population=args.population, builder=builder, runner=runner)
    end = time.perf_counter()
    waits = runner.waits[earlier_waits:]  # busy-machine retakes: waiting is not the method's time
    run_secs = run_secs_in_order(work_dir)
    ends = [start] + [t for t, _ in timed.updates]
    model = [0.0] + [s for _, s in timed.updates]
    measured = [s for s in run_secs if s is not None]
    best = best_schedule(work_dir) if method == "xgb" else None  # re-timed beside the predicted runner's choice
    return {"workload": workload.name, "method": method, "seed": seed, "run_secs": run_secs, "best_schedule": best,
            "best_ms": min(measured) * 1e3 if measured else math.inf,
            "wall_seconds": end - start - sum(s for _, s in waits),
            "round_seconds": [b - a - sum(s for t, s in waits if a < t <= b) for a, b in itertools.pairwise(ends)],
            "round_model_seconds": [b - a for a, b in itertools.pairwise(model)],
            "busy_retakes": len(waits), "busy_wait_seconds": sum(s for _, s in waits),
            "checkpoint": str(checkpoint) if method == PRETRAINED else None}


def run_predicted(workload: Workload, seed: int, desc: TargetDescriptor, args: argparse.Namespace, work_dir: Path,
                  builder: Any, runner: Any, checkpoint: Path, xgb_best: dict[str, str] | None) -> dict[str, Any]:
    """Tune with ``PredictedRunner`` only, then measure the ``MEASURE_TOP`` schedules predicted fastest together
    with ``xgb_best``, the best schedule of the XGB run of the same seed (None: that run found none)."""
    model = LeDGCostModel(desc, checkpoint=checkpoint, online=OnlineConfig(seed=seed))
    quiet_metaschedule()
    start = time.perf_counter()
    database = tune_with_predictions(workload.build(), desc, _fresh(work_dir), args.trials, model=model,
                                     num_trials_per_iter=args.trials_per_round, seed=seed,
                                     strategy=ms.search_strategy.EvolutionarySearch(population_size=args.population))
    wall = time.perf_counter() - start
    ranked = sorted((r for r in database.get_all_tuning_records() if mean_run_secs(r.run_secs) is not None),
                    key=lambda r: mean_run_secs(r.run_secs))[:MEASURE_TOP]
    if not ranked:
        raise DataError(f"{workload.name}: predicted-runner tuning in {work_dir} produced no candidate")
    xgb_record = None
    if xgb_best is not None:
        with tempfile.TemporaryDirectory() as tmp:  # a one-record database, read back as MetaSchedule reads one
            (Path(tmp) / "database_workload.json").write_text(xgb_best["workload"] + "\n")
            (Path(tmp) / "database_tuning_record.json").write_text(xgb_best["record"] + "\n")
            xgb_record = ms.database.JSONDatabase(work_dir=tmp, allow_missing=False).get_all_tuning_records()[0]
    measured, errors = measure(ranked + ([xgb_record] if xgb_record is not None else []), desc, builder, runner)
    ms_of = [s * 1e3 if s is not None else math.inf for s in measured]  # a failed schedule is infinitely slow
    return {"workload": workload.name, "seed": seed, "wall_seconds": wall, "checkpoint": str(checkpoint),
            "predicted_ms": [mean_run_secs(r.run_secs) * 1e3 for r in ranked],
            "measured_ms": ms_of[:len(ranked)],
            "xgb_remeasured_ms": ms_of[-1] if xgb_record is not None else None,
            "measure_errors": [e for e in errors if e is not None]}


def best_schedule(work_dir: Path) -> dict[str, str] | None:
    """The fastest measured record of a one-workload JSON database, as its two database lines (the workload's, and
    the record's); None when no candidate ran."""
    lines = [line for line in (work_dir / "database_tuning_record.json").read_text().splitlines() if line.strip()]
    timed = [(secs, line) for line, secs in zip(lines, run_secs_in_order(work_dir)) if secs is not None]
    if not timed:
        return None
    workload = (work_dir / "database_workload.json").read_text().splitlines()[0]
    return {"workload": workload, "record": min(timed)[1]}


def measure(records: list[Any], desc: TargetDescriptor, builder: Any,
            runner: Any) -> tuple[list[float | None], list[str | None]]:
    """Build and run tuning records' schedules with the tuning pair: mean seconds (None: failed) and errors."""
    candidates = [r.as_measure_candidate() for r in records]
    target = target_of(desc)
    device = "cpu" if target.kind.name == "llvm" else target.kind.name  # the runner wants a device, not a target
    built = builder.build([ms.builder.BuilderInput(c.sch.mod, target) for c in candidates])
    seconds: list[float | None] = [None] * len(candidates)
    errors: list[str | None] = [b.error_msg for b in built]
    ok = [i for i, b in enumerate(built) if b.error_msg is None]
    futures = runner.run([ms.runner.RunnerInput(built[i].artifact_path, device, candidates[i].args_info) for i in ok])
    for i, future in zip(ok, futures):
        result = future.result()
        errors[i] = result.error_msg
        seconds[i] = mean_run_secs(result.run_secs) if result.error_msg is None else None
    for b in built:
        if b.artifact_path is not None:
            shutil.rmtree(Path(b.artifact_path).parent, ignore_errors=True)
    return seconds, errors


# ------------------------------------------------------------------------------------------ analysis


def best_so_far(run_secs: list[float | None], trials: int) -> np.ndarray:
    """Best latency (ms) after each of ``trials`` trials: inf before the first success, carried past the end."""
    values = np.array([s * 1e3 if s is not None else np.inf for s in run_secs[:trials]], dtype=np.float64)
    best = np.minimum.accumulate(values) if values.size else np.array([np.inf])
    return np.concatenate([best, np.full(trials - best.size, best[-1])]) if best.size < trials else best


def trials_to_reach(curve: np.ndarray, level: float) -> int | None:
    """First trial count (1-based) at which ``curve`` is at or below ``level``; None if never."""
    hit = np.flatnonzero(curve <= level)
    return int(hit[0]) + 1 if hit.size else None


def checkpoints_of(trials: int) -> list[int]:
    return sorted({n for n in (16, 32, 64, 128, 256, 512) if n <= trials} | {trials})


def analyse(curves: list[dict[str, Any]], trials: int, methods: list[str]) -> dict[str, Any]:
    """Per-workload seed curves, the suite-mean relative curve per method (over all seeds, and per seed), trials
    to reach XGB's best-at-N, and each run against XGB's of the same workload and seed."""
    scored = [(part, best_so_far(part["run_secs"], trials)) for part in curves]
    per: dict[str, dict[str, list[np.ndarray]]] = {}
    for part, curve in scored:
        per.setdefault(part["workload"], {}).setdefault(part["method"], []).append(curve)
    reference = {w: min(float(c.min()) for runs in by_method.values() for c in runs) for w, by_method in per.items()}
    seed_logs: dict[tuple[str, int], list[np.ndarray]] = {}
    for part, curve in scored:
        seed_logs.setdefault((part["method"], part["seed"]), []).append(np.log(curve / reference[part["workload"]]))
    suite: dict[str, np.ndarray] = {}
    per_seed: dict[str, dict[int, np.ndarray]] = {}  # the suite curve of each seed alone: how much seeds disagree
    for method in methods:
        logs = [c for (m, _), cs in seed_logs.items() if m == method for c in cs]
        if logs:
            suite[method] = np.exp(np.mean(logs, axis=0))
        for seed in sorted(s for m, s in seed_logs if m == method):
            per_seed.setdefault(method, {})[seed] = np.exp(np.mean(seed_logs[method, seed], axis=0))
    reach: dict[str, dict[str, Any]] = {}
    if "xgb" in suite:
        for method in suite:
            reach[method] = {}
            for n in checkpoints_of(trials):
                level = float(suite["xgb"][n - 1])  # inf while some XGB run has no successful trial yet
                reach[method][str(n)] = trials_to_reach(suite[method], level) if math.isfinite(level) else None
    per_workload_reach: dict[str, dict[str, Any]] = {}
    for w, by_method in per.items():
        if "xgb" not in by_method:
            continue
        level = float(_geomean_curve(by_method["xgb"])[-1])
        per_workload_reach[w] = {m: trials_to_reach(_geomean_curve(runs), level) if math.isfinite(level) else None
                                 for m, runs in by_method.items()}
    return {"per_workload": per, "reference_ms": reference, "suite": suite, "per_seed": per_seed, "reach": reach,
            "per_workload_reach": per_workload_reach, "versus_xgb": versus_xgb(scored)}


def versus_xgb(scored: list[tuple[dict[str, Any], np.ndarray]]) -> dict[str, dict[str, int]]:
    """Per method, over the (workload, seed) pairs that also have an XGB run (``scored``: each part with its
    best-so-far curve): how often its final best is more than ``VERSUS_MARGIN`` faster than XGB's (``wins``),
    more than that slower (``losses``), or neither (``ties``)."""
    xgb = {(c["workload"], c["seed"]): curve[-1] for c, curve in scored if c["method"] == "xgb"}
    counts: dict[str, dict[str, int]] = {}
    for c, curve in scored:
        key = (c["workload"], c["seed"])
        if c["method"] == "xgb" or key not in xgb:
            continue
        ratio = curve[-1] / xgb[key]
        outcome = "wins" if ratio < 1 / VERSUS_MARGIN else "losses" if ratio > VERSUS_MARGIN else "ties"
        tally = counts.setdefault(c["method"], {"wins": 0, "ties": 0, "losses": 0})
        tally[outcome] += 1
    return counts


def _geomean_curve(runs: list[np.ndarray]) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.exp(np.mean(np.log(np.stack(runs)), axis=0))


def ranking_quality(records: list[ProgramRecord], desc: TargetDescriptor, pretrain: dict[str, Any],
                    seen: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Top-k and pairwise accuracy of each fold model on its held-out workloads' records on ``desc``, of the
    ``seen`` model (every workload seen on the pre-training targets; keys ``seen_*``) and of random orders."""
    by_workload: dict[str, list[ProgramRecord]] = {}
    for r in records:
        if r.target == desc.name:
            by_workload.setdefault(r.workload, []).append(r)
    if "checkpoint" in pretrain:
        models = {w: Path(pretrain["checkpoint"]) for w in by_workload}
    else:
        models = {w: Path(d["path"]) for d in pretrain["folds"].values() for w in d["held_out_workloads"]}
    loaded: dict[Path, LatencyPredictor] = {}
    rng = np.random.default_rng(0)
    rows = []
    for workload, path in sorted(models.items()):
        recs = by_workload.get(workload, [])
        if len(recs) < 2:
            continue
        graphs, train_rows = training_rows(recs)
        true = np.array([row[2] for row in train_rows])
        shuffled = [rng.permutation(len(true)) for _ in range(200)]
        row: dict[str, Any] = {"workload": workload, "records": len(recs), "checkpoint": str(path),
                               "random_pairwise": 0.5}
        for prefix, model in (("", path), ("seen_", Path(seen["path"]) if seen else None)):
            if model is None:
                continue
            if model not in loaded:
                loaded[model] = LatencyPredictor.from_pretrained(model)
            predictor = loaded[model]
            pred = predictor.predict(graphs, {desc.name: desc}, [(r[0], r[1]) for r in train_rows])
            row[f"{prefix}pairwise"] = pairwise_accuracy(true, pred)
            for k in TOP_K:
                row[f"{prefix}top{k}"] = topk_score(true, pred, k)
        for k in TOP_K:
            row[f"random_top{k}"] = float(np.mean([topk_score(true, order.astype(float), k) for order in shuffled]))
        rows.append(row)
    return rows


# ------------------------------------------------------------------------------------------ report


def report(args: argparse.Namespace, settings: dict[str, Any], pretrain: dict[str, Any],
           curves: list[dict[str, Any]], predicted: list[dict[str, Any]], ranking: list[dict[str, Any]],
           started: float) -> None:
    trials = args.trials
    methods = [m for m in METHODS if any(c["method"] == m for c in curves)]
    analysis = analyse(curves, trials, methods)
    goals = evaluate_goals(analysis, predicted, curves, trials)
    lines = ["## Goals, computed from the runs below", ""]
    lines += [f"- {g['text']}" for g in goals]
    lines += ["", "## Setup", "",
              f"Target `{settings['target']}`; {trials} measured trials per run in rounds of "
              f"{settings['trials_per_round']}; evolutionary search, population {settings['population']}; "
              f"seeds {args.seeds}; workloads: {', '.join(analysis['per_workload'])}.",
              f"XGB scores by its model after {args.xgb_warmup} measurements (one round by default; "
              "MetaSchedule's default warm-up of 100 would make it a random search for most of this budget).",
              "Pre-training: " + _pretrain_text(pretrain, settings["target"]), ""]
    lines += ["## Suite mean: best latency relative to the best any run found (geometric mean over workloads and "
              "seeds; 1.0 = that best)", ""]
    ns = checkpoints_of(trials)
    lines.append(md_table(["method", *[f"N={n}" for n in ns]],
                          [[m, *[float(analysis["suite"][m][n - 1]) for n in ns]] for m in analysis["suite"]]))
    seeds = sorted({seed for by_seed in analysis["per_seed"].values() for seed in by_seed})
    if len(seeds) > 1:
        lines += ["", f"The same per seed (seeds {' / '.join(map(str, seeds))}; each cell lists the seeds' suite "
                  "means in that order):", ""]
        lines.append(md_table(["method", *[f"N={n}" for n in ns]],
                              [[m, *[" / ".join(f"{by_seed[s][n - 1]:.2f}" if s in by_seed else "-" for s in seeds)
                                     for n in ns]] for m, by_seed in analysis["per_seed"].items()]))
    if analysis["versus_xgb"]:
        retimed = [again / rec for part in predicted if (again := _vs_xgb(part, curves, trials)[0]) != "-"
                   and (rec := _xgb_recorded(part, curves, trials)) != "-"]
        noise = (f" (timing XGB's best schedule again changed it by a median of "
                 f"{np.median(np.abs(np.log(retimed))) * 100:.0f} %, range {min(retimed):.2f}-{max(retimed):.2f}x: "
                 "see the predicted-runner table)") if retimed else ""
        lines += ["", f"Best after {trials} trials against XGB's in the same (workload, seed); within "
                  f"{(VERSUS_MARGIN - 1) * 100:.0f} % counts as a tie{noise}:", ""]
        lines.append(md_table(["method", "faster than XGB", "tie", "slower than XGB"],
                              [[m, t["wins"], t["ties"], t["losses"]] for m, t in analysis["versus_xgb"].items()]))
    if analysis["reach"]:
        lines += ["", "Trials each method needs to reach XGB's suite-mean best-at-N (`-`: not within the budget):", ""]
        lines.append(md_table(["method", *[f"N={n}" for n in ns]],
                              [[m, *[_int_or_dash(analysis["reach"][m][str(n)]) for n in ns]]
                               for m in analysis["reach"]]))
    short = [f"{c['workload']} {c['method']} seed {c['seed']} ({len(c['run_secs'])})" for c in curves
             if len(c["run_secs"]) < trials]
    if short:
        lines += ["", f"Runs whose search ran out of new candidates before {trials} trials (their best is carried "
                  f"to N): {'; '.join(short)}."]
    lines += ["", f"## Per workload: best latency after {trials} trials (ms, geometric mean over seeds)", ""]
    header = ["workload", *methods, *[f"{m}: trials to XGB@{trials}" for m in methods if m != "xgb"]]
    rows = []
    for w, by_method in analysis["per_workload"].items():
        reach = analysis["per_workload_reach"].get(w, {})
        rows.append([w, *[float(_geomean_curve(by_method[m])[-1]) if m in by_method else "-" for m in methods],
                     *[_int_or_dash(reach.get(m)) for m in methods if m != "xgb"]])
    lines.append(md_table(header, rows))
    lines += ["", "## Wall-clock per round (s; rounds after the first, which also builds the search space)", ""]
    lines.append(md_table(["method", "round s (mean)", "model s per round (predict + update)", "wall s per run (mean)"],
                          [[m, *_round_times([c for c in curves if c["method"] == m])] for m in methods]))
    if ranking:
        lines += ["", f"## Ranking quality on the tuned target's records ({settings['target']})", "",
                  "Each workload's records on the tuned target, ranked by a model that saw neither that target nor the "
                  "workload (its fold model, as in ledg-pretrained), and by one pre-trained the same way on the same "
                  "targets' records of every workload (only the target is new: the cross-target case). Top-k score: "
                  "true best latency over the best true latency among the k predicted fastest (TenSet; 1 = best "
                  "found); pairwise: share of pairs ordered right. Random: mean over 200 random orders.", ""]
        cols = [*[f"top{k}" for k in TOP_K], "pairwise"]
        groups = [("new workload ", ""), ("seen workload ", "seen_"), ("random ", "random_")]
        groups = [(label, prefix) for label, prefix in groups if f"{prefix}pairwise" in ranking[0]]
        table = [[r["workload"], r["records"], *[r[prefix + c] for _, prefix in groups for c in cols]]
                 for r in ranking]
        table.append(["mean", sum(r["records"] for r in ranking),
                      *[float(np.mean([r[prefix + c] for r in ranking])) for _, prefix in groups for c in cols]])
        lines.append(md_table(["workload", "records", *[label + c for label, _ in groups for c in cols]], table))
    if predicted:
        lines += ["", "## Predicted runner: tuned on predictions alone, chosen schedules measured", ""]
        lines += [f"Both the predicted top-1 and XGB's best schedule after {trials} trials (same seed) are timed "
                  "once more in one runner call; the ratio compares those two fresh timings. XGB's best as "
                  "recorded during its tuning (the minimum of many noisy timings) is shown for reference.", ""]
        lines.append(md_table(["workload", "seed", "predicted top-1 ms", "measured top-1 ms",
                               f"best measured of top-{MEASURE_TOP} ms", f"XGB best@{trials} ms (recorded)",
                               "XGB best (timed again) ms", "top-1 / XGB", "tuning s"],
                              [[p["workload"], p["seed"], p["predicted_ms"][0], p["measured_ms"][0],
                                min(p["measured_ms"]), _xgb_recorded(p, curves, trials), *_vs_xgb(p, curves, trials),
                                p["wall_seconds"]]
                               for p in predicted]))
    plots = plot(args.out, analysis, trials)
    lines += ["", "## Plots", "", *[f"![{p.stem}]({p.name})" for p in plots]]
    payload = {"settings": {**settings, "seeds": args.seeds, "methods": methods, "records": str(args.records)},
               "pretraining": pretrain, "goals": goals,
               "suite_relative": {m: c.tolist() for m, c in analysis["suite"].items()},
               "suite_relative_per_seed": {m: {str(seed): c.tolist() for seed, c in by_seed.items()}
                                           for m, by_seed in analysis["per_seed"].items()},
               "versus_xgb": analysis["versus_xgb"],
               "reference_ms": analysis["reference_ms"], "reach": analysis["reach"],
               "per_workload_reach": analysis["per_workload_reach"], "ranking": ranking, "predicted": predicted,
               "runs": [{k: v for k, v in c.items() if k != "settings"} for c in curves]}
    write_results(args.out, "Tuning curves with LeDG-Former as MetaSchedule cost model", "\n".join(lines), payload,
                  started)
    print("\n".join(g["text"] for g in goals))


def evaluate_goals(analysis: dict[str, Any], predicted: list[dict[str, Any]], curves: list[dict[str, Any]],
                   trials: int) -> list[dict[str, Any]]:
    """Each goal of the issue with its measured value and whether it is met (None: not measured)."""
    goals = []
    budget = int(trials * GOAL_TRIAL_FRACTION)
    for method in ("ledg-pretrained", "ledg-cold"):
        needed = analysis["reach"].get(method, {}).get(str(trials))
        if "xgb" not in analysis["reach"] or method not in analysis["reach"]:
            goals.append({"goal": f"{method} reaches XGB best-at-N with <= N/2 trials", "met": None,
                          "text": f"{method} reaches XGB's best-at-{trials} with <= {budget} trials: not measured"})
            continue
        met = needed is not None and needed <= budget
        goals.append({"goal": f"{method} reaches XGB best-at-N with <= N/2 trials", "N": trials, "trials": needed,
                      "met": met, "text": f"{method} reaches XGB's suite-mean best-at-{trials} with <= {budget} "
                      f"trials: **{'met' if met else 'not met'}** "
                      f"({f'needs {needed}' if needed is not None else f'not reached within {trials}'})"})
    ratios = [r for p in predicted if (r := _vs_xgb(p, curves, trials)[1]) != "-"]
    if ratios:
        geo = float(np.exp(np.mean(np.log(ratios))))
        within = sum(r <= GOAL_PREDICTED_RATIO for r in ratios)
        met = geo <= GOAL_PREDICTED_RATIO
        goals.append({"goal": "predicted-runner choice within 20 % of measured tuning", "ratio_geomean": geo,
                      "within": within, "runs": len(ratios), "met": met,
                      "text": f"predicted runner's chosen schedule within 20 % of XGB's measured best-at-{trials}: "
                      f"**{'met' if met else 'not met'}** (geometric mean ratio {geo:.2f}; {within}/{len(ratios)} "
                      f"runs within 20 %)"})
    else:
        goals.append({"goal": "predicted-runner choice within 20 % of measured tuning", "met": None,
                      "text": "predicted runner within 20 % of measured tuning: not measured (needs pre-trained "
                      "models and XGB runs)"})
    return goals


def _xgb_recorded(part: dict[str, Any], curves: list[dict[str, Any]], trials: int) -> Any:
    """XGB's best after ``trials`` as its run recorded it (the part's seed); "-" without that run."""
    same = [c for c in curves if c["method"] == "xgb" and c["workload"] == part["workload"]
            and c["seed"] == part["seed"]]
    return float(best_so_far(same[0]["run_secs"], trials)[-1]) if same else "-"


def _vs_xgb(part: dict[str, Any], curves: list[dict[str, Any]], trials: int) -> list[Any]:
    """XGB's best schedule timed again beside the predicted ones, and the predicted top-1 over it ("-": not timed,
    or it failed to run this time)."""
    best = part.get("xgb_remeasured_ms")
    if best is None or not math.isfinite(best):
        return ["-", "-"]
    return [best, part["measured_ms"][0] / best]


def _round_times(runs: list[dict[str, Any]]) -> list[Any]:
    rounds = [s for c in runs for s in c["round_seconds"][1:]]
    model = [s for c in runs for s in c["round_model_seconds"][1:]]
    walls = [c["wall_seconds"] for c in runs]
    return [float(np.mean(rounds)) if rounds else "-", float(np.mean(model)) if model else "-",
            float(np.mean(walls)) if walls else "-"]


def _finite(values: np.ndarray) -> np.ndarray:
    """inf (no successful trial yet) as nan, which matplotlib leaves out."""
    return np.where(np.isfinite(values), values, np.nan)


def _int_or_dash(value: int | None) -> Any:
    return "-" if value is None else value


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


def plot(out: Path, analysis: dict[str, Any], trials: int) -> list[Path]:
    """Best latency vs trials per workload (seed geometric mean, band = min/max over seeds) and the suite mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per = analysis["per_workload"]
    x = np.arange(1, trials + 1)
    cols = min(3, len(per))
    rows = math.ceil(len(per) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, (workload, by_method) in zip(axes.flat, per.items()):
        for method in METHODS:
            if method not in by_method:
                continue
            stack = _finite(np.stack(by_method[method]))
            (line,) = ax.plot(x, _finite(_geomean_curve(by_method[method])), label=method)
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
    for method, curve in analysis["suite"].items():
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


if __name__ == "__main__":
    main()
