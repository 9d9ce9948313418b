"""Relax module -> operator DAG (``cost_model.graph.OpGraph``), unfused or fused.

Unfused view: one node per operator binding of ``mod["main"]`` (Relax ops,
plus any ``call_tir`` a frontend emitted). Bookkeeping bindings (``Tuple``,
``TupleGetItem``, var aliases, constants) and pure shape plumbing (calls that
return shapes or scalars, ``shape_of``...) are not nodes; data dependencies are
traced through them, so edges always connect operators.

Naming: a Relax operator ``relax.nn.conv2d`` is ``nn.conv2d`` (the ``relax.``
prefix stripped); a ``call_tir`` node is named after its PrimFunc with TVM's
de-duplication digits removed (``maximum3`` -> ``maximum``, ``fused_conv2d1_add_relu2``
-> ``fused_conv2d_add_relu``).

Fused view: the module goes through ``LegalizeOps -> AnnotateTIROpPattern ->
FoldConstant -> FuseOps -> FuseTIR`` under the target; one node per kernel
(``call_tir``). Members are mapped back to the unfused graph structurally, not by
binding names (``FuseOps`` renames each group's output to ``gv``): ``LegalizeOps``
keeps the binding Vars, so every legalized call is keyed by (callee, the
unfused-graph identity of each argument: producing node and output index, graph
input or constant object); the calls inside each fused function are resolved
with the same key from the arguments of the call site.

FLOPs/MACs follow ``tvm_ledg.op_costs`` (FLOPs = 2*MACs for conv/matmul,
1 per output element for elementwise ops...); ``call_tir`` nodes of the
unfused view use TVM's ``estimate_tir_flops`` on their PrimFunc. A fused
kernel's FLOPs, MACs and params are the sums over its members, so the totals of
both views agree; its bytes are those of the kernel's own inputs and outputs.

Canonical form, so that the content hash depends on the network only (not on
weights, binding names, binding order or frontend spelling):

- node order: post-order depth-first from the function outputs, arguments left
  to right (a pure function of the dataflow);
- commutative binary ops list their constant operand last (``add(bias, x)`` ==
  ``add(x, bias)``);
- negative axes are made positive (and reduction axes sorted), an unset
  ``out_dtype`` is the output dtype, floats keep 7 significant digits (float32
  and float64 ``1e-5`` agree);
- non-tensor arguments (``clip`` bounds, ``reshape`` shapes) are in ``attrs["args"]``.

One module, although over 400 lines: both views share the value model (``_Tensor``
refs) and the binding walk, and the fused view's member keys are only correct
while both are built by exactly the same walk.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from cost_model.graph import OpGraph, OpNode, TensorSpec, canonical_order as _canonical_order
from targets.errors import ModelImportError
from tvm_ledg import op_costs
from tvm_ledg._tvm import (
    TVM_VERSION,
    TVMError,
    Call,
    ExternFunc,
    FloatImm,
    Function,
    GlobalVar,
    IntImm,
    IRModule,
    MatchCast,
    Op,
    PrimFunc,
    ShapeExpr,
    StringImm,
    TensorConst,
    TensorType,
    Tuple,
    TupleGetItem,
    TupleType,
    Var,
    estimate_tir_flops,
    make_target,
    relax,
    tvm,
)

__all__ = ["to_op_graph", "fuse_module", "FRONTEND_ATTR", "SOURCE_ATTR"]

log = logging.getLogger(__name__)

#: IRModule attributes set by ``tvm_ledg.frontend.load_model`` and copied into ``OpGraph.meta``.
FRONTEND_ATTR = "tvm_ledg.frontend"
SOURCE_ATTR = "tvm_ledg.source"

_CALL_KERNEL_OPS = {"relax.call_tir", "relax.call_tir_inplace", "relax.call_dps_packed"}
_PLUMBING_OPS = {"shape_of", "shape_to_tensor", "tensor_to_shape", "null_value", "hint_on_device"}
_DEDUP_DIGITS = re.compile(r"(?<=[a-z])\d+(?=_|$)")


# ------------------------------------------------------------------ values
@dataclass(frozen=True)
class _Tensor:
    """A tensor flowing through the function.

    ``ref`` identifies it in unfused-graph terms (``("node", id, k)``,
    ``("input", i)``, ``("const", handle)``) and keys the fused-member lookup;
    ``producers`` are the node ids of the graph being built that it depends on.
    """

    spec: TensorSpec | None
    ref: tuple
    producers: frozenset[int] = frozenset()
    weight: bool = False


@dataclass(frozen=True)
class _Other:
    """A non-tensor value (shape, scalar, string, opaque object) and what it was computed from."""

    literal: Any = None
    producers: frozenset[int] = frozenset()
    ref: tuple = ("other",)


Value = Any  # _Tensor | _Other | tuple of Value


def _flatten(value: Value) -> list[_Tensor | _Other]:
    if isinstance(value, tuple):
        return [leaf for v in value for leaf in _flatten(v)]
    return [value]


def _producers(values: Iterable[_Tensor | _Other]) -> frozenset[int]:
    out: frozenset[int] = frozenset()
    for v in values:
        out |= v.producers
    return out


def _ordered_producers(values: Iterable[_Tensor | _Other]) -> list[int]:
    seen: list[int] = []
    for v in values:
        for p in sorted(v.producers):
            if p not in seen:
                seen.append(p)
    return seen


# ------------------------------------------------------------------ types and attrs
def _spec(ty: Any) -> TensorSpec | None:
    """TensorSpec of a Relax tensor type (``-1`` for symbolic dims), None if the rank is unknown."""
    if not isinstance(ty, TensorType) or ty.shape is None:
        return None
    dims = []
    for d in ty.shape.values:
        dims.append(int(d.value) if isinstance(d, IntImm) else -1)
    return TensorSpec(tuple(dims), str(ty.dtype))


def _output_specs(ty: Any) -> list[TensorSpec] | None:
    """Specs of every tensor in a (possibly nested tuple) type; None if it holds no tensor."""
    if isinstance(ty, TensorType):
        spec = _spec(ty)
        return [spec] if spec is not None else []
    if isinstance(ty, TupleType):
        out: list[TensorSpec] = []
        for f in ty.fields:
            sub = _output_specs(f)
            if sub is None:
                return None
            out.extend(sub)
        return out
    return None


def _jsonable(value: Any) -> Any:
    """Attribute value -> JSON value (floats to float32 precision, non-finite ones and unknown objects ``str``)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, str)):  # also tvm_ffi's str-derived dtype and String
        return int(value) if isinstance(value, int) else str(value)
    if isinstance(value, float):  # 7 significant digits: float32 1e-5 and float64 1e-5 agree
        return float(f"{value:.7g}") if math.isfinite(value) else str(value)
    if isinstance(value, (IntImm, FloatImm)):
        return _jsonable(value.value)
    if isinstance(value, StringImm):
        return str(value.value)
    if isinstance(value, ShapeExpr):
        return [_jsonable(v) for v in value.values]
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or (hasattr(value, "__len__") and hasattr(value, "__getitem__")):
        return [_jsonable(v) for v in value]
    return str(value)


