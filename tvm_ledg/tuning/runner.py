"""Tuning without measuring: ``PredictedRunner`` returns predicted run times instead of running candidates.

MetaSchedule hands a runner only the builder's ``artifact_path``, so the
runner comes with its own no-compile builder (``runner.builder``): it keeps
each candidate's scheduled PrimFunc under a key and returns the key as the
artifact path; the runner looks the program up, predicts its latency with a
``LeDGCostModel`` and answers with ``RunnerResult(run_secs=[predicted s])``.
Nothing is compiled or executed, so a target need not be attached
(cross-compilation), and the predictions become the tuning database.

Use the pair with ``measure_callbacks=[AddToDatabase()]``: there are no build
artifacts for ``RemoveBuildArtifact`` to delete, and ``UpdateCostModel`` would
train the model on its own predictions. ``tune_with_predictions`` wires this up.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import targets as target_registry
from targets.errors import CheckpointError, TargetError
from targets.schema import TargetDescriptor
from tvm_ledg._tvm import derived_object, ms
from tvm_ledg.tuning.cost_model import LeDGCostModel
from tvm_ledg.tuning.environment import target_of

__all__ = ["ProgramBuilder", "PredictedRunner", "tune_with_predictions"]

_KEY_PREFIX = "ledg-program:"


@derived_object
class ProgramBuilder(ms.builder.PyBuilder):
    """A builder that compiles nothing: it files each scheduled PrimFunc in ``programs`` under a fresh key."""

    def __init__(self, programs: dict[str, Any]) -> None:
        super().__init__()
        self.programs = programs
        self._ids = itertools.count()

    def build(self, build_inputs: list[Any]) -> list[Any]:
        results = []
        for build_input in build_inputs:
            key = f"{_KEY_PREFIX}{next(self._ids)}"
            self.programs[key] = build_input.mod["main"]
            results.append(ms.builder.BuilderResult(key, None))
        return results


@derived_object
class PredictedRunner(ms.runner.PyRunner):
    """A runner that predicts run times with ``model``; pair it with ``runner.builder``."""

    def __init__(self, model: LeDGCostModel) -> None:
        super().__init__()
        if model.predictor_ is None:
            raise CheckpointError(f"PredictedRunner for {model.target.name}: the model has no predictor; "
                                  "give LeDGCostModel a checkpoint or update() it with measurements first")
        self.model = model
        self.programs: dict[str, Any] = {}
        self.builder = ProgramBuilder(self.programs)
        self.predicted = 0  # candidates answered so far

    def run(self, runner_inputs: list[Any]) -> list[Any]:
        keys = [str(r.artifact_path) for r in runner_inputs]
        funcs = [self.programs.pop(k, None) for k in keys]
        known = [f for f in funcs if f is not None]
        latencies = iter(self.model.latency_ms(known) if known else [])
        futures = []
        for key, func in zip(keys, funcs):
            if func is None:
                message = f"PredictedRunner: {key!r} was not built by runner.builder; pass builder=runner.builder"
                futures.append(ms.runner.LocalRunnerFuture(error_message=message))
            else:
                futures.append(ms.runner.LocalRunnerFuture(res=[float(next(latencies)) / 1e3]))
        self.predicted += len(known)
        return futures


def tune_with_predictions(mod: Any, target: str | TargetDescriptor, work_dir: str | os.PathLike[str],
                          max_trials: int, *, model: LeDGCostModel | None = None,
                          checkpoint: str | os.PathLike[str] | None = None, **tune_options: Any) -> Any:
    """``ms.tune_tir`` for ``target`` with every candidate predicted, none compiled or run.

    ``model`` (or a ``LeDGCostModel`` made from ``checkpoint``, which must then be given) both
    guides the search and predicts; it is not updated on its own predictions. ``tune_options``
    go to ``ms.tune_tir`` (``num_trials_per_iter``, ``seed``, ``strategy``, ...). Returns the
    tuning ``Database``.
    """
    desc = target if isinstance(target, TargetDescriptor) else target_registry.load(target)
    if model is None:
        model = LeDGCostModel(desc, checkpoint=checkpoint)
    if desc.name != model.target.name:
        raise TargetError(f"tune_with_predictions: target {desc.name!r}, but the model predicts for "
                          f"{model.target.name!r}")
    runner = PredictedRunner(model)
    return ms.tune_tir(mod, target_of(model.target), str(work_dir), max_trials, builder=runner.builder,
                       runner=runner, cost_model=model, measure_callbacks=[ms.measure_callback.AddToDatabase()],
                       **tune_options)
