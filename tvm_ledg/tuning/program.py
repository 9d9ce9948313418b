"""Scheduled TIR PrimFunc -> program DAG: the program-level cost model's view of a schedule.

The same ``OpGraph`` that carries operator DAGs carries programs, so the
featurizer, the text encoder and LeDG-Former score schedules unchanged:

* one node per loop, in program order: op ``tir.loop.<kind>`` (``serial``,
  ``parallel``, ``vectorized``, ``unrolled``, ``thread_binding``), attrs
  ``extent`` and the loop's scalar annotations (``pragma_auto_unroll_max_step``,
  ...); its ``outputs`` hold its iteration domain, a 1-d tensor of ``extent``
  indices of the loop variable's dtype, so the extent also enters the numeric
  features (``log_out_numel``) and not only the text;
* one node per block: op ``tir.block``, attrs ``iters`` (one letter per block
  iterator: S spatial, R reduction, O ordered, X opaque, T thread), ``reads``,
  ``writes``, ``scope`` (storage scope of its first output: cache stages are
  ``local``/``shared`` blocks), ``init``, ``predicated`` and its scalar
  annotations; ``read_strides`` / ``write_strides``: per accessed region, how
  many elements its start address moves when the innermost enclosing loop
  that iterates (extent not 1) steps from 0 to 1, the other loops at 0 (1:
  contiguous, 0: reused, negative: backwards, None: symbolic; all 0 for a
  block outside every loop). This is what decides vectorization and cache
  behaviour; for a fused loop it is the step within the innermost part;
  ``inputs``/``outputs`` are the buffers it reads/writes (shape and dtype);
  ``flops`` counts the arithmetic of its stores times the number of times it
  runs (the product of the enclosing loop extents); ``bytes_read`` /
  ``bytes_written`` the accessed regions times the same count;
* edges: loop nesting (outer loop -> inner loop -> block) and dataflow (the last
  block that wrote a buffer -> each later block that reads it);
* output nodes: the blocks that write a parameter buffer of the function.

The implicit root block of a PrimFunc is not a node. Annotation keys keep their
last dotted part (``meta_schedule.tiling_structure`` -> ``tiling_structure``).
The walk uses TVM's own ``structural_walk``; the result depends only on the
program, so one PrimFunc always gives the same ``content_hash``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from cost_model.graph import OpGraph, OpNode, TensorSpec, dtype_bytes
from tvm_ledg._tvm import (
    ARITH_EXPRS,
    BufferStore,
    FloatImm,
    For,
    IntImm,
    PrimFunc,
    SBlockRealize,
    Analyzer,
    TensorLoad,
    WalkResult,
    structural_walk,
)

__all__ = ["program_graph", "LOOP_OPS"]

LOOP_OPS: tuple[str, ...] = (
    "tir.loop.serial",
    "tir.loop.parallel",
    "tir.loop.vectorized",
    "tir.loop.unrolled",
    "tir.loop.thread_binding",
)
"""Op names of loop nodes, indexed by ``tvm.tirx.ForKind``."""

BLOCK_OP = "tir.block"

# tvm.tirx.IterVar.iter_type -> letter (DataPar, ThreadIndex, CommReduce, Ordered, Opaque, ...)
_ITER_LETTERS = {0: "S", 1: "T", 2: "R", 3: "O", 4: "X"}


def program_graph(func: PrimFunc, name: str = "") -> OpGraph:
    """The program DAG of one (scheduled) PrimFunc; see the module docstring for the node schema."""
    body = func.body
    if isinstance(body, SBlockRealize) and not body.block.iter_vars:
        body = body.block.body  # the implicit root block
    walk = _Walk()
    walk.visit(body, parent=None, trips=1, loops=())
    params = {p.__chandle__() for p in func.params}
    outputs = [node_id for node_id, _, writes in walk.blocks if params.intersection(writes)]
    inputs = [spec for spec in (_buffer_spec(p) for p in func.params) if spec is not None]
    return OpGraph(nodes=walk.nodes, edges=walk.edges(), inputs=inputs, output_nodes=outputs,
                   name=name, meta={"kind": "tir-program"})


def _children(stmt: Any) -> list[Any]:
    """The loops and blocks directly below ``stmt``, in program order (nothing nested in them)."""
    found: list[Any] = []

    def take(node: Any) -> WalkResult:
        found.append(node)
        return WalkResult.SKIP

    structural_walk(stmt, [((For, SBlockRealize), take)], order="pre")
    return found


@dataclass
class _Walk:
    nodes: list[OpNode] = field(default_factory=list)
    nesting: list[tuple[int, int]] = field(default_factory=list)
    blocks: list[tuple[int, list[int], list[int]]] = field(default_factory=list)  # (node id, read keys, write keys)

    def visit(self, stmt: Any, parent: int | None, trips: int, loops: tuple[Any, ...]) -> None:
        """``loops``: the loops around ``stmt``, outermost first."""
        for child in _children(stmt):
            node_id = len(self.nodes)
            if isinstance(child, For):
                extent = _int(child.extent)
                self.nodes.append(_loop_node(node_id, child, extent))
                inner_trips, inner, inner_loops = trips * max(extent, 1), child.body, (*loops, child)
            else:
                self.nodes.append(self._block_node(node_id, child, trips, loops))
                inner_trips, inner, inner_loops = trips, child.block.body, loops
            if parent is not None:
                self.nesting.append((parent, node_id))
            self.visit(inner, node_id, inner_trips, inner_loops)

    def _block_node(self, node_id: int, realize: Any, trips: int, loops: tuple[Any, ...]) -> OpNode:
        block = realize.block
        reads, writes = list(block.reads), list(block.writes)
        self.blocks.append((node_id, [r.source.__chandle__() for r in reads], [w.source.__chandle__() for w in writes]))
        attrs: dict[str, Any] = {
            "iters": "".join(_ITER_LETTERS.get(int(iv.iter_type), "X") for iv in block.iter_vars),
            "reads": len(reads),
            "writes": len(writes),
            "scope": str(writes[0].source.scope()) if writes else "none",
            "init": block.init is not None,
            "predicated": not (isinstance(realize.predicate, IntImm) and int(realize.predicate.value) == 1),
        }
        steps = _step_bindings(realize, loops)  # one pair of analyzers for reads and writes
        attrs["read_strides"] = _access_strides(steps, reads)
        attrs["write_strides"] = _access_strides(steps, writes)
        attrs.update(_annotations(block.annotations))
        return OpNode(
            id=node_id, op=BLOCK_OP, name=str(block.name_hint), attrs=attrs,
            inputs=[s for s in (_buffer_spec(r.source) for r in reads) if s is not None],
            outputs=[s for s in (_buffer_spec(w.source) for w in writes) if s is not None],
            flops=trips * _arith_ops(block.body),
            bytes_read=trips * sum(_region_bytes(r) for r in reads),
            bytes_written=trips * sum(_region_bytes(w) for w in writes),
        )

    def edges(self) -> list[tuple[int, int]]:
        """Nesting edges plus writer -> reader edges (the last earlier writer of each buffer read)."""
        edges = set(self.nesting)
        last_writer: dict[int, int] = {}
        for node_id, reads, writes in self.blocks:
            for key in reads:
                writer = last_writer.get(key)
                if writer is not None and writer != node_id:
                    edges.add((writer, node_id))
            for key in writes:
                last_writer[key] = node_id
        return sorted(edges)


def _loop_node(node_id: int, loop: Any, extent: int) -> OpNode:
    attrs: dict[str, Any] = {"extent": extent}
    if loop.thread_binding is not None:
        # dots as underscores so the tag stays one word in the node text
        attrs["thread"] = str(loop.thread_binding.thread_tag).replace(".", "_")
    attrs.update(_annotations(loop.annotations))
    return OpNode(id=node_id, op=LOOP_OPS[int(loop.kind)], name=str(loop.loop_var.name), attrs=attrs,
                  outputs=[TensorSpec((extent,), _var_dtype(loop.loop_var))])


def _var_dtype(var: Any) -> str:
    return str(getattr(var.ty, "dtype", "int32"))


def _int(expr: Any) -> int:
    """A constant's value; ``-1`` for a symbolic extent or dimension."""
    return int(expr.value) if isinstance(expr, IntImm) else -1