def _attrs(attrs: Any) -> dict[str, Any]:
    """All fields of a TVM attrs object, read generically from its FFI type info."""
    if attrs is None:
        return {}
    out: dict[str, Any] = {}
    info = getattr(type(attrs), "__tvm_ffi_type_info__", None)
    while info is not None and info.type_key not in ("ir.Attrs", "ffi.Object"):
        for f in info.fields:
            out.setdefault(f.name, _jsonable(getattr(attrs, f.name)))
        info = info.parent_type_info
    return out


_COMMUTATIVE = {
    "add", "multiply", "maximum", "minimum", "equal", "not_equal", "logical_and", "logical_or", "logical_xor",
    "bitwise_and", "bitwise_or", "bitwise_xor",
}
# ops whose "axis"/"axes" index the first input and form an unordered set / a single position
_AXIS_SET_OPS = {
    "sum", "mean", "max", "min", "prod", "variance", "std", "argmax", "argmin", "nn.layer_norm", "nn.rms_norm",
}
_AXIS_OPS = {"nn.softmax", "nn.log_softmax", "concat", "take", "split", "cumsum", "cumprod", "squeeze", "flip"}


def _canonical_attrs(
    op: str, attrs: dict[str, Any], inputs: list[TensorSpec], outputs: list[TensorSpec]
) -> dict[str, Any]:
    """Spell out defaults the frontends disagree on: negative axes, unset ``out_dtype``."""
    attrs = dict(attrs)
    if "out_dtype" in attrs and attrs["out_dtype"] in (None, "", "void") and outputs:
        attrs["out_dtype"] = outputs[0].dtype  # "same as the input" (ONNX leaves it unset, torch sets it)
    if (op in _AXIS_SET_OPS or op in _AXIS_OPS) and inputs:
        rank = len(inputs[0].shape)
        for key in ("axis", "axes"):
            value = attrs.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                attrs[key] = value % rank if rank else value
            elif isinstance(value, list) and all(isinstance(a, int) for a in value) and rank:
                axes = [a % rank for a in value]
                attrs[key] = sorted(axes) if op in _AXIS_SET_OPS else axes
    return attrs


