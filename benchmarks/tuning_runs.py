"""One run of the tuning-curve benchmark: a measured tuning run with one cost model, or a predicted-runner run
whose chosen schedules are then measured.

Four searches share MetaSchedule's evolutionary search, the seeds and the CPU builder/runner pair; only the
cost model differs: ``xgb`` (MetaSchedule's XGBoost model, scoring by its model after ``xgb_warmup``
measurements), ``random`` (its random model: what XGB is during its warm-up), ``ledg-cold``
(``LeDGCostModel`` trained online from scratch) and ``ledg-pretrained`` (starting from a pre-trained
checkpoint). Wall-clock times leave out the runner's waits for a quiet machine.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.tuning_results import CurveRun, PredictedRun

from targets.errors import DataError
from targets.schema import TargetDescriptor
from tvm_ledg._tvm import derived_object, ms
from tvm_ledg.tuning import LeDGCostModel, OnlineConfig, run_secs_in_order, tune_with_predictions
from tvm_ledg.tuning.records import best_schedule, mean_run_secs, schedule_record
from tvm_ledg.tuning.search import measure_records, quiet_metaschedule, search_cost_model, tune
from tvm_ledg.tuning.workloads import Workload

__all__ = ["METHODS", "MEASURE_TOP", "PRETRAINED", "Search", "TimedCostModel", "run_curve", "run_predicted"]

METHODS = ("xgb", "random", "ledg-cold", "ledg-pretrained")
PRETRAINED = "ledg-pretrained"
MEASURE_TOP = 5  # predicted-fastest schedules measured after predicted-runner tuning


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


def _fresh(work_dir: Path) -> Path:
    """``work_dir``, empty."""
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


@dataclasses.dataclass(frozen=True)
class Search:
    """What every run's search shares: measured trials per run, trials per measured round, the evolutionary
    search's population, and the measurements XGBoost needs before it scores by its model."""

    trials: int
    trials_per_round: int
    population: int
    xgb_warmup: int


def run_curve(workload: Workload, method: str, seed: int, desc: TargetDescriptor, search: Search, work_dir: Path,
              builder: Any, runner: Any, checkpoint: Path | None, settings: dict[str, Any]) -> CurveRun:
    """Tune ``workload`` with ``method``'s cost model (``checkpoint``: ledg-pretrained's) in ``work_dir``; the
    measured run times in order and the time per round, recorded with ``settings``."""
    timed = TimedCostModel(_cost_model(method, seed, desc, checkpoint, search.xgb_warmup))
    earlier_waits = len(runner.waits)
    start = time.perf_counter()
    tune(workload.build(), desc, _fresh(work_dir), search.trials, cost_model=timed, seed=seed,
         trials_per_round=search.trials_per_round, population=search.population, builder=builder, runner=runner)
    end = time.perf_counter()
    waits = runner.waits[earlier_waits:]  # busy-machine retakes: waiting is not the method's time
    run_secs = run_secs_in_order(work_dir)
    ends = [start] + [t for t, _ in timed.updates]
    model = [0.0] + [s for _, s in timed.updates]
    measured = [s for s in run_secs if s is not None]
    return CurveRun(
        workload=workload.name, method=method, seed=seed, run_secs=run_secs,
        best_schedule=best_schedule(work_dir) if method == "xgb" else None,  # timed again beside predicted ones
        best_ms=min(measured) * 1e3 if measured else math.inf,
        wall_seconds=end - start - sum(s for _, s in waits),
        round_seconds=[b - a - sum(s for t, s in waits if a < t <= b) for a, b in itertools.pairwise(ends)],
        round_model_seconds=[b - a for a, b in itertools.pairwise(model)],
        busy_retakes=len(waits), busy_wait_seconds=sum(s for _, s in waits),
        checkpoint=str(checkpoint) if method == PRETRAINED else None, settings=settings)


def run_predicted(workload: Workload, seed: int, desc: TargetDescriptor, search: Search, work_dir: Path,
                  builder: Any, runner: Any, checkpoint: Path, xgb_best: dict[str, str] | None,
                  settings: dict[str, Any]) -> PredictedRun:
    """Tune with ``PredictedRunner`` only, then measure the ``MEASURE_TOP`` schedules predicted fastest together
    with ``xgb_best``, the best schedule of the XGB run of the same seed (None: that run found none)."""
    model = LeDGCostModel(desc, checkpoint=checkpoint, online=OnlineConfig(seed=seed))
    quiet_metaschedule()
    start = time.perf_counter()
    database = tune_with_predictions(workload.build(), desc, _fresh(work_dir), search.trials, model=model,
                                     num_trials_per_iter=search.trials_per_round, seed=seed,
                                     strategy=ms.search_strategy.EvolutionarySearch(population_size=search.population))
    wall = time.perf_counter() - start
    ranked = sorted((r for r in database.get_all_tuning_records() if mean_run_secs(r.run_secs) is not None),
                    key=lambda r: mean_run_secs(r.run_secs))[:MEASURE_TOP]
    if not ranked:
        raise DataError(f"{workload.name}: predicted-runner tuning in {work_dir} produced no candidate")
    xgb_record = schedule_record(xgb_best) if xgb_best is not None else None
    measured, errors = measure_records(ranked + ([xgb_record] if xgb_record is not None else []), desc, builder,
                                       runner)
    ms_of = [s * 1e3 if s is not None else math.inf for s in measured]  # a failed schedule is infinitely slow
    return PredictedRun(workload=workload.name, seed=seed, wall_seconds=wall, checkpoint=str(checkpoint),
                        predicted_ms=[mean_run_secs(r.run_secs) * 1e3 for r in ranked],
                        measured_ms=ms_of[:len(ranked)],
                        xgb_remeasured_ms=ms_of[-1] if xgb_record is not None else None,
                        measure_errors=[e for e in errors if e is not None], settings=settings)
