"""tvm-ledg as TVM global functions, callable from any language TVM binds (C++, Rust, compiled Relax).

``register_globals()`` registers (``override=True``, so calling it twice is harmless):

``tvm_ledg.predict_latency(model, target, checkpoint="") -> float``
    Predicted latency in ms of one model on one target. ``model``: an ONNX path,
    a space string (``nb201:...``) or a Relax ``IRModule``; ``target``: a target
    name, alias or descriptor YAML path; ``checkpoint``: a checkpoint directory,
    ``""`` for the shipped one.

``tvm_ledg.rank_targets(model, targets, checkpoint="", top=5) -> str``
    ``targets`` (an array of strings) ordered fastest first, as a JSON array of
    objects ``{"target", "latency_ms", "std_log", "operators": [{"id", "op", "ms"}]}``
    (``std_log`` is null when the checkpoint has no variance head; ``top``
    operators per target).

From C++: ``tvm::ffi::Function::GetGlobal("tvm_ledg.predict_latency").value()(model, target, "")``
(the Python interpreter that called ``register_globals`` must stay alive).
Errors (unknown target, unreadable model) are raised as TVM errors with tvm-ledg's message.
"""

from __future__ import annotations

import json
from typing import Any

from tvm_ledg._tvm import register_global_func

__all__ = ["PREDICT_LATENCY", "RANK_TARGETS", "register_globals"]

PREDICT_LATENCY = "tvm_ledg.predict_latency"
RANK_TARGETS = "tvm_ledg.rank_targets"


def _model(model: Any) -> Any:
    return str(model) if isinstance(model, str) else model  # FFI strings -> str; IRModules pass through


def _predict_latency(model: Any, target: str, checkpoint: str = "") -> float:
    from tvm_ledg.predict import predict_latency

    result = predict_latency([_model(model)], [str(target)], checkpoint=str(checkpoint) or None)
    return float(result[0].latency_ms)


def _rank_targets(model: Any, targets: Any, checkpoint: str = "", top: int = 5) -> str:
    from tvm_ledg.tuning.ranking import rank_targets

    ranked = rank_targets(_model(model), [str(t) for t in targets], checkpoint=str(checkpoint) or None,
                          top_ops=int(top))
    return json.dumps([{"target": r.target, "latency_ms": r.latency_ms, "std_log": r.std_log,
                        "operators": [{"id": i, "op": op, "ms": ms} for i, op, ms in r.operators]} for r in ranked])


def register_globals() -> None:
    """Register ``tvm_ledg.predict_latency`` and ``tvm_ledg.rank_targets`` with TVM."""
    register_global_func(PREDICT_LATENCY, _predict_latency, override=True)
    register_global_func(RANK_TARGETS, _rank_targets, override=True)
