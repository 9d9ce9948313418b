"""tvm-ledg in TVM's tuning stack (MetaSchedule).

- ``LeDGCostModel``: LeDG-Former as a MetaSchedule cost model (``cost_model=``); ``PROGRAM_CHECKPOINT``:
  the shipped pre-trained program-level checkpoint for it
- ``PredictedRunner`` / ``tune_with_predictions``: tuning with predicted instead of measured run times
- ``make_builder`` / ``make_runner``: a builder/runner pair that works on CPU boxes
- ``program_graph``: scheduled TIR PrimFunc -> program DAG (``OpGraph``)
- ``WORKLOADS`` / ``get_workload``: the tuning workload suite (single kernels from the zoo families)
- ``database_records`` / ``run_secs_in_order``: a MetaSchedule JSON database as program records / run times;
  ``best_schedule`` / ``schedule_record``: a run's fastest record kept as JSON and read back
- ``tune`` / ``measure_records`` / ``search_cost_model``: measured tuning runs with MetaSchedule's own cost
  models, and chosen schedules timed again (``MachineBusy`` when the machine stays busy)
- ``rank_targets``: targets ordered by predicted latency; ``register_globals``: TVM global functions

Exports load lazily: ``import tvm_ledg.tuning`` imports neither TVM nor torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "LeDGCostModel": "tvm_ledg.tuning.cost_model",
    "OnlineConfig": "tvm_ledg.tuning.cost_model",
    "PROGRAM_CHECKPOINT": "tvm_ledg.tuning.cost_model",
    "PredictedRunner": "tvm_ledg.tuning.runner",
    "tune_with_predictions": "tvm_ledg.tuning.runner",
    "make_builder": "tvm_ledg.tuning.environment",
    "make_runner": "tvm_ledg.tuning.environment",
    "target_of": "tvm_ledg.tuning.environment",
    "program_graph": "tvm_ledg.tuning.program",
    "WORKLOADS": "tvm_ledg.tuning.workloads",
    "get_workload": "tvm_ledg.tuning.workloads",
    "list_workloads": "tvm_ledg.tuning.workloads",
    "database_records": "tvm_ledg.tuning.records",
    "run_secs_in_order": "tvm_ledg.tuning.records",
    "best_schedule": "tvm_ledg.tuning.records",
    "schedule_record": "tvm_ledg.tuning.records",
    "tune": "tvm_ledg.tuning.search",
    "measure_records": "tvm_ledg.tuning.search",
    "search_cost_model": "tvm_ledg.tuning.search",
    "quiet_metaschedule": "tvm_ledg.tuning.search",
    "rank_targets": "tvm_ledg.tuning.ranking",
    "register_globals": "tvm_ledg.tuning.globals",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tvm_ledg.tuning' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