def _canonical_kernel_name(name: str) -> str:
    """``fused_conv2d1_add_relu2`` -> ``fused_conv2d_add_relu``: drop TVM's de-duplication suffixes."""
    return _DEDUP_DIGITS.sub("", name)


def _handle(obj: Any) -> int:
    return int(obj.__chandle__())


# ------------------------------------------------------------------ function walk
@dataclass
class _Walk:
    """Shared machinery to walk a Relax function's bindings with an environment of values."""

    env: dict[Any, Value] = field(default_factory=dict)

    def kernel_calls(self, func: Function, module: IRModule) -> Iterator[tuple[Any, Call, str, Any, list[Value]]]:
        """Walk ``func``'s bindings: resolve non-calls and plumbing into ``env``, yield the other calls.

        Yields ``(var, call, callee name, callee function, resolved args)``; the caller binds ``var``.
        """
        for binding in _bindings(func):
            call = self.operator_call(binding, module)
            if call is not None:
                yield (binding.var, binding.value, *call)

    def operator_call(self, binding: Any, module: IRModule) -> tuple[str, Any, list[Value]] | None:
        """``(callee name, callee function, resolved args)`` when ``binding`` calls an operator or kernel.

        Anything else is bound in ``env`` here: a non-call (or ``MatchCast``) to its resolved value, a
        plumbing call to a non-tensor value that keeps its arguments' producers, so that data
        dependencies are traced through it.
        """
        var, value = binding.var, binding.value
        if not isinstance(value, Call) or isinstance(binding, MatchCast):
            self.env[var] = self.resolve(value)
            return None
        callee, callee_func = _callee_name(value, module)
        args = [self.resolve(a) for a in _call_args(value)]
        if _is_plumbing(value, callee):
            self.env[var] = _Other(producers=_producers(x for a in args for x in _flatten(a)))
            return None
        return callee, callee_func, args

    def resolve(self, expr: Any) -> Value:
        if isinstance(expr, Var):
            return self.env.get(expr, _Other())
        if isinstance(expr, TensorConst):
            return _Tensor(_spec(expr.ty), ("const", _handle(expr)))
        if isinstance(expr, Tuple):
            return tuple(self.resolve(f) for f in expr.fields)
        if isinstance(expr, TupleGetItem):
            inner = self.resolve(expr.tuple_value)
            if isinstance(inner, tuple):
                return inner[expr.index]
            return _Other(producers=_producers(_flatten(inner)))
        if isinstance(expr, (IntImm, FloatImm, StringImm, ShapeExpr)):
            return _Other(literal=_jsonable(expr))
        return _Other()

    def bind_params(self, func: Function, num_input: int | None = None) -> list[TensorSpec]:
        """Bind main's parameters: the first ``num_input`` are inputs, the rest weights."""
        inputs: list[TensorSpec] = []
        for i, param in enumerate(func.params):
            spec = _spec(param.ty)
            is_weight = num_input is not None and i >= num_input
            self.env[param] = _Tensor(spec, ("input", i), weight=is_weight)
            if spec is not None and not is_weight:
                inputs.append(spec)
        return inputs