def _annotations(annotations: Any) -> dict[str, Any]:
    """JSON-able scalar annotations (ints, finite floats, strings), keyed by their last dotted part."""
    out: dict[str, Any] = {}
    for key, value in sorted((str(k), v) for k, v in annotations.items()):
        short = key.rsplit(".", 1)[-1]
        if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):  # bool is an int
            out[short] = value
        elif isinstance(value, IntImm):
            out[short] = int(value.value)
        elif isinstance(value, FloatImm):
            out[short] = float(value.value)
        elif isinstance(value, str):
            out[short] = str(value)
    return out


def _buffer_spec(buffer: Any) -> TensorSpec | None:
    """Shape and dtype of a buffer (``None`` for a scalar parameter that is not a buffer)."""
    try:
        shape, dtype = buffer.shape, buffer.dtype
    except AttributeError:
        return None
    return TensorSpec(tuple(_int(d) for d in shape), str(dtype))


def _step_bindings(realize: Any, loops: tuple[Any, ...]) -> list[Any] | None:
    """Analyzers for the innermost iterating loop (extent not 1) at 0 and at 1; None outside every such loop."""
    stepping = next((loop for loop in reversed(loops) if _int(loop.extent) not in (0, 1)), None)
    if stepping is None:
        return None
    return [_address_bindings(realize, loops, stepping, value) for value in (0, 1)]


