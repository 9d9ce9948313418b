"""Operator nodes -> (text, numeric features): the cost model's only view of a graph.

The text carries *what* an operator is (type, kernel, strides, shapes) for the
text encoder; the numeric features carry *how much* work it is. Text encoders
split "1x256x56x56" into word pieces and lose magnitudes, so every magnitude
that matters for latency is also a ``log1p`` feature. Both must be stable:
a checkpoint is only valid for the template and feature schema it was
trained with (see ``FEATURE_SCHEMA``).

Why one module of about 450 lines: the text template, the numeric schema and its hash, and the
per-kind row cache are one contract with checkpoints; keeping them together keeps a schema change
in one diff.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence

import numpy as np
import torch

from cost_model.batch import GraphTensors
from cost_model.chain_tensors import NodeRows
from cost_model.graph import OpGraph, OpNode, TensorSpec, dtype_bytes
from cost_model.roofline import WORK_COLUMNS, graph_input_batch, node_work
from targets.errors import GraphError

__all__ = [
    "TEXT_TEMPLATE_VERSION",
    "NODE_FEATURE_NAMES",
    "POSITION_FEATURE_NAMES",
    "FEATURE_NAMES",
    "FEATURE_SCHEMA",
    "feature_schema_hash",
    "node_text",
    "node_numeric_features",
    "position_features",
    "kind_key",
    "node_rows",
    "graph_tensors",
]

TEXT_TEMPLATE_VERSION = 1

NODE_FEATURE_NAMES: tuple[str, ...] = (
    "log_flops",
    "log_macs",
    "log_params",
    "log_bytes_read",
    "log_bytes_written",
    "log_out_numel",
    "log_in_numel",
    "log_flops_per_byte",
    "kernel_h",
    "kernel_w",
    "stride",
    "dilation",
    "log_groups",
    "depthwise",
    "log_channels_in",
    "log_channels_out",
    "log_spatial_out",
    "log_batch",
    "out_rank",
    "num_inputs",
    "num_outputs",
    "dtype_bytes",
    "num_members",
)
"""Per-operator features, computed from the node alone."""

POSITION_FEATURE_NAMES: tuple[str, ...] = ("in_degree", "out_degree", "depth_frac", "height_frac")
"""Per-node structural features; all invariant to the choice of topological order."""

FEATURE_NAMES: tuple[str, ...] = NODE_FEATURE_NAMES + POSITION_FEATURE_NAMES
"""Columns of ``GraphTensors.x_num``."""

FEATURE_SCHEMA: dict[str, object] = {
    "text_template_version": TEXT_TEMPLATE_VERSION,
    "feature_names": list(FEATURE_NAMES),
}


def feature_schema_hash() -> str:
    """Short digest of ``FEATURE_SCHEMA`` for checkpoints to refuse graphs featurized differently."""
    return hashlib.sha256(json.dumps(FEATURE_SCHEMA, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------- text

# Attributes that do not change the kernel's cost, or are already in the shapes/dtype.
_SKIP_KEYS = frozenset(
    {
        "epsilon", "momentum", "center", "scale", "out_dtype", "dtype", "ceil_mode",
        "count_include_pad", "rounding_mode", "kernel_layout", "out_layout", "name",
    }
)
_LAYOUT_KEYS = ("data_layout", "layout")
_MAX_INPUTS = 2
_MAX_MEMBERS = 4
_MAX_EXTRA_ATTRS = 2
_MAX_PROGRAM_ATTRS = 6  # program-DAG nodes (``tir.*``): loop/block attrs are few and all matter
_MAX_STR_ATTR = 12


def node_text(node: OpNode) -> str:
    """A short, deterministic description, e.g. ``conv2d k3x3 s1 p1 g1 in 1x16x32x32 out 1x16x32x32 float32``.

    Known attributes are rendered compactly in a fixed order; unknown scalar
    attributes as ``key=value`` (sorted, at most two; six for the loops and
    blocks of program DAGs, ops ``tir.*``); nested or long values are
    skipped. Convolutions show only their data input (the weight shape is
    already in ``k``/``g`` and the channels). Program-DAG blocks show their
    access strides along the innermost loop (``rs0,1 ws1``; ``?``: not constant).
    """
    attrs = node.attrs or {}
    words = [_op_label(node)]
    kernel = _kernel(node)
    if kernel:
        words.append("k" + "x".join(str(k) for k in kernel))
    for key, prefix in (("strides", "s"), ("padding", "p")):
        ints = _int_list(attrs.get(key))
        if ints:
            words.append(prefix + _compact(ints))
    dilation = _int_list(attrs.get("dilation"))
    if dilation and any(d != 1 for d in dilation):
        words.append("d" + _compact(dilation))
    if isinstance(attrs.get("groups"), int):
        words.append(f"g{attrs['groups']}")
    for key in ("axis", "axes"):
        ints = _int_list(attrs.get(key))
        if ints:
            words.append("ax" + ",".join(str(a) for a in ints))
    if attrs.get("keepdims") is True:
        words.append("keep")
    layout = _layout(attrs)
    if layout and not layout.startswith("NC"):
        words.append(layout)
    for key, prefix in (("read_strides", "rs"), ("write_strides", "ws")):  # program-DAG blocks
        strides = attrs.get(key)
        if isinstance(strides, list) and strides:
            words.append(prefix + ",".join("?" if s is None else str(s) for s in strides))
    words.extend(_extra_attrs(attrs, _MAX_PROGRAM_ATTRS if node.op.startswith("tir.") else _MAX_EXTRA_ATTRS))
    if node.inputs:
        shown = node.inputs[:1] if _is_conv(node) else node.inputs[:_MAX_INPUTS]
        more = 0 if _is_conv(node) else len(node.inputs) - len(shown)
        words.append("in " + ",".join(_shape(t) for t in shown) + (f",+{more}" if more else ""))
    if node.outputs:
        words.append("out " + _shape(node.outputs[0]) + (f",+{len(node.outputs) - 1}" if len(node.outputs) > 1 else ""))
    words.append(_dtype(node))
    return " ".join(words)


def _short_op(op: str) -> str:
    return op.rsplit(".", 1)[-1]


def _op_label(node: OpNode) -> str:
    if not node.members:
        return _short_op(node.op)
    members = [_short_op(m) for m in node.members]
    label = "+".join(members[:_MAX_MEMBERS])
    return label + (f"+{len(members) - _MAX_MEMBERS}more" if len(members) > _MAX_MEMBERS else "")


def _is_conv(node: OpNode) -> bool:
    return "conv" in _short_op(node.op) or any("conv" in _short_op(m) for m in node.members)


def _int_list(value: object) -> list[int]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, (list, tuple)) and value and all(type(v) is int for v in value):
        return list(value)
    return []


def _compact(ints: list[int]) -> str:
    return str(ints[0]) if len(set(ints)) == 1 else "x".join(str(i) for i in ints)


def _layout(attrs: dict[str, object]) -> str:
    for key in _LAYOUT_KEYS:
        value = attrs.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def _kernel(node: OpNode) -> list[int]:
    """Spatial kernel size: ``pool_size``/``kernel_size`` attrs, else a convolution's weight shape."""
    for key in ("kernel_size", "pool_size"):
        ints = _int_list(node.attrs.get(key))
        if ints:
            return ints
    if _is_conv(node) and len(node.inputs) >= 2 and len(node.inputs[1].shape) >= 3:
        shape = node.inputs[1].shape
        layout = node.attrs.get("kernel_layout")
        if isinstance(layout, str) and len(layout) == len(shape) and "O" in layout and "I" in layout:
            return [int(d) for d, c in zip(shape, layout) if c not in "OI"]
        return [int(d) for d in shape[2:]]
    return []