class _GraphBuilder(_Walk):
    """A walk that emits graph nodes: ``nodes`` in creation order and, per node, the ids it depends on."""

    def __init__(self) -> None:
        super().__init__()
        self.nodes: list[OpNode] = []
        self.arg_producers: list[list[int]] = []

    def _append_node(self, leaves: list[_Tensor | _Other], node: OpNode) -> int:
        """Add ``node`` (its byte counts from its own inputs and outputs) fed by the values ``leaves``."""
        node.bytes_read = sum(s.nbytes for s in node.inputs)
        node.bytes_written = sum(s.nbytes for s in node.outputs)
        self.nodes.append(node)
        self.arg_producers.append(_ordered_producers(leaves))
        return node.id


def _bindings(func: Function) -> Iterable[Any]:
    body = func.body
    if not isinstance(body, relax.SeqExpr):
        return []
    return [b for block in body.blocks for b in block.bindings]


def _callee_name(call: Call, mod: IRModule) -> tuple[str, Any]:
    """(name, PrimFunc or relax Function or None) of what ``call`` invokes."""
    if isinstance(call.op, Op):
        if call.op.name in _CALL_KERNEL_OPS and call.args and isinstance(call.args[0], (GlobalVar, ExternFunc)):
            target = call.args[0]
            if isinstance(target, GlobalVar):
                func = mod[target] if target in mod.get_global_vars() else None
                return target.name_hint, func
            return str(target.global_symbol), None
        return call.op.name, None
    if isinstance(call.op, GlobalVar):
        return call.op.name_hint, mod[call.op] if call.op in mod.get_global_vars() else None
    return type(call.op).__name__, None


def _call_args(call: Call) -> list[Any]:
    """The data arguments of a call (the tuple of a ``call_tir``, else all args)."""
    if isinstance(call.op, Op) and call.op.name in _CALL_KERNEL_OPS and len(call.args) >= 2:
        packed = call.args[1]
        rest = list(call.args[2:])
        return (list(packed.fields) if isinstance(packed, Tuple) else [packed]) + rest
    return list(call.args)


def _key(callee: str, args: list[Value]) -> tuple:
    return (callee, tuple(leaf.ref for leaf in (x for a in args for x in _flatten(a))))


def _loose_key(key: tuple) -> tuple:
    """The key with constant identities dropped (fallback when a pass copied a constant)."""
    return (key[0], tuple(("const",) if r[0] == "const" else r for r in key[1]))


# ------------------------------------------------------------------ unfused graph
class _UnfusedBuilder(_GraphBuilder):
    def __init__(self, mod: IRModule) -> None:
        super().__init__()
        self.mod = mod
        self.var_node: dict[Any, int] = {}
        self.tir_flops: dict[int, int] = {}

    def build(self, num_input: int | None) -> tuple[list[TensorSpec], list[int]]:
        """Walk main; returns the graph inputs and the node ids producing the outputs."""
        main = self.mod["main"]
        inputs = self.bind_params(main, num_input)
        for binding in _bindings(main):
            self.visit(binding)
        return inputs, _ordered_producers(_flatten(self.resolve(main.body.body)))

    def visit(self, binding: Any) -> None:
        var, value = binding.var, binding.value
        if isinstance(binding, MatchCast) or not isinstance(value, (relax.If, relax.SeqExpr, Function)):
            call = self.operator_call(binding, self.mod)
            if call is None:
                return
            callee, func, args = call
            op = _canonical_kernel_name(callee) if isinstance(func, PrimFunc) else callee.removeprefix("relax.")
            node_id = self._add_node(op, var.name, _attrs(value.attrs), args, _output_specs(value.ty) or [], func)
        else:  # If / nested SeqExpr / closure: a generic node depending on its free variables
            free = relax.analysis.free_vars(value)
            args = [self.resolve(v) for v in free]
            outputs = _output_specs(var.ty) or []
            node_id = self._add_node(type(value).__name__.lower(), var.name, {}, args, outputs, None)
        self.var_node[var] = node_id
        self.env[var] = _refs_value(("node", node_id), var.ty, frozenset({node_id}))

    def _add_node(
        self, op: str, name: str, attrs: dict[str, Any], args: list[Value], outputs: list[TensorSpec], func: Any
    ) -> int:
        leaves = [x for a in args for x in _flatten(a)]
        if op in _COMMUTATIVE:  # add(bias, x) and add(x, bias) are the same node: constants last
            leaves.sort(key=lambda v: isinstance(v, _Tensor) and (v.ref[0] == "const" or v.weight))
        tensors = [t for t in leaves if isinstance(t, _Tensor)]
        literals = [x.literal for x in leaves if isinstance(x, _Other) and x.literal is not None]
        if literals:
            attrs = {**attrs, "args": literals}
        inputs = [t.spec for t in tensors if t.spec is not None]
        attrs = _canonical_attrs(op, attrs, inputs, outputs)
        params = sum(t.spec.numel for t in tensors if t.spec is not None and (t.ref[0] == "const" or t.weight))
        if isinstance(func, PrimFunc):
            cost = op_costs.OpCost(self._tir_flops(func), known=True)
        else:
            cost = op_costs.estimate(op, attrs, inputs, outputs)
            if not cost.known:
                log.debug("no FLOP formula for operator %s; using %d", op, cost.flops)
        return self._append_node(leaves, OpNode(id=len(self.nodes), op=op, name=name, attrs=attrs, inputs=inputs,
                                                outputs=outputs, flops=cost.flops, macs=cost.macs, params=params))

    def _tir_flops(self, func: PrimFunc) -> int:
        key = _handle(func)
        if key not in self.tir_flops:
            try:
                self.tir_flops[key] = estimate_tir_flops(func)
            except (TVMError, TypeError, ValueError) as exc:  # dynamic or opaque PrimFunc
                log.debug("estimate_tir_flops failed: %s", exc)
                self.tir_flops[key] = 0
        return self.tir_flops[key]


