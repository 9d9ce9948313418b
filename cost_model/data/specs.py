"""Canonical model spec strings for the two public search spaces.

A spec string names one architecture independently of the file it came from,
so the same network measured by HELP and by OneProxy gets the same key:

- ``nb201:<cell>``: NAS-Bench-201 cell string exactly as in HELP's
  ``str_arch2idx.pt``, ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``. The six
  edges, in order, feed node 1 from 0; node 2 from 0, 1; node 3 from 0, 1, 2.
- ``ofa:<json>``: a Once-for-All (MobileNetV3) config ``{"d","e","ks","r"}``
  as compact JSON with sorted keys, so equal configs give equal strings.
"""

from __future__ import annotations

import json
import operator
from typing import Any, Mapping

from targets.errors import DataError

__all__ = [
    "NB201_OPS",
    "NB201_NUM_ARCHS",
    "NB201_PREFIX",
    "OFA_PREFIX",
    "OFA_NUM_STAGES",
    "OFA_NUM_BLOCKS",
    "OFA_KERNEL_SIZES",
    "OFA_EXPAND_RATIOS",
    "OFA_DEPTHS",
    "parse_nb201_cell",
    "nb201_cell_is_connected",
    "nb201_spec",
    "ofa_spec",
    "parse_ofa_spec",
]

# NAS-Bench-201's operation set, in the benchmark's own order (also the
# one-hot order of OneProxy's encode.pickle).
NB201_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NB201_NUM_ARCHS = len(NB201_OPS) ** 6  # 15,625
NB201_PREFIX = "nb201:"
OFA_PREFIX = "ofa:"

# The OFA MobileNetV3 space: 5 stages of up to 4 blocks; ``ks`` and ``e`` list
# all 20 block slots, of which stage i uses the first ``d[i]``.
OFA_NUM_STAGES = 5
OFA_NUM_BLOCKS = 20
OFA_KERNEL_SIZES: tuple[int, ...] = (3, 5, 7)
OFA_EXPAND_RATIOS: tuple[int, ...] = (3, 4, 6)
OFA_DEPTHS: tuple[int, ...] = (2, 3, 4)

# (target node, source node) of each of the six edges, in cell-string order.
_NB201_EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))


def parse_nb201_cell(cell: str) -> tuple[str, ...]:
    """Return the six edge operations of a NAS-Bench-201 cell string, validating its form."""
    if cell.startswith(NB201_PREFIX):
        cell = cell[len(NB201_PREFIX):]
    nodes = cell.split("+")
    if len(nodes) != 3:
        raise DataError(f"NB201 cell {cell!r}: expected 3 nodes separated by '+', got {len(nodes)}")
    ops: list[str] = []
    for node_id, node in enumerate(nodes, start=1):
        if not (node.startswith("|") and node.endswith("|")):
            raise DataError(f"NB201 cell {cell!r}: node {node_id} must be wrapped in '|'")
        edges = node[1:-1].split("|")
        if len(edges) != node_id:
            raise DataError(f"NB201 cell {cell!r}: node {node_id} needs {node_id} inputs, got {len(edges)}")
        for src, edge in enumerate(edges):
            op, sep, idx = edge.partition("~")
            if not sep or idx != str(src) or op not in NB201_OPS:
                raise DataError(
                    f"NB201 cell {cell!r}: edge {edge!r} is not '<op>~{src}' with op in {NB201_OPS}"
                )
            ops.append(op)
    return tuple(ops)


def nb201_cell_is_connected(cell: str) -> bool:
    """Whether any non-``none`` path joins the cell input to its output.

    Disconnected cells (341 of 15,625) compute a constant; converters may
    fold them away, which is why HELP's pixel3 reports 0.003 ms for some.
    """
    reached = {0}
    for (dst, src), op in zip(_NB201_EDGES, parse_nb201_cell(cell)):
        if op != "none" and src in reached:
            reached.add(dst)
    return 3 in reached


def nb201_spec(cell: str) -> str:
    """Canonical spec string of a NAS-Bench-201 cell (validated)."""
    parse_nb201_cell(cell)
    return NB201_PREFIX + cell


def ofa_spec(config: Mapping[str, Any]) -> str:
    """Canonical spec string of a Once-for-All config with keys ks, e, d, r (validated)."""
    if set(config) != {"ks", "e", "d", "r"}:
        raise DataError(f"OFA config needs exactly keys ks, e, d, r; got {sorted(config)}")
    try:
        clean = {
            "ks": [operator.index(v) for v in config["ks"]],
            "e": [operator.index(v) for v in config["e"]],
            "d": [operator.index(v) for v in config["d"]],
            "r": operator.index(config["r"]),
        }
    except TypeError as exc:
        raise DataError(f"OFA config {dict(config)!r}: values must be integers ({exc})") from exc
    for key, length, allowed in (
        ("ks", OFA_NUM_BLOCKS, OFA_KERNEL_SIZES),
        ("e", OFA_NUM_BLOCKS, OFA_EXPAND_RATIOS),
        ("d", OFA_NUM_STAGES, OFA_DEPTHS),
    ):
        if len(clean[key]) != length or not set(clean[key]) <= set(allowed):
            raise DataError(
                f"OFA config field {key!r} must hold {length} values from {allowed}, got {clean[key]}"
            )
    if clean["r"] <= 0:
        raise DataError(f"OFA config field 'r' (input resolution) must be positive, got {clean['r']}")
    return OFA_PREFIX + json.dumps(clean, separators=(",", ":"), sort_keys=True)


def parse_ofa_spec(spec: str) -> dict[str, Any]:
    """Inverse of :func:`ofa_spec`."""
    if not spec.startswith(OFA_PREFIX):
        raise DataError(f"not an OFA spec (must start with {OFA_PREFIX!r}): {spec[:40]!r}")
    try:
        config = json.loads(spec[len(OFA_PREFIX):])
    except json.JSONDecodeError as exc:
        raise DataError(f"OFA spec {spec[:60]!r}: bad JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise DataError(f"OFA spec {spec[:60]!r}: JSON must be an object")
    ofa_spec(config)  # validates keys and types
    return config
