"""Bring Relax modules from the ONNX and the PyTorch frontend to one canonical form.

The two frontends disagree on the same network: torch.export keeps
``nn.batch_norm`` (a tuple read through ``TupleGetItem``) where the ONNX exporter
has already folded BatchNorm into the convolution weights, and TVM's ONNX
importer turns ``Clip`` (ReLU6) into two ``call_tir`` kernels where torch gives
``clip``. ``normalize_module`` applies, in order:

1. ``FoldBatchnormToConv2D``: conv2d -> batch_norm becomes conv2d (scaled
   weights) + ``add`` of a per-channel bias, i.e. exactly what the ONNX exporter
   produces. BatchNorm is therefore *folded*, never visible, after a conv.
2. ``DecomposeOpsForInference``: any other BatchNorm (after an add, BN1d...)
   becomes elementwise ``subtract``/``divide``/``multiply``/``add`` with constants.
3. Constant folding. TVM's ``FoldConstant`` compiles every folded operator with
   LLVM (~2-4 s for a tiny ResNet), so constant subgraphs made of the simple
   operators listed in ``_NUMPY_FOLDERS`` (and ``shape_of`` of static tensors,
   the ONNX importer's shape plumbing) are folded with NumPy instead (same IEEE
   float32 arithmetic, structurally equal results, ~100x faster); TVM's pass
   runs only if a constant-only call that NumPy does not cover remains.
4. One spelling per operator: ONNX ``Clip`` kernels (``maximum`` then
   ``minimum`` ``call_tir`` with scalar constant bounds) become ``relax.clip``,
   as from torch; global ``adaptive_avg_pool2d`` becomes ``mean`` over H, W, as
   from ONNX ``GlobalAveragePool``.
5. ``CanonicalizeBindings`` + ``DeadCodeElimination`` drop the leftover
   tuple/alias bindings and unused PrimFuncs.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Callable

import numpy as np

from tvm_ledg._tvm import (
    Call,
    TensorConst,
    FloatImm,
    Function,
    GlobalVar,
    IntImm,
    IRModule,
    Op,
    PyExprMutator,
    ShapeExpr,
    TensorType,
    Var,
    mutator,
    relax,
)

__all__ = ["normalize_module"]

log = logging.getLogger(__name__)


def normalize_module(mod: IRModule) -> IRModule:
    """Canonical inference form of a freshly imported module (see the module docstring)."""
    mod = relax.transform.FoldBatchnormToConv2D()(mod)
    mod = relax.transform.DecomposeOpsForInference()(mod)
    mod = _fold_constants(mod)
    mod = _Canonicalizer(mod).rewrite("main")
    mod = relax.transform.CanonicalizeBindings()(mod)
    return relax.transform.DeadCodeElimination(["main"])(mod)


# --------------------------------------------------------------- constant folding
def _fold_constants(mod: IRModule) -> IRModule:
    """NumPy folding of simple constant subgraphs; TVM's FoldConstant for whatever is left."""
    mod = _NumpyFolder(mod).rewrite("main")
    if _has_constant_only_call(mod["main"]):
        log.debug("constant-only calls left after NumPy folding; running relax.transform.FoldConstant")
        mod = relax.transform.FoldConstant()(mod)
    return mod


