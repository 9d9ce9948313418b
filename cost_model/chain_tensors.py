"""Model inputs of a graph that is a chain of single-input blocks, assembled from per-block pieces.

Architecture-space networks (NB201, FBNet, OFA) are chains of blocks: each
block reads only the previous block's output, which is the previous block's
last node. Featurizing such a graph node by node repeats, for every network,
work that depends only on its blocks. Here each distinct block is analysed
once (``block_structure``: its relations, degrees and longest paths, with the
block input as an extra node ``-1``) and a network's ``GraphTensors`` are put
together with offset arithmetic over those pieces (``chain_tensors``). The
result equals ``featurize.graph_tensors`` of the assembled graph exactly; the
space tests check that on hundreds of specs per space.

Why the pieces suffice: every relation joins nodes at most two edges apart.
A pair inside block ``b``, or between ``b``'s nodes and its input ``p`` (the
previous block's output), is found in ``b`` with ``p`` as node ``-1``. The only
pairs that no single block sees are the two-hop paths *through* ``p``:
a parent of ``p`` (in the previous block) and a child of ``p`` (in ``b``) are
grandparent and grandchild; ``chain_tensors`` adds those. Longest paths
compose the same way: a path enters a block only through its input and leaves
only through its output.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cost_model.batch import ALL_RELATIONS, GraphTensors, relation_index
from targets.errors import GraphError

__all__ = ["BlockStructure", "NodeRows", "RowTable", "block_structure", "chain_tensors"]

_GRANDCHILDREN = ALL_RELATIONS.index("grandchildren")
_GRANDPARENTS = ALL_RELATIONS.index("grandparents")
_NONE = -(1 << 40)  # "no such path" in longest-path arrays; stays hugely negative after adding real lengths


@dataclass(frozen=True)
class NodeRows:
    """Per-node features of consecutive nodes (``featurize.node_rows``).

    Shapes:
        ``texts``: N strings; ``numeric``: ``(N, len(NODE_FEATURE_NAMES))`` float64;
        ``work``: ``(N, len(WORK_COLUMNS))`` float64.
    """

    texts: list[str]
    numeric: np.ndarray
    work: np.ndarray


class RowTable:
    """The node rows of many blocks stacked in one table, so that a network's rows are one gather.

    A block adds its rows once and keeps their ids; a network lists its blocks' ids in order.
    """

    def __init__(self) -> None:
        self.texts: list[str] = []
        self._numeric = np.zeros((0, 0))
        self._work = np.zeros((0, 0))

    def add(self, rows: NodeRows) -> list[int]:
        """Ids of ``rows`` in the table."""
        start, stop = len(self.texts), len(self.texts) + len(rows.texts)
        if stop > len(self._numeric):
            size = max(stop, 2 * len(self._numeric))
            self._numeric = _grown(self._numeric if start else rows.numeric[:0], size, start)
            self._work = _grown(self._work if start else rows.work[:0], size, start)
        self._numeric[start:stop] = rows.numeric
        self._work[start:stop] = rows.work
        self.texts += rows.texts
        return list(range(start, stop))

    def gather(self, ids: Sequence[int]) -> NodeRows:
        """The rows with ``ids``, in that order."""
        index = np.array(ids, dtype=np.int64)
        return NodeRows(list(map(self.texts.__getitem__, ids)), self._numeric[index], self._work[index])


def _grown(table: np.ndarray, rows: int, used: int) -> np.ndarray:
    """``table`` with capacity ``rows``, its first ``used`` rows kept."""
    grown = np.zeros((rows, table.shape[1]))
    grown[:used] = table[:used]
    return grown


@dataclass(frozen=True, eq=False)
class BlockStructure:
    """What a block contributes to its graph's structure, in block-local node ids (``-1``: the block input).

    ``rel_index`` holds every relation entry of the block with its input as a
    node, except the input's ``self`` entry (rows ``(relation, i, j)``).
    ``paths`` has one row per node: in-degree, out-degree (inside the block),
    then longest paths, a large negative number where there is none: from a
    source inside the block, from the input; to a sink inside the block other
    than the output, to the output (the last node). ``input_paths`` gives the
    last two for the input itself and ``output_paths`` the first two for the
    output. Compared by identity (a cache key).

    Shapes:
        ``edges``: ``(2, E)``; ``rel_index``: ``(3, M)``; ``paths``: ``(n, 6)`` int64;
        ``output_parents``, ``input_children``: local ids.
    """

    num_nodes: int
    edges: np.ndarray
    rel_index: np.ndarray
    paths: np.ndarray
    input_paths: tuple[int, int]
    output_paths: tuple[int, int]
    output_parents: tuple[int, ...]
    input_children: tuple[int, ...]


@functools.lru_cache(maxsize=8192)
def block_structure(num_nodes: int, edges: tuple[tuple[int, int], ...]) -> BlockStructure:
    """The structure of a block of ``num_nodes`` nodes with ``edges`` (``-1`` = the block input), cached.

    Edges must point forward (``src < dst``), so the output (the last node) has no child in the
    block: only the next block reads it. No edge may repeat.
    """
    n = int(num_nodes)
    pairs = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    src, dst = pairs[:, 0], pairs[:, 1]
    if n < 1 or (pairs.size and (src.min() < -1 or dst.min() < 0 or dst.max() >= n or (src >= dst).any())):
        raise GraphError(f"block of {n} nodes: edges must point forward within -1..{n - 1}")
    if len(set(edges)) != len(edges):
        raise GraphError(f"block of {n} nodes: repeated edges")
    # Relations of the block with its input as node 0 (ids shifted by one), then shifted back.
    rel = relation_index(torch.from_numpy(np.stack([src + 1, dst + 1])), n + 1).numpy()
    rel = rel[:, (rel[0] != 0) | (rel[1] != 0)].copy()  # the input's own ``self`` entry belongs to the block before
    rel[1:] -= 1
    order = np.lexsort((dst, src))
    ordered = list(zip(src[order].tolist(), dst[order].tolist()))
    # Longest paths over n + 1 entries, the input last (so that index -1 reads it).
    has_parent = np.zeros(n + 1, dtype=bool)
    has_parent[dst] = True
    has_child = np.zeros(n + 1, dtype=bool)
    has_child[src] = True
    from_src = np.where(has_parent, _NONE, 0)
    from_src[n] = _NONE  # the input is not a source of the block
    from_in = np.full(n + 1, _NONE, dtype=np.int64)
    from_in[n] = 0
    for s, d in ordered:  # by increasing source: every parent is final before it is read
        from_src[d] = max(from_src[d], from_src[s] + 1)
        from_in[d] = max(from_in[d], from_in[s] + 1)
    to_sink = np.where(has_child, _NONE, 0)
    to_sink[n - 1] = _NONE  # the output leads on into the next block: its height comes from there
    to_out = np.full(n + 1, _NONE, dtype=np.int64)
    to_out[n - 1] = 0
    for s, d in reversed(ordered):  # by decreasing source: every child is final before it is read
        to_sink[s] = max(to_sink[s], to_sink[d] + 1)
        to_out[s] = max(to_out[s], to_out[d] + 1)
    paths = np.stack([np.bincount(dst, minlength=n), np.bincount(src[src >= 0], minlength=n),
                      from_src[:n], from_in[:n], to_sink[:n], to_out[:n]], axis=1).astype(np.int64)
    return BlockStructure(
        num_nodes=n, edges=np.ascontiguousarray(pairs.T), rel_index=rel, paths=paths,
        input_paths=(int(to_sink[n]), int(to_out[n])), output_paths=(int(from_src[n - 1]), int(from_in[n - 1])),
        output_parents=tuple(sorted(src[dst == n - 1].tolist())), input_children=tuple(sorted(dst[src < 0].tolist())),
    )


def chain_tensors(rows: NodeRows, blocks: Sequence[BlockStructure], *, name: str = "",
                  input_batch: int = 1) -> GraphTensors:
    """``GraphTensors`` of the graph made of ``blocks`` one after the other, each reading the previous
    block's output; ``rows`` are the nodes' features in graph order.

    Equal to ``featurize.graph_tensors`` of that graph, field by field. The structure (edges,
    relations, position features) of a sequence of blocks is built once and shared by every graph
    with that sequence (the last ``_CHAIN_CACHE`` sequences built). It is valid by construction
    (``block_structure`` checks each block), so ``GraphTensors``' own checks are skipped.
    """
    key = tuple(blocks)
    chain = _CHAINS.get(key)
    if chain is None:
        chain = _CHAINS[key] = _chain(blocks, name)
        if len(_CHAINS) > _CHAIN_CACHE:
            _CHAINS.popitem(last=False)
    if len(rows.texts) != chain.num_nodes:
        raise GraphError(f"graph {name!r}: {len(rows.texts)} node feature rows for {chain.num_nodes} nodes")
    # float32 x_num: each float64 value rounded once, as graph_tensors' ``.float()`` does
    width = rows.numeric.shape[1]
    x_num = np.empty((chain.num_nodes, width + chain.position.shape[1]), dtype=np.float32)
    x_num[:, :width] = rows.numeric
    x_num[:, width:] = chain.position
    out = object.__new__(GraphTensors)
    out.__dict__.update(texts=rows.texts, x_num=torch.from_numpy(x_num), edge_index=chain.edge_index,
                        rel_index=chain.rel_index, name=name, work=rows.work, input_batch=input_batch)
    return out


@dataclass(frozen=True)
class _Chain:
    """The structure of one sequence of blocks; its tensors are shared, read-only, by its graphs."""

    num_nodes: int
    edge_index: torch.Tensor
    rel_index: torch.Tensor
    position: np.ndarray


_CHAIN_CACHE = 2048  # NB201 has ~1,100 distinct cell structures; ~50 KB each
_CHAINS: OrderedDict[tuple[BlockStructure, ...], _Chain] = OrderedDict()


def _chain(blocks: Sequence[BlockStructure], name: str) -> _Chain:
    if not blocks:
        raise GraphError(f"graph {name!r}: has no blocks; nothing to predict")
    if blocks[0].input_children:
        raise GraphError(f"graph {name!r}: its first block reads a block input, but no block comes before it")
    sizes = np.array([b.num_nodes for b in blocks], dtype=np.int64)
    offsets = np.cumsum(sizes) - sizes
    n = int(sizes.sum())
    edges = np.concatenate([b.edges for b in blocks], axis=1) + np.repeat(offsets, [b.edges.shape[1] for b in blocks])
    return _Chain(n, torch.from_numpy(edges), torch.from_numpy(_relations(blocks, sizes, offsets, n)),
                  _positions(blocks, sizes, offsets, n))


def _positions(blocks: Sequence[BlockStructure], sizes: np.ndarray, offsets: np.ndarray, n: int) -> np.ndarray:
    """``featurize.POSITION_FEATURE_NAMES`` columns: degrees and longest paths composed block by block."""
    # Depth of each block's input (the previous output), forwards; height of each block's output, backwards.
    input_depth = [_NONE] * len(blocks)
    for k in range(1, len(blocks)):
        from_src, from_in = blocks[k - 1].output_paths
        input_depth[k] = max(from_src, input_depth[k - 1] + from_in)
    output_height = [0] * len(blocks)
    for k in range(len(blocks) - 2, -1, -1):
        to_sink, to_out = blocks[k + 1].input_paths
        output_height[k] = max(to_sink, to_out + output_height[k + 1])
    paths = np.concatenate([b.paths for b in blocks])
    depth = np.maximum(paths[:, 2], paths[:, 3] + np.repeat(input_depth, sizes))
    height = np.maximum(paths[:, 4], paths[:, 5] + np.repeat(output_height, sizes))
    out_degree = paths[:, 1].copy()
    out_degree[offsets[1:] - 1] += np.array([len(b.input_children) for b in blocks[1:]], dtype=np.int64)
    out = np.empty((n, 4))
    out[:, 0] = paths[:, 0]
    out[:, 1] = out_degree
    span = max(int(depth.max()), 1)
    out[:, 2] = depth.astype(np.float64) / span
    out[:, 3] = height.astype(np.float64) / span
    return out


def _relations(blocks: Sequence[BlockStructure], sizes: np.ndarray, offsets: np.ndarray, n: int) -> np.ndarray:
    """``batch.relation_index`` of the chain: every block's entries, shifted, plus the two-hop paths
    through each block input, sorted by ``(i, relation, j)``."""
    local = np.concatenate([b.rel_index for b in blocks], axis=1)
    local[1:] += np.repeat(offsets, [b.rel_index.shape[1] for b in blocks])
    # Parents of each block's output x children of the next block's input (global ids).
    through = [(q + int(offsets[k]), c + int(offsets[k + 1]))
               for k in range(len(blocks) - 1)
               for q in blocks[k].output_parents for c in blocks[k + 1].input_children]
    grand = np.array(through, dtype=np.int64).reshape(-1, 2).T
    m = grand.shape[1]
    rel = np.concatenate([local[0], np.full(m, _GRANDCHILDREN), np.full(m, _GRANDPARENTS)])
    i = np.concatenate([local[1], grand[0], grand[1]])
    j = np.concatenate([local[2], grand[1], grand[0]])
    order = np.argsort((i * len(ALL_RELATIONS) + rel) * n + j, kind="stable")  # distinct keys
    return np.stack([rel[order], i[order], j[order]])
