"""Measured tuning runs as the project's tools make them: MetaSchedule's evolutionary search with a chosen cost
model on the CPU builder/runner pair, and chosen schedules timed again.

A busy machine stops a run with ``MachineBusy`` (raised by ``make_runner``'s runner). Inside MetaSchedule it
crosses TVM's FFI, which hands it on as another exception type carrying the message; ``tune`` and
``measure_records`` raise it as ``MachineBusy`` again, so callers catch one type.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from targets.errors import DataError
from targets.schema import TargetDescriptor
from tvm_ledg._tvm import ms
from tvm_ledg.measure.quiet import MachineBusy, is_machine_busy
from tvm_ledg.tuning.environment import target_of
from tvm_ledg.tuning.records import mean_run_secs

__all__ = ["SEARCH_COST_MODELS", "machine_busy_raised", "measure_records", "quiet_metaschedule",
           "search_cost_model", "tune"]

SEARCH_COST_MODELS = ("xgb", "random")


def quiet_metaschedule() -> None:
    """Console output of MetaSchedule at WARNING (its work_dir logs keep the detail).

    Each ``tune_tir`` sets the console handler to the level its logger has at that moment, then
    resets the logger to DEBUG: so this is needed before every call.
    """
    logging.getLogger("tvm.s_tir.meta_schedule").setLevel(logging.WARNING)


@contextlib.contextmanager
def machine_busy_raised() -> Iterator[None]:
    """Re-raise a ``MachineBusy`` that reached here as another type (TVM's FFI forwards it so) as ``MachineBusy``."""
    try:
        yield
    except MachineBusy:
        raise
    except Exception as exc:
        if is_machine_busy(exc):
            raise MachineBusy(str(exc)) from exc
        raise


def search_cost_model(kind: str, seed: int, xgb_warmup: int) -> Any:
    """MetaSchedule's own cost model ``kind`` as ``tune_tir`` would make it, its randomness seeded by ``seed``;
    XGBoost scores at random until it holds ``xgb_warmup`` measurements."""
    np.random.seed(seed)  # XGBModel scores randomly from NumPy's global generator until its warm-up
    if kind == "xgb":
        return ms.cost_model.XGBModel(num_tuning_cores=os.cpu_count() or 1, tree_method="auto",
                                      num_warmup_samples=xgb_warmup)
    if kind == "random":
        return ms.cost_model.RandomModel(seed=seed)
    raise DataError(f"unknown MetaSchedule cost model {kind!r}; expected one of {', '.join(SEARCH_COST_MODELS)}")


def tune(func: Any, desc: TargetDescriptor, work_dir: Path, trials: int, *, cost_model: Any, seed: int,
         trials_per_round: int, population: int, builder: Any, runner: Any) -> None:
    """One ``ms.tune_tir`` run of ``func`` on ``desc`` with an evolutionary search of ``population`` and
    ``cost_model``, its database in ``work_dir``; ``MachineBusy`` when the machine stayed busy."""
    quiet_metaschedule()
    with machine_busy_raised():
        ms.tune_tir(func, target_of(desc), str(work_dir), trials, num_trials_per_iter=trials_per_round,
                    builder=builder, runner=runner, cost_model=cost_model, seed=seed,
                    strategy=ms.search_strategy.EvolutionarySearch(population_size=population))


def measure_records(records: list[Any], desc: TargetDescriptor, builder: Any,
                    runner: Any) -> tuple[list[float | None], list[str | None]]:
    """Build and run tuning records' schedules with a builder/runner pair, all in one runner call: each one's mean
    seconds (None: it failed) and error message (None: it ran); ``MachineBusy`` when the machine stayed busy."""
    candidates = [r.as_measure_candidate() for r in records]
    target = target_of(desc)
    device = "cpu" if target.kind.name == "llvm" else target.kind.name  # the runner wants a device, not a target
    built = builder.build([ms.builder.BuilderInput(c.sch.mod, target) for c in candidates])
    seconds: list[float | None] = [None] * len(candidates)
    errors: list[str | None] = [b.error_msg for b in built]
    ok = [i for i, b in enumerate(built) if b.error_msg is None]
    try:
        with machine_busy_raised():
            futures = runner.run([ms.runner.RunnerInput(built[i].artifact_path, device, candidates[i].args_info)
                                  for i in ok])
            for i, future in zip(ok, futures):
                result = future.result()
                errors[i] = result.error_msg
                seconds[i] = mean_run_secs(result.run_secs) if result.error_msg is None else None
    finally:
        for b in built:
            if b.artifact_path is not None:
                shutil.rmtree(Path(b.artifact_path).parent, ignore_errors=True)
    return seconds, errors
