"""The operator DAG: the one data structure shared by lowering and the cost model.

``tvm_ledg.to_op_graph`` produces it from a Relax module; ``cost_model`` reads it
(from memory or JSON) without ever importing TVM. Nodes are stored in
topological order and a node's ``id`` is its position, so edges are plain
``(src, dst)`` index pairs, as in PyTorch Geometric's ``edge_index``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterator
from typing import Any

from cost_model.io import read_json, write_text_atomic
from targets.errors import GraphError

__all__ = ["OpNode", "TensorSpec", "OpGraph", "GRAPH_FORMAT_VERSION", "canonical_order"]

GRAPH_FORMAT_VERSION = 1

JSONValue = Any  # int | float | str | bool | None | list | dict of those


@dataclass(frozen=True)
class TensorSpec:
    """Shape and dtype of one tensor; ``-1`` marks a symbolic dimension."""

    shape: tuple[int, ...]
    dtype: str

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= max(int(d), 0)
        return n

    @property
    def nbytes(self) -> int:
        return self.numel * dtype_bytes(self.dtype)

    def to_json(self) -> dict[str, JSONValue]:
        return {"shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_json(cls, d: dict[str, JSONValue]) -> "TensorSpec":
        """Equal specs come back as one shared object: a stored graph repeats a few dozen
        (shape, dtype) pairs over hundreds of tensors, and loading is dominated by building them."""
        key = (tuple(d["shape"]), d["dtype"])
        spec = _SPECS.get(key)
        if spec is None:
            spec = cls(shape=tuple(int(x) for x in d["shape"]), dtype=str(d["dtype"]))
            if len(_SPECS) >= _MAX_SPECS:
                _SPECS.clear()
            _SPECS[key] = spec
        return spec


_SPECS: dict[tuple, TensorSpec] = {}
_MAX_SPECS = 100_000


def dtype_bytes(dtype: str) -> int:
    """Bytes per element of a TVM/numpy dtype string (``float16`` -> 2, ``bool`` -> 1)."""
    if dtype == "bool":
        return 1
    match = re.fullmatch(r"[a-z_]+?(\d+)(?:x(\d+))?", dtype)
    if match is None:
        raise GraphError(f"unknown dtype {dtype!r}")
    bits, lanes = int(match.group(1)), int(match.group(2) or 1)
    return max(bits * lanes // 8, 1)


@dataclass
class OpNode:
    """One high-level operator (or, in the fused view, one fused kernel).

    ``attrs`` holds JSON-able operator attributes (kernel, strides, padding,
    groups, axes...). ``params`` counts elements of constant (weight) inputs;
    ``inputs`` lists every tensor input, constants included. In the fused view
    ``members`` names the operators inside the kernel and ``member_ids`` points
    at them in the unfused graph of the same module.
    """

    id: int
    op: str
    name: str = ""
    attrs: dict[str, JSONValue] = field(default_factory=dict)
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)
    flops: int = 0
    macs: int = 0
    params: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    members: list[str] = field(default_factory=list)
    member_ids: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, JSONValue]:
        d = dataclasses.asdict(self)
        d["inputs"] = [t.to_json() for t in self.inputs]
        d["outputs"] = [t.to_json() for t in self.outputs]
        return d

    @classmethod
    def from_json(cls, d: dict[str, JSONValue]) -> "OpNode":
        d = dict(d)
        d["inputs"] = [TensorSpec.from_json(t) for t in d.get("inputs", [])]
        d["outputs"] = [TensorSpec.from_json(t) for t in d.get("outputs", [])]
        if not d.keys() <= _NODE_FIELDS:
            raise GraphError(f"node {d.get('id')}: unknown fields {sorted(set(d) - _NODE_FIELDS)}")
        return cls(**d)


_NODE_FIELDS = frozenset(f.name for f in dataclasses.fields(OpNode))


@dataclass
class OpGraph:
    """A network as a DAG of operators, with graph-level totals.

    Shapes:
        ``nodes``: N nodes in topological order, ``nodes[i].id == i``;
        ``edges``: E pairs ``(src, dst)`` with ``src < dst`` (data flows src -> dst);
        ``output_nodes``: ids of the nodes whose results the graph returns.
    """

    nodes: list[OpNode]
    edges: list[tuple[int, int]]
    inputs: list[TensorSpec] = field(default_factory=list)
    output_nodes: list[int] = field(default_factory=list)
    name: str = ""
    fused: bool = False
    meta: dict[str, JSONValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.edges = [(int(s), int(d)) for s, d in self.edges]
        self.output_nodes = [int(i) for i in self.output_nodes]
        self.validate()

    # ----------------------------------------------------------------- checks
    def validate(self) -> None:
        """Raise ``GraphError`` unless ids are positions and every edge points forward."""
        for i, node in enumerate(self.nodes):
            if node.id != i:
                raise GraphError(f"graph {self.name!r}: node at position {i} has id {node.id}")
        n = len(self.nodes)
        for s, d in self.edges:
            if not (0 <= s < n and 0 <= d < n):
                raise GraphError(f"graph {self.name!r}: edge ({s}, {d}) points outside 0..{n - 1}")
            if s >= d:
                raise GraphError(f"graph {self.name!r}: edge ({s}, {d}) is not in topological order")
        if len(set(self.edges)) != len(self.edges):
            raise GraphError(f"graph {self.name!r}: duplicate edges")
        for i in self.output_nodes:
            if not 0 <= i < n:
                raise GraphError(f"graph {self.name!r}: output node {i} outside 0..{n - 1}")

    # ----------------------------------------------------------------- totals
    @property
    def num_nodes(self) -> int:
        return len(self.nodes)

    @property
    def total_flops(self) -> int:
        return sum(n.flops for n in self.nodes)

    @property
    def total_macs(self) -> int:
        return sum(n.macs for n in self.nodes)

    @property
    def total_params(self) -> int:
        return sum(n.params for n in self.nodes)

    @property
    def depth(self) -> int:
        """Number of nodes on the longest path (0 for an empty graph)."""
        longest = [1] * len(self.nodes)
        for s, d in sorted(self.edges):
            longest[d] = max(longest[d], longest[s] + 1)
        return max(longest, default=0)

    def parents(self, i: int) -> list[int]:
        return sorted(s for s, d in self.edges if d == i)

    def children(self, i: int) -> list[int]:
        return sorted(d for s, d in self.edges if s == i)

    def summary(self) -> dict[str, JSONValue]:
        return {
            "name": self.name,
            "fused": self.fused,
            "nodes": self.num_nodes,
            "edges": len(self.edges),
            "depth": self.depth,
            "flops": self.total_flops,
            "macs": self.total_macs,
            "params": self.total_params,
            "hash": self.content_hash(),
        }

    # ------------------------------------------------------------ persistence
    def to_json(self) -> dict[str, JSONValue]:
        return {
            "format_version": GRAPH_FORMAT_VERSION,
            "name": self.name,
            "fused": self.fused,
            "meta": self.meta,
            "inputs": [t.to_json() for t in self.inputs],
            "nodes": [n.to_json() for n in self.nodes],
            "edges": [list(e) for e in self.edges],
            "output_nodes": list(self.output_nodes),
        }

    @classmethod
    def from_json(cls, d: dict[str, JSONValue], *, source: str = "<json>") -> "OpGraph":
        if not isinstance(d, dict) or "nodes" not in d or "edges" not in d:
            raise GraphError(f"{source}: not an operator graph (needs 'nodes' and 'edges')")
        version = d.get("format_version")
        if version != GRAPH_FORMAT_VERSION:
            raise GraphError(
                f"{source}: graph format_version {version!r}, this tvm-ledg reads {GRAPH_FORMAT_VERSION}"
            )
        try:
            with paused_gc():
                return cls(
                    nodes=[OpNode.from_json(n) for n in d["nodes"]],
                    edges=[tuple(e) for e in d["edges"]],
                    inputs=[TensorSpec.from_json(t) for t in d.get("inputs", [])],
                    output_nodes=list(d.get("output_nodes", [])),
                    name=str(d.get("name", "")),
                    fused=bool(d.get("fused", False)),
                    meta=dict(d.get("meta", {})),
                )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, GraphError):
                raise
            raise GraphError(f"{source}: malformed operator graph: {exc}") from exc

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write JSON atomically (temp file + rename) so a crash never leaves half a file."""
        write_text_atomic(Path(path), json.dumps(self.to_json(), indent=1, sort_keys=True))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "OpGraph":
        path = Path(path)
        with paused_gc():
            return cls.from_json(read_json(path, GraphError), source=str(path))

    # ------------------------------------------------------------------- hash
    def content_hash(self) -> str:
        """A stable hex digest of the structure: ops, attrs, shapes, dtypes, edges.

        Names, metadata and weights do not enter, so the same network gives the
        same hash whatever its weights or binding names.
        """
        payload = {
            "fused": self.fused,
            "inputs": [t.to_json() for t in self.inputs],
            "nodes": [
                {
                    "op": n.op,
                    "attrs": n.attrs,
                    "inputs": [t.to_json() for t in n.inputs],
                    "outputs": [t.to_json() for t in n.outputs],
                    "members": n.members,
                }
                for n in self.nodes
            ],
            "edges": sorted(self.edges),
            "output_nodes": sorted(self.output_nodes),
        }
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Hold off the cyclic garbage collector while building a graph from JSON.

    Decoding and building a 260-node graph allocates tens of thousands of
    containers, which triggers collections that traverse every live object of
    the process; that tripled the cost of loading a stored graph. The objects
    built here form no reference cycles, so nothing is left for the collector.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def canonical_order(arg_producers: list[list[int]], outputs: list[int]) -> list[int]:
    """The canonical node order: post-order DFS from the outputs (arguments left to right).

    ``arg_producers[i]`` lists the nodes whose results node ``i`` reads, in
    argument order. Unreachable nodes come last, in their given order. The
    order is a pure function of the dataflow, so two builders of the same
    network (TVM lowering, the space synthesizer) number its nodes alike.
    """
    order: list[int] = []
    done = [False] * len(arg_producers)
    for root in [*outputs, *range(len(arg_producers))]:
        if done[root]:
            continue
        stack = [(root, iter(arg_producers[root]))]
        done[root] = True
        while stack:
            node, it = stack[-1]
            nxt = next((p for p in it if not done[p]), None)
            if nxt is None:
                order.append(node)
                stack.pop()
            else:
                done[nxt] = True
                stack.append((nxt, iter(arg_producers[nxt])))
    return order