def _reorder(
    nodes: list[OpNode], arg_producers: list[list[int]], outputs: list[int]
) -> tuple[list[OpNode], dict[int, int]]:
    """Renumber nodes in canonical order; returns the nodes and old id -> new id."""
    order = _canonical_order(arg_producers, outputs)
    new_id = {old: new for new, old in enumerate(order)}
    out = []
    for old in order:
        node = nodes[old]
        node.id = new_id[old]
        out.append(node)
    return out, new_id


def _remap_edges(arg_producers: list[list[int]], new_id: dict[int, int]) -> list[tuple[int, int]]:
    return sorted({(new_id[p], new_id[i]) for i, ps in enumerate(arg_producers) for p in ps})


# ------------------------------------------------------------------ fused graph
def fuse_module(mod: IRModule, target: Any = None) -> IRModule:
    """``LegalizeOps -> AnnotateTIROpPattern -> FoldConstant -> FuseOps -> FuseTIR`` under ``target``.

    The result is what MetaSchedule's ``tune_relax`` expects (one task per fused kernel).
    """
    return _fuse_stages(mod, target)[2]


def _fuse_stages(mod: IRModule, target: Any) -> tuple[IRModule, IRModule, IRModule]:
    """(legalized before FuseOps, after FuseOps, after FuseTIR)."""
    with make_target(target):
        legalized = tvm.transform.Sequential(
            [relax.transform.LegalizeOps(), relax.transform.AnnotateTIROpPattern(), relax.transform.FoldConstant()]
        )(mod)
        grouped = relax.transform.FuseOps()(legalized)
        fused = relax.transform.FuseTIR()(grouped)
    return legalized, grouped, fused


def _is_plumbing(call: Call, callee: str) -> bool:
    """Calls that compute shapes/scalars (no tensor output) or only move shape information."""
    return _output_specs(call.ty) is None or callee.removeprefix("relax.") in _PLUMBING_OPS