def _extra_attrs(attrs: dict[str, object], limit: int) -> list[str]:
    known = {"kernel_size", "pool_size", "strides", "padding", "dilation", "groups", "axis", "axes", "keepdims",
             "read_strides", "write_strides"}
    words = []
    for key in sorted(attrs):
        if key in known or key in _SKIP_KEYS or key in _LAYOUT_KEYS:
            continue
        value = attrs[key]
        if isinstance(value, bool):
            words.append(f"{key}={'T' if value else 'F'}")
        elif isinstance(value, (int, float)):
            words.append(f"{key}={value:g}")
        elif isinstance(value, str) and 0 < len(value) <= _MAX_STR_ATTR and value.replace("_", "").isalnum():
            words.append(f"{key}={value}")
        if len(words) == limit:
            break
    return words


def _shape(t: TensorSpec) -> str:
    if not t.shape:
        return "scalar"
    return "x".join("?" if d < 0 else str(d) for d in t.shape)


def _dtype(node: OpNode) -> str:
    tensors = list(node.outputs) + list(node.inputs)
    return tensors[0].dtype if tensors else "void"


# ----------------------------------------------------------------------- numeric


def _log(x: float) -> float:
    return math.log1p(max(float(x), 0.0))


def _channel_axis(node: OpNode, rank: int) -> int | None:
    """Channel axis: from the layout attr when present, else NCHW-style for rank >= 4, last axis below."""
    layout = _layout(node.attrs)
    if layout and len(layout) == rank and "C" in layout:
        return layout.index("C")
    if rank >= 4:
        return 1
    if rank >= 1:
        return rank - 1
    return None