def _access_strides(at: list[Any] | None, regions: list[Any]) -> list[int | None]:
    """Elements each region's start address moves when the innermost iterating loop goes from 0 to 1 (the
    other loops at 0; block iterators through their bindings; ``at`` from ``_step_bindings``); None where it
    is not a constant."""
    if at is None:
        return [0] * len(regions)
    strides: list[int | None] = []
    for region in regions:
        stride: int | None = 0
        for rng, step in zip(region.region, _element_steps(region.source)):
            start, end = (analyzer.simplify(rng.min) for analyzer in at)
            if step is None or not (isinstance(start, IntImm) and isinstance(end, IntImm)):
                stride = None
                break
            stride += step * (int(end.value) - int(start.value))
        strides.append(stride)
    return strides


def _address_bindings(realize: Any, loops: tuple[Any, ...], stepping: Any, value: int) -> Any:
    """An ``Analyzer`` that replaces every loop variable by a constant (``stepping``'s by ``value``, the
    others by 0) and the block's iterators by their bindings."""
    analyzer = Analyzer()
    for loop in loops:
        var = loop.loop_var
        analyzer.bind(var, IntImm(_var_dtype(var), value if loop.__chandle__() == stepping.__chandle__() else 0))
    for iv, binding in zip(realize.block.iter_vars, realize.iter_values):
        analyzer.bind(iv.var, analyzer.simplify(binding))
    return analyzer


def _element_steps(buffer: Any) -> list[int | None]:
    """Elements between neighbours along each dimension: the buffer's strides, else row-major (None: symbolic)."""
    explicit = [_int(s) for s in buffer.strides]
    if explicit:
        return [s if s >= 0 else None for s in explicit]
    steps: list[int | None] = []
    inner: int | None = 1
    for dim in reversed([_int(d) for d in buffer.shape]):
        steps.append(inner)
        inner = inner * dim if inner is not None and dim >= 0 else None
    return steps[::-1]


def _region_bytes(region: Any) -> int:
    """Bytes one block instance touches in an accessed region (symbolic extents count as 1)."""
    numel = math.prod(max(_int(r.extent), 1) for r in region.region)
    return numel * dtype_bytes(str(region.source.dtype))


def _arith_ops(body: Any) -> int:
    """Arithmetic operations in the values stored by ``body`` (index arithmetic not counted)."""
    count = 0

    def arith(_: Any) -> None:
        nonlocal count
        count += 1

    def store(node: Any) -> WalkResult:
        structural_walk(node.value, [(TensorLoad, lambda _: WalkResult.SKIP), (ARITH_EXPRS, arith)], order="pre")
        return WalkResult.SKIP

    structural_walk(body, [(BufferStore, store), ((For, SBlockRealize), lambda _: WalkResult.SKIP)], order="pre")
    return count