class _MemberTable(_Walk):
    """Every call of the legalized module (before FuseOps), keyed by callee and argument identities.

    Entries map to ``("node", id)`` for calls that are unfused-graph nodes (same
    binding Var, which LegalizeOps keeps) and ``("extra", handle)`` for calls a
    legalization added. ``pop`` hands each entry out once: identical keys
    (same kernel on the same inputs) are interchangeable.
    """

    def __init__(self, legalized: IRModule, var_node: dict[Any, int], num_input: int | None) -> None:
        super().__init__()
        self.entries: list[tuple] = []
        self.used: list[bool] = []
        self.strict: dict[tuple, list[int]] = {}
        self.loose: dict[tuple, list[int]] = {}
        main = legalized["main"]
        self.bind_params(main, num_input)
        for var, _, callee, _, args in self.kernel_calls(main, legalized):
            key = _key(callee, args)
            node_id = var_node.get(var)
            base = ("node", node_id) if node_id is not None else ("extra", _handle(var))
            self.strict.setdefault(key, []).append(len(self.entries))
            self.loose.setdefault(_loose_key(key), []).append(len(self.entries))
            self.entries.append(base)
            self.used.append(False)
            self.env[var] = _refs_value(base, var.ty)

    def pop(self, key: tuple) -> tuple | None:
        for candidates in (self.strict.get(key, []), self.loose.get(_loose_key(key), [])):
            for i in candidates:
                if not self.used[i]:
                    self.used[i] = True
                    return self.entries[i]
        return None


def _refs_value(base: tuple, ty: Any, producers: frozenset[int] = frozenset()) -> Value:
    counter = iter(range(1 << 30))

    def make(t: Any) -> Value:
        if isinstance(t, TupleType):
            return tuple(make(f) for f in t.fields)
        return _Tensor(_spec(t), (*base, next(counter)), producers)

    return make(ty)


class _FusedBuilder(_GraphBuilder):
    def __init__(self, grouped: IRModule, fused: IRModule, table: _MemberTable, unfused: list[OpNode]) -> None:
        super().__init__()
        self.grouped, self.fused, self.table, self.unfused = grouped, fused, table, unfused

    def build(self, num_input: int | None) -> list[int]:
        """One node per kernel call of the FuseTIR module; returns the ids producing the outputs."""
        kernels = self._members()
        main = self.fused["main"]
        self.env = {}
        self.bind_params(main, num_input)
        position = 0
        for var, value, callee, func, args in self.kernel_calls(main, self.fused):
            expected, members = kernels[position] if position < len(kernels) else ("<none>", [])
            position += 1
            if expected != callee:
                raise ModelImportError(f"fused kernel {position}: FuseTIR gives {callee!r}, FuseOps gave {expected!r}")
            op = _canonical_kernel_name(callee) if isinstance(func, PrimFunc) else callee.removeprefix("relax.")
            node_id = self._add_kernel(op, callee, args, _output_specs(value.ty) or [], members)
            self.env[var] = _refs_value(("node", node_id), value.ty, frozenset({node_id}))
        return _ordered_producers(_flatten(self.resolve(main.body.body)))

    def _members(self) -> list[tuple[str, list[int]]]:
        """(kernel name, unfused member ids) for each kernel call of the grouped module's main."""
        kernels: list[tuple[str, list[int]]] = []
        walk = _Walk()
        main = self.grouped["main"]
        walk.bind_params(main)
        for var, value, callee, func, args in walk.kernel_calls(main, self.grouped):
            members: list[int] = []
            if isinstance(func, Function):  # a FuseOps group: resolve its inner calls from the call site
                inner = _Walk({p: a for p, a in zip(func.params, args)})
                for b in _bindings(func):
                    if isinstance(b.value, Call):
                        inner_args = [inner.resolve(a) for a in _call_args(b.value)]
                        inner.env[b.var] = self._lookup(b.value, inner_args, b.var.ty, members, self.grouped)
                    else:
                        inner.env[b.var] = inner.resolve(b.value)
                walk.env[var] = inner.resolve(func.body.body)
            else:
                walk.env[var] = self._lookup(value, args, var.ty, members, self.grouped)
            kernels.append((callee, members))
        return kernels

    def _lookup(self, call: Call, args: list[Value], ty: Any, members: list[int], mod: IRModule) -> Value:
        callee, _ = _callee_name(call, mod)
        base = self.table.pop(_key(callee, args))
        if base is None:
            log.warning("fused view: cannot map %s back to the unfused graph", callee)
            return _Other()
        if base[0] == "node":
            members.append(base[1])
        return _refs_value(base, ty)

    def _add_kernel(self, op: str, name: str, args: list[Value], outputs: list[TensorSpec], members: list[int]) -> int:
        leaves = [x for a in args for x in _flatten(a)]
        inputs = [t.spec for t in leaves if isinstance(t, _Tensor) and t.spec is not None]
        member_nodes = [self.unfused[m] for m in members]
        anchor = max(member_nodes, key=lambda n: (n.macs, n.flops), default=None)
        attrs = {} if anchor is None else {"anchor": anchor.op, "anchor_attrs": anchor.attrs}
        return self._append_node(leaves, OpNode(
            id=len(self.nodes),
            op=op,
            name=name,
            attrs=attrs,
            inputs=inputs,
            outputs=outputs,
            flops=sum(n.flops for n in member_nodes),
            macs=sum(n.macs for n in member_nodes),
            params=sum(n.params for n in member_nodes),
            members=[n.op for n in member_nodes],
            member_ids=list(members),
        ))