def _channels(node: OpNode, t: TensorSpec | None) -> int:
    if t is None:
        return 0
    axis = _channel_axis(node, len(t.shape))
    return max(int(t.shape[axis]), 0) if axis is not None else 1


def _spatial(node: OpNode, t: TensorSpec | None) -> int:
    if t is None or len(t.shape) < 3:
        return 1
    axis = _channel_axis(node, len(t.shape))
    dims = [max(int(d), 0) for k, d in enumerate(t.shape) if k not in (0, axis)]
    return math.prod(dims)


def node_numeric_features(node: OpNode) -> list[float]:
    """Values for ``NODE_FEATURE_NAMES``, in that order; magnitudes as ``log1p``."""
    attrs = node.attrs or {}
    first_in = node.inputs[0] if node.inputs else None
    first_out = node.outputs[0] if node.outputs else None
    kernel = _kernel(node)
    strides = _int_list(attrs.get("strides"))
    dilation = _int_list(attrs.get("dilation"))
    groups = attrs.get("groups") if isinstance(attrs.get("groups"), int) else 1
    c_in, c_out = _channels(node, first_in), _channels(node, first_out)
    traffic = node.bytes_read + node.bytes_written
    dtype = _dtype(node)
    values = {
        "log_flops": _log(node.flops),
        "log_macs": _log(node.macs),
        "log_params": _log(node.params),
        "log_bytes_read": _log(node.bytes_read),
        "log_bytes_written": _log(node.bytes_written),
        "log_out_numel": _log(sum(t.numel for t in node.outputs)),
        "log_in_numel": _log(sum(t.numel for t in node.inputs)),
        "log_flops_per_byte": _log(node.flops / traffic) if traffic > 0 else 0.0,
        "kernel_h": float(kernel[0]) if kernel else 0.0,
        "kernel_w": float(kernel[-1]) if kernel else 0.0,
        "stride": float(max(strides)) if strides else 0.0,
        "dilation": float(max(dilation)) if dilation else 0.0,
        "log_groups": _log(groups),
        "depthwise": 1.0 if groups > 1 and groups == c_in else 0.0,
        "log_channels_in": _log(c_in),
        "log_channels_out": _log(c_out),
        "log_spatial_out": _log(_spatial(node, first_out)),
        "log_batch": _log(first_out.shape[0]) if first_out is not None and first_out.shape else 0.0,
        "out_rank": float(len(first_out.shape)) if first_out is not None else 0.0,
        "num_inputs": float(len(node.inputs)),
        "num_outputs": float(len(node.outputs)),
        "dtype_bytes": float(dtype_bytes(dtype)) if dtype != "void" else 0.0,
        "num_members": float(max(len(node.members), 1)),
    }
    return [values[name] for name in NODE_FEATURE_NAMES]


def position_features(num_nodes: int, edges: Sequence[tuple[int, int]]) -> list[list[float]]:
    """Values for ``POSITION_FEATURE_NAMES`` per node; edges must point forward (``src < dst``).

    ``depth_frac`` is the longest path from any source, ``height_frac`` the
    longest path to any sink, both divided by the longest path of the graph.
    """
    return _position_array(num_nodes, edges).tolist()


def _position_array(num_nodes: int, edges: Sequence[tuple[int, int]]) -> np.ndarray:
    """``position_features`` as a ``(num_nodes, 4)`` float64 array."""
    depth = [0] * num_nodes
    height = [0] * num_nodes
    ordered = sorted(edges)
    for s, d in ordered:
        if depth[s] >= depth[d]:
            depth[d] = depth[s] + 1
    for s, d in reversed(ordered):  # by decreasing source: every child's height is final before it is read
        if height[d] >= height[s]:
            height[s] = height[d] + 1
    out = np.zeros((num_nodes, len(POSITION_FEATURE_NAMES)))
    if ordered:
        pairs = np.asarray(ordered, dtype=np.int64)
        out[:, 0] = np.bincount(pairs[:, 1], minlength=num_nodes)
        out[:, 1] = np.bincount(pairs[:, 0], minlength=num_nodes)
    span = max(max(depth, default=0), 1)
    out[:, 2] = np.asarray(depth, dtype=np.float64) / span
    out[:, 3] = np.asarray(height, dtype=np.float64) / span
    return out


def kind_key(node: OpNode) -> tuple:
    """Everything ``node_text`` and ``node_numeric_features`` read (not ``id``, ``name``, ``member_ids``):
    two operators with the same key are the same kind of kernel.

    ``repr`` of the attributes is exact for JSON values (``1``, ``1.0`` and
    ``True`` differ); two dicts with equal items in another order only miss
    the table, they never share a wrong row.
    """
    return (node.op, repr(node.attrs) if node.attrs else "", tuple(node.inputs), tuple(node.outputs),
            tuple(node.members), node.flops, node.macs, node.params, node.bytes_read, node.bytes_written)


