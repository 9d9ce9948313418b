"""The one place where tvm-ledg imports TVM.

TVM's Python import paths move between releases (0.27 renamed ``tvm.tir`` to
``tvm.tirx``, moved FLOP counting to ``tvm.s_tir.analysis`` and made Relax
constants ``tvm.ir.expr.Constant``, moved MetaSchedule to ``tvm.s_tir.meta_schedule``
and TensorIR blocks to ``tvm.s_tir.stmt.SBlock``). Every other module imports the
symbols it needs from here, so a TVM upgrade touches one file. The frontends import
torch/onnx and are loaded lazily through the two ``from_*`` wrappers. MetaSchedule
comes with ``import tvm`` at no extra cost; only its ``tensor_intrin`` registry is
slow (40-50 s), and nothing here imports it.
"""

from __future__ import annotations

from typing import Any

import tvm
import tvm_ffi
from tvm import relax, te
from tvm.driver import build as driver_build
from tvm.ir import IRModule, Op
from tvm.ir.expr import Call, GlobalVar, StringImm, TensorLoad, Tuple, TupleGetItem, Var
from tvm.ir.expr import GenericConst as TensorConst  # a tensor constant; IntImm/FloatImm are Constants too
from tvm.ir.prim.expr import Add, Div, FloatImm, FloorDiv, FloorMod, IntImm, Max, Min, Mod, Mul, Sub
from tvm.ir.utils import derived_object
from tvm.ir.type import TupleType
from tvm.relax import (
    ExternFunc,
    Function,
    MatchCast,
    PyExprMutator,
    ShapeExpr,
    TensorType,
)
from tvm.relax.expr_functor import mutator
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.analysis import estimate_tir_flops as _estimate_tir_flops
from tvm.s_tir.stmt import SBlockRealize
from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock
from tvm.sym import Analyzer
from tvm.tirx import BufferStore, For, PrimFunc

__all__ = [
    "TVM_VERSION",
    "tvm",
    "relax",
    "te",
    "IRModule",
    "Op",
    "Call",
    "TensorConst",
    "GlobalVar",
    "StringImm",
    "Tuple",
    "TupleGetItem",
    "Var",
    "FloatImm",
    "IntImm",
    "TupleType",
    "TensorType",
    "ShapeExpr",
    "ExternFunc",
    "Function",
    "MatchCast",
    "PyExprMutator",
    "mutator",
    "PrimFunc",
    "For",
    "SBlockRealize",
    "TensorLoad",
    "BufferStore",
    "ARITH_EXPRS",
    "structural_walk",
    "Analyzer",
    "structural_hash",
    "WalkResult",
    "ms",
    "derived_object",
    "driver_build",
    "RemoveWeightLayoutRewriteBlock",
    "register_global_func",
    "get_global_func",
    "OpNotImplemented",
    "TVMError",
    "make_target",
    "estimate_tir_flops",
    "from_onnx",
    "from_exported_program",
    "from_fx",
]

TVM_VERSION: str = tvm.__version__

#: TVM 0.27 has no ``tvm.error.TVMError``: its errors (InternalError, OpError, ...) derive from RuntimeError.
TVMError = RuntimeError

#: A Ctrl-C that lands in Python code run by TVM's C++ (a ``PyExprMutator``, a Python pass) would cross
#: the FFI as ``RuntimeError('')`` and be reported as a failed import; registered, it stays an interrupt.
tvm_ffi.register_error("KeyboardInterrupt", KeyboardInterrupt)

#: TIR arithmetic nodes counted as one operation each by the program-DAG FLOP estimate.
ARITH_EXPRS = (Add, Sub, Mul, Div, Mod, FloorDiv, FloorMod, Max, Min)

#: ``tvm_ffi.structural_walk`` replaces ``tvm.tir.stmt_functor.post_order_visit`` in 0.27.
structural_walk = tvm_ffi.structural_walk
structural_hash = tvm_ffi.structural_hash
WalkResult = tvm_ffi.WalkResult

register_global_func = tvm.register_global_func
get_global_func = tvm.get_global_func

#: Raised by the ONNX frontend for operators it has no converter for.
OpNotImplemented = tvm.error.OpNotImplemented


def make_target(target: Any = None) -> tvm.target.Target:
    """A ``tvm.target.Target`` from a name, a dict (0.27 rejects ``"llvm -mcpu=..."`` strings) or a Target."""
    if isinstance(target, tvm.target.Target):
        return target
    return tvm.target.Target("llvm" if target is None else target)


def estimate_tir_flops(func: PrimFunc) -> int:
    """TVM's own FLOP count of one PrimFunc (0.27 accepts only an IRModule or a Stmt)."""
    return int(_estimate_tir_flops(IRModule({"main": func})))


def from_onnx(model: Any, shape_dict: dict[str, list[int]] | None, dtype_dict: dict[str, str] | str) -> IRModule:
    """``tvm.relax.frontend.onnx.from_onnx`` (weights become constants)."""
    from tvm.relax.frontend.onnx import from_onnx as _from_onnx

    return _from_onnx(model, shape_dict=shape_dict, dtype_dict=dtype_dict, keep_params_in_input=False)


def from_exported_program(
    program: Any, *, decompose: bool, custom_convert_map: dict[str, Any] | None = None
) -> IRModule:
    """``tvm.relax.frontend.torch.from_exported_program`` with weights as constants and a bare tensor output.

    ``decompose`` is its ``run_ep_decomposition`` (PyTorch's core-ATen decomposition before translation).
    """
    from tvm.relax.frontend.torch import from_exported_program as _from_ep

    return _from_ep(
        program,
        keep_params_as_input=False,
        unwrap_unit_return_tuple=True,
        run_ep_decomposition=decompose,
        custom_convert_map=custom_convert_map,
    )


def from_fx(graph_module: Any, input_info: list[tuple[list[int], str]]) -> IRModule:
    """``tvm.relax.frontend.torch.from_fx`` (weights become constants, a single output is unwrapped)."""
    from tvm.relax.frontend.torch import from_fx as _from_fx

    return _from_fx(graph_module, input_info, keep_params_as_input=False, unwrap_unit_return_tuple=True)