def _reshape(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return x.reshape(shape)


def _axes(attrs: Any, name: str) -> tuple[int, ...] | None:
    value = getattr(attrs, name)
    return None if value is None else tuple(int(a) for a in value)


_TAKE_MODES = {"wrap": "wrap", "clip": "clip"}  # Relax "fast" (unchecked) -> NumPy "raise"

# op name -> f(attrs, *numpy args); every function mirrors the Relax operator's semantics.
_NUMPY_FOLDERS: dict[str, Callable[..., np.ndarray]] = {
    "relax.add": lambda attrs, a, b: a + b,
    "relax.subtract": lambda attrs, a, b: a - b,
    "relax.multiply": lambda attrs, a, b: a * b,
    "relax.divide": lambda attrs, a, b: a / b,
    "relax.sqrt": lambda attrs, a: np.sqrt(a),
    "relax.rsqrt": lambda attrs, a: 1 / np.sqrt(a),
    "relax.negative": lambda attrs, a: -a,
    "relax.isnan": lambda attrs, a: np.isnan(a),
    "relax.where": lambda attrs, c, a, b: np.where(c, a, b),
    "relax.reshape": lambda attrs, a, shape: _reshape(a, shape),
    "relax.broadcast_to": lambda attrs, a, shape: np.broadcast_to(a, shape),
    "relax.permute_dims": lambda attrs, a: np.transpose(a, _axes(attrs, "axes")),
    "relax.expand_dims": lambda attrs, a: np.expand_dims(a, _axes(attrs, "axis")),
    "relax.squeeze": lambda attrs, a: np.squeeze(a, _axes(attrs, "axis")),
    "relax.astype": lambda attrs, a: a,  # the cast to the result dtype happens below
    # shape plumbing of the ONNX importer (Gather on a Shape, negative-index fix-ups)
    "relax.shape_to_tensor": lambda attrs, shape: np.asarray(shape, "int64"),
    "relax.take": lambda attrs, a, i: np.take(a, i, axis=attrs.axis, mode=_TAKE_MODES.get(attrs.mode, "raise")),
    "relax.less": lambda attrs, a, b: a < b,
    "relax.less_equal": lambda attrs, a, b: a <= b,
    "relax.greater": lambda attrs, a, b: a > b,
    "relax.greater_equal": lambda attrs, a, b: a >= b,
    "relax.equal": lambda attrs, a, b: a == b,
    "relax.not_equal": lambda attrs, a, b: a != b,
}
# integer division and roots round differently in NumPy; leave them to TVM
_FLOAT_ONLY = {"relax.divide", "relax.sqrt", "relax.rsqrt"}


def _static_tensor_type(ty: Any) -> tuple[tuple[int, ...], str] | None:
    """``(shape, dtype)`` of a fully static tensor type, else None."""
    if not isinstance(ty, TensorType) or ty.shape is None:
        return None
    try:
        shape = tuple(int(d) for d in ty.shape.values)
    except (TypeError, AttributeError):
        return None
    return shape, str(ty.dtype)


@mutator
class _NumpyFolder(PyExprMutator):
    """Replaces calls of ``_NUMPY_FOLDERS`` ops whose inputs are all constants by their value."""

    def __init__(self, mod: IRModule) -> None:
        super().__init__(mod)
        self.mod_ = mod
        self.folded = 0

    def rewrite(self, name: str) -> IRModule:
        func = self.visit_expr(self.mod_[name])
        if self.folded:
            log.debug("folded %d constant calls with NumPy", self.folded)
        return _replace(self.mod_, name, func)

    def visit_dataflow_var_(self, var: Var) -> Any:
        new = super().visit_dataflow_var_(var)
        bound = self.lookup_binding(new)
        return bound if isinstance(bound, (TensorConst, ShapeExpr)) and _literal(bound) is not None else new

    def visit_call_(self, call: Call) -> Any:
        call = self.visit_expr_post_order(call)
        if not isinstance(call.op, Op):
            return call
        if call.op.name == "relax.shape_of":  # of a static tensor: a shape literal
            static = _static_tensor_type(call.args[0].ty)
            return call if static is None else relax.ShapeExpr(list(static[0]))
        if call.op.name not in _NUMPY_FOLDERS:
            return call
        result_type = _static_tensor_type(call.ty)
        if result_type is None or (call.op.name in _FLOAT_ONLY and not result_type[1].startswith(("float", "bfloat"))):
            return call
        args = []
        for arg in call.args:
            value = _literal(arg)
            if value is None:
                return call
            args.append(value)
        try:
            with np.errstate(all="ignore"):
                out = np.asarray(_NUMPY_FOLDERS[call.op.name](call.attrs, *args))
        except (ValueError, TypeError, IndexError) as exc:  # leave anything NumPy disagrees with to TVM
            log.debug("NumPy cannot fold %s: %s", call.op.name, exc)
            return call
        shape, dtype = result_type
        if out.shape != shape:
            return call
        self.folded += 1
        return relax.const(out.astype(dtype, order="C"), dtype)  # (ascontiguousarray makes 0-d arrays 1-d)


def _literal(arg: Any) -> Any:
    """NumPy value of a constant, tuple of a static ShapeExpr, scalar of a PrimValue, else None."""
    if isinstance(arg, TensorConst):
        return arg.value.numpy()
    if isinstance(arg, ShapeExpr):
        try:
            return tuple(int(v) for v in arg.values)
        except TypeError:
            return None
    if isinstance(arg, (IntImm, FloatImm)):
        return np.asarray(arg.value, dtype=str(arg.ty.dtype))
    return None


def _replace(mod: IRModule, name: str, func: Function) -> IRModule:
    """A copy of ``mod`` whose function ``name`` is ``func`` (module attrs kept)."""
    out = IRModule(dict(mod.functions_items()), attrs=mod.attrs)
    out[name] = func
    return out


def _has_constant_only_call(func: Function) -> bool:
    """True when some operator call takes only constants (and shape/scalar literals)."""
    for block in func.body.blocks:
        for binding in block.bindings:
            value = binding.value
            if not (isinstance(value, Call) and isinstance(value.op, Op)):
                continue
            if value.op.name == "relax.shape_of" and _static_tensor_type(value.args[0].ty) is not None:
                return True
            tensors = [a for a in value.args if not isinstance(a, (ShapeExpr, IntImm, FloatImm))]
            if tensors and all(isinstance(a, TensorConst) for a in tensors):
                return True
    return False


# ------------------------------------------------------------------ operator spellings
_TRAILING_DIGITS = re.compile(r"\d+$")


@mutator
class _Canonicalizer(PyExprMutator):
    """One spelling per operator where the frontends differ.

    - ``minimum(maximum(x, lo), hi)`` kernels from TVM's ONNX ``Clip`` -> ``relax.clip(x, lo, hi)``;
    - ``nn.adaptive_avg_pool2d(x, 1)`` (torch without decomposition) -> ``mean(x, [2, 3], keepdims)``,
      as from ONNX ``GlobalAveragePool`` and from torch's own decomposition.
    """

    def __init__(self, mod: IRModule) -> None:
        super().__init__(mod)
        self.mod_ = mod
        self.rewritten = 0

    def rewrite(self, name: str) -> IRModule:
        func = self.visit_expr(self.mod_[name])
        return _replace(self.mod_, name, func) if self.rewritten else self.mod_

    def visit_call_(self, call: Call) -> Any:
        call = self.visit_expr_post_order(call)
        if isinstance(call.op, Op) and call.op.name == "relax.nn.adaptive_avg_pool2d":
            return self._global_pool(call)
        hi = self._scalar_kernel_arg(call, "minimum")
        if hi is None:
            return call
        inner = call.args[1].fields[0]
        inner_call = self.lookup_binding(inner) if isinstance(inner, Var) else inner
        lo = self._scalar_kernel_arg(inner_call, "maximum")
        if lo is None:
            return call
        x = inner_call.args[1].fields[0]
        if _static_tensor_type(x.ty) != _static_tensor_type(call.ty):
            return call
        self.rewritten += 1
        dtype = _static_tensor_type(call.ty)[1]
        return relax.op.clip(x, relax.prim_value(FloatImm(dtype, lo)), relax.prim_value(FloatImm(dtype, hi)))

    def _global_pool(self, call: Call) -> Any:
        attrs = call.attrs
        size = None if attrs.output_size is None else [int(v) for v in attrs.output_size]
        if size not in ([1], [1, 1]) or attrs.layout != "NCHW" or (attrs.out_layout or "NCHW") != "NCHW":
            return call
        self.rewritten += 1
        return relax.op.mean(call.args[0], axis=[2, 3], keepdims=True)

    def _scalar_kernel_arg(self, call: Any, kernel: str) -> float | None:
        """The scalar constant bound of ``call_tir(<kernel>N, (x, c))``, else None."""
        if not (isinstance(call, Call) and isinstance(call.op, Op) and call.op.name == "relax.call_tir"):
            return None
        callee = call.args[0]
        if not isinstance(callee, GlobalVar) or _TRAILING_DIGITS.sub("", callee.name_hint) != kernel:
            return None
        args = call.args[1].fields
        if len(args) != 2 or not isinstance(args[1], TensorConst):
            return None
        bound = args[1].value.numpy()
        if bound.shape != () or not np.issubdtype(bound.dtype, np.floating):
            return None
        return float(bound)