# ------------------------------------------------------------------ public API
def to_op_graph(mod: IRModule, *, fused: bool = False, name: str = "", target: Any = None) -> OpGraph:
    """The operator DAG of ``mod["main"]``; ``fused=True`` gives one node per fused kernel.

    ``target`` (name, dict or ``tvm.target.Target``, default ``llvm``) only
    matters for the fused view, whose legalization and fusion run under it.
    """
    main = _main_function(mod)
    num_input = int(main.attrs["num_input"]) if main.attrs is not None and "num_input" in main.attrs else None
    builder = _UnfusedBuilder(mod)
    inputs, outputs = builder.build(num_input)
    nodes = builder.nodes
    nodes, new_id = _reorder(nodes, builder.arg_producers, outputs)
    edges = _remap_edges(builder.arg_producers, new_id)
    meta = _meta(mod)
    graph_name = name or meta.get("source", "")
    if not nodes:  # an empty ONNX graph, or one that passes its inputs through: no latency to predict
        raise ModelImportError(f"{graph_name or 'module'}: the network has no operators (an empty graph)")
    if not fused:
        return OpGraph(
            nodes=nodes,
            edges=edges,
            inputs=inputs,
            output_nodes=[new_id[o] for o in outputs],
            name=graph_name,
            fused=False,
            meta=meta,
        )

    try:
        legalized, grouped, fused_mod = _fuse_stages(mod, target)
    except (TVMError, ValueError, TypeError) as exc:
        raise ModelImportError(f"cannot legalize/fuse {graph_name or 'module'}: {exc}") from exc
    var_node = {var: new_id[old] for var, old in builder.var_node.items()}
    table = _MemberTable(legalized, var_node, num_input)
    fb = _FusedBuilder(grouped, fused_mod, table, nodes)
    kernel_outputs = fb.build(num_input)
    kernels, kernel_id = _reorder(fb.nodes, fb.arg_producers, kernel_outputs)
    mapped = sorted(m for k in kernels for m in k.member_ids)
    missing = sorted(set(range(len(nodes))) - set(mapped))
    if missing:
        log.warning("fused view of %s: unfused nodes %s are in no kernel", graph_name or "module", missing)
    meta = {**meta, "target": str(make_target(target).kind.name)}
    return OpGraph(
        nodes=kernels,
        edges=_remap_edges(fb.arg_producers, kernel_id),
        inputs=inputs,
        output_nodes=[kernel_id[o] for o in kernel_outputs],
        name=graph_name,
        fused=True,
        meta=meta,
    )


def _main_function(mod: Any) -> Function:
    if not isinstance(mod, IRModule):
        raise ModelImportError(f"to_op_graph needs a Relax IRModule, got {type(mod).__name__}")
    names = [gv.name_hint for gv in mod.get_global_vars()]
    if "main" not in names or not isinstance(mod["main"], Function):
        raise ModelImportError(f"module has no Relax function 'main' (functions: {sorted(names)})")
    return mod["main"]


def _meta(mod: IRModule) -> dict[str, Any]:
    attrs = mod.attrs
    meta: dict[str, Any] = {"tvm_version": TVM_VERSION, "frontend": "relax"}
    if attrs is not None:
        for key, field_name in ((FRONTEND_ATTR, "frontend"), (SOURCE_ATTR, "source")):
            if key in attrs:
                meta[field_name] = str(attrs[key])
    return meta

