"""tvm-ledg: predict the latency of TVM Relax models on any hardware target.

Public API (imported lazily so that ``import tvm_ledg`` stays cheap; TVM itself
costs ~5 s to import and is only loaded by the functions that need it):

- ``load_model(source, example_inputs=None, input_shapes=None)`` -> Relax ``IRModule``
- ``to_op_graph(mod, fused=False)`` -> ``OpGraph``; ``fuse_module(mod)`` -> the fused Relax module
- ``load_network(spec)`` -> Relax ``IRModule`` from an ONNX path or a space string (``nb201:...``)
- ``predict_latency(models, targets, checkpoint=None, breakdown=False)`` -> ``[LatencyPrediction]``
- ``predict_table(models, targets, checkpoint=None)`` -> ``PredictionTable`` (``latency_ms`` shaped
  (models, targets), ``records()``, ``to_csv``, ``to_pandas``): thousands of models at once, for search loops
- ``rank_targets(model, targets, checkpoint=None)`` -> ``[LatencyPrediction]``, fastest target first
- ``LeDGCostModel(target)``: a MetaSchedule cost model; ``PredictedRunner(model)``: a runner that predicts
  (more in ``tvm_ledg.tuning``)
"""

from __future__ import annotations

import importlib
from typing import Any

from cost_model.graph import OpGraph, OpNode, TensorSpec
from targets.errors import (
    ArgumentError,
    CheckpointError,
    DataError,
    GraphError,
    LedgError,
    ModelImportError,
    TargetError,
    UnsupportedOperatorError,
)

__version__ = "0.1.0"

_LAZY = {
    "load_model": "tvm_ledg.frontend",
    "to_op_graph": "tvm_ledg.lowering",
    "fuse_module": "tvm_ledg.lowering",
    "normalize_module": "tvm_ledg.normalize",
    "load_network": "tvm_ledg.networks",
    "network_graph": "tvm_ledg.networks",
    "predict_latency": "tvm_ledg.predict",
    "predict_table": "tvm_ledg.predict",
    "PredictionTable": "tvm_ledg.predict",
    "load_predictor": "tvm_ledg.predict",
    "rank_targets": "tvm_ledg.tuning.ranking",
    "LeDGCostModel": "tvm_ledg.tuning.cost_model",
    "PredictedRunner": "tvm_ledg.tuning.runner",
}

__all__ = [
    "OpGraph",
    "OpNode",
    "TensorSpec",
    "LedgError",
    "TargetError",
    "GraphError",
    "ModelImportError",
    "UnsupportedOperatorError",
    "CheckpointError",
    "DataError",
    "ArgumentError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tvm_ledg' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