class _KindTable:
    """Process-wide interning of per-operator features by node kind.

    A network repeats a few dozen distinct operators (same op, attributes,
    shapes and costs) over hundreds of nodes, and a search space repeats them
    across networks, so text and numeric features are computed once per kind
    and graphs are featurized by gathering rows. Cleared when it reaches
    ``max_kinds`` so that a long-running process featurizing ever-new
    operators stays bounded.
    """

    def __init__(self, max_kinds: int = 100_000) -> None:
        self.max_kinds = max_kinds
        self.clear()

    def clear(self) -> None:
        self._ids: dict[tuple, int] = {}
        self.texts: list[str] = []
        self._numeric = np.zeros((64, len(NODE_FEATURE_NAMES)))  # rows past len(self) are spare capacity
        self._work = np.zeros((64, len(WORK_COLUMNS)))

    @property
    def numeric(self) -> np.ndarray:
        """``(kinds, len(NODE_FEATURE_NAMES))`` float64, row ``k`` for kind ``k``."""
        return self._numeric[: len(self.texts)]

    @property
    def work(self) -> np.ndarray:
        """``(kinds, len(WORK_COLUMNS))`` float64 raw work (``roofline.node_work``), row ``k`` for kind ``k``."""
        return self._work[: len(self.texts)]

    def __len__(self) -> int:
        return len(self.texts)

    def rows(self, nodes: Sequence[OpNode]) -> np.ndarray:
        """Table row of each node, adding the kinds not seen yet."""
        keys = [kind_key(n) for n in nodes]
        found = list(map(self._ids.get, keys))  # one hash per key: tuple hashes are not cached
        if None in found:
            if len(self._ids) + len(keys) > self.max_kinds:
                self.clear()
            found = self._add(keys, nodes)
        return np.array(found, dtype=np.int64)

    def _add(self, keys: list[tuple], nodes: Sequence[OpNode]) -> list[int]:
        """Rows of ``keys`` after featurizing the new kinds; an error leaves the table as it was."""
        ids = self._ids
        fresh: dict[tuple, tuple[str, list[float], tuple[float, ...]]] = {}
        for key, node in zip(keys, nodes):
            if key not in ids and key not in fresh:
                fresh[key] = (node_text(node), node_numeric_features(node), node_work(node))
        start, stop = len(self.texts), len(self.texts) + len(fresh)
        if stop > len(self._numeric):
            size = max(stop, 2 * len(self._numeric))
            self._numeric = _grown(self._numeric, size, start)
            self._work = _grown(self._work, size, start)
        self._numeric[start:stop] = [v for _, v, _ in fresh.values()]
        self._work[start:stop] = [w for _, _, w in fresh.values()]
        for key, (text, _, _) in fresh.items():
            ids[key] = len(self.texts)
            self.texts.append(text)
        return [ids[k] for k in keys]


def _grown(table: np.ndarray, rows: int, used: int) -> np.ndarray:
    """``table`` with capacity ``rows``, its first ``used`` rows kept."""
    grown = np.zeros((rows, table.shape[1]))
    grown[:used] = table[:used]
    return grown


_KINDS = _KindTable()


def node_rows(nodes: Sequence[OpNode]) -> NodeRows:
    """Text, numeric features and raw work of ``nodes``, as ``graph_tensors`` gives them (copies, so that
    they stay valid when the kind table is cleared)."""
    rows = _KINDS.rows(nodes)
    texts = _KINDS.texts
    return NodeRows([texts[i] for i in rows.tolist()], _KINDS.numeric[rows], _KINDS.work[rows])


def graph_tensors(graph: OpGraph) -> GraphTensors:
    """Featurize a whole graph: texts, ``x_num`` over ``FEATURE_NAMES``, raw per-node work and the relation structure."""
    if graph.num_nodes == 0:
        raise GraphError(f"graph {graph.name!r}: has no nodes; nothing to predict")
    try:
        rows = _KINDS.rows(graph.nodes)
    except GraphError as exc:
        raise GraphError(f"graph {graph.name!r}: {exc}") from exc
    x_num = np.concatenate([_KINDS.numeric[rows], _position_array(graph.num_nodes, graph.edges)], axis=1)
    edge_index = torch.from_numpy(np.asarray(graph.edges, dtype=np.int64).reshape(-1, 2).T.copy())
    texts = _KINDS.texts
    return GraphTensors(
        texts=[texts[i] for i in rows.tolist()], x_num=torch.from_numpy(x_num).float(), edge_index=edge_index,
        name=graph.name, work=_KINDS.work[rows], input_batch=graph_input_batch(graph),
    )
