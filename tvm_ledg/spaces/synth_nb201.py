"""NB201 cells as template units in canonical order (for ``tvm_ledg.spaces.synth``).

A cell is a DAG of units: one per edge operation, plus the sums of each node's
incoming edges. Its graph is the units' templates placed one after the other in
the order the lowering gives (``cost_model.graph.canonical_order`` of the unit
DAG), wired by the units' producers.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cost_model.chain_tensors import BlockStructure, block_structure
from cost_model.graph import canonical_order
from targets.errors import GraphError
from tvm_ledg.spaces import nb201

__all__ = ["CONV_OPS", "CellLayout", "cell_layout", "convs_alike"]

# TVM's FoldBatchnormToConv2D re-emits the whole function through a memoizing rewriter, which
# merges structurally equal bindings: within a cell, equal weight-free computations on the same
# tensor (the ReLU before a conv, ``x * 0``, pooling, ``0 + x``, sums of those) are one node each.
# Convolutions carry their own weights and are never merged.
CONV_OPS = ("nor_conv_1x1", "nor_conv_3x3")


@dataclass
class CellLayout:
    """A cell's units in canonical order, with the cell's sorted edges and node count.

    ``parts`` are ``(kind, edge)`` per unit: a convolution unit's kind ends where its op
    goes and ``edge`` indexes the cell's flattened edge ops; other units have ``edge = -1``.
    """

    parts: list[tuple[str, int]]
    edges: tuple[tuple[int, int], ...]
    num_nodes: int

    @functools.cached_property
    def structure(self) -> BlockStructure:
        return block_structure(self.num_nodes, self.edges)


def cell_layout(cell: nb201.NB201Cell, units: Mapping[str, Any], layouts: dict[tuple[str, ...], CellLayout],
                alike: bool) -> tuple[list[str], CellLayout]:
    """Unit kinds of ``cell`` in canonical order and its layout, kept in ``layouts``.

    ``units`` are the unit templates (``protos`` and ``edges``) by kind and stage. With ``alike``
    (``convs_alike``), layouts are shared by cells that differ only in which convolution an edge
    has: no convolution is merged with another, so the order and the edges do not depend on it.
    That leaves at most 4**6 layouts.
    """
    ops = [op for edge in cell.edges for op in edge]
    key = tuple("conv" if op in CONV_OPS else op for op in ops) if alike else tuple(ops)
    layout = layouts.get(key)
    if layout is None:
        plan = _cell_plan(cell)
        layout = layouts[key] = CellLayout(
            [(kind[: -len(ops[edge])] if edge >= 0 else kind, edge) for kind, _, edge in plan],
            _cell_edges(plan, units), sum(len(units[f"{kind}:0"].protos) for kind, _, _ in plan))
    return [kind if edge < 0 else kind + ops[edge] for kind, edge in layout.parts], layout


def convs_alike(units: Mapping[str, Any]) -> bool:
    """True when both convolutions' units have the same nodes and edges (only weights and shapes differ)."""
    return all((len(units[f"{kind}:{CONV_OPS[0]}:0"].protos), units[f"{kind}:{CONV_OPS[0]}:0"].edges)
               == (len(units[f"{kind}:{CONV_OPS[1]}:0"].protos), units[f"{kind}:{CONV_OPS[1]}:0"].edges)
               for kind in ("first", "edge", "first-conv", "edge-conv"))


def _cell_plan(cell: nb201.NB201Cell) -> list[tuple[str, list[int], int]]:
    """The cell as units (edge ops, first-edge sums, adds) in canonical order, with producer positions
    and, for convolutions, the index of their edge among the cell's flattened edge ops (else -1).

    Position 0 of the unit DAG is the cell input; it is first in the DFS order and
    is dropped, so producer ``-1`` in the result means the cell input.
    """
    units: list[tuple[str, list[int], int]] = [("input", [], -1)]
    node_value = [0]
    seen: dict[tuple[str, tuple[int, ...]], int] = {}

    def unit(kind: str, producers: list[int], edge: int = -1) -> int:
        """A unit; a weight-free one equal to an earlier one *is* that one (see ``CONV_OPS``)."""
        key = (kind, tuple(producers))
        if "-conv:" in kind or key not in seen:
            units.append((kind, producers, edge))
            seen[key] = len(units) - 1
        return seen[key]

    def edge_unit(kind: str, op: str, src: int, edge: int) -> int:
        source = node_value[src]
        if op in CONV_OPS:  # the ReLU before a conv is weight-free and shared; the conv is not
            return unit(f"{kind}-conv:{op}", [unit("relu", [source])], edge)
        return unit(f"{kind}:{op}", [source])

    edge = 0
    for ops in cell.edges:
        partial = -1
        for src, op in enumerate(ops):
            if src == 0:
                partial = edge_unit("first", op, src, edge)
            else:
                value = node_value[src] if op == "skip_connect" else edge_unit("edge", op, src, edge)
                partial = unit("add", [partial, value])
            edge += 1
        node_value.append(partial)
    order = canonical_order([producers for _, producers, _ in units], [node_value[-1]])
    if order[0] != 0:
        raise GraphError("nb201 cell: the cell input is not first in canonical order")
    position = {old: new - 1 for new, old in enumerate(order)}
    return [(units[old][0], [position[p] for p in units[old][1]], units[old][2]) for old in order[1:]]


def _cell_edges(plan: list[tuple[str, list[int], int]], units: Mapping[str, Any]) -> tuple[tuple[int, int], ...]:
    """Sorted edges of a cell whose units are placed one after the other in plan order.

    Every stage's unit of a kind has the same nodes and edges (only shapes differ), so one
    stage's templates give the edges of all three.
    """
    edges: list[tuple[int, int]] = []
    last: list[int] = []  # block-relative id of each unit's output node
    size = 0
    for kind, producers, _ in plan:
        unit = units[f"{kind}:0"]
        offset = size
        size += len(unit.protos)
        sources = [-1 if p < 0 else last[p] for p in producers]
        if kind == "add":  # one node reading both producers
            edges.extend((s, offset) for s in sources)
        else:
            for s, d in unit.edges:
                edges.append((sources[0] if s < 0 else s + offset, d + offset))
        last.append(size - 1)
    return tuple(sorted(set(edges)))
