"""Flat (PyTorch-Geometric-style) storage of operator graphs and their relation structure.

Conventions, used everywhere in ``cost_model``:

* Adjacency: ``A[i, j] = 1`` iff there is an edge ``i -> j`` (data flows from
  ``i`` to ``j``); ``edge_index[0]`` holds sources, ``edge_index[1]`` targets.
* Relation masks are read row-wise, as attention: ``M_r[i, j]`` is True iff
  query node ``i`` attends to key node ``j`` under relation ``r``:

  ===============  ====================================  ==========================
  relation         ``M_r[i, j]`` is True iff              matrix form
  ===============  ====================================  ==========================
  self             ``j == i``                             ``I``
  children         edge ``i -> j``                        ``A``
  parents          edge ``j -> i``                        ``Aᵀ``
  grandchildren    path ``i -> k -> j``                   ``A·A > 0``
  grandparents     path ``j -> k -> i``                   ``Aᵀ·Aᵀ > 0``
  siblings         ``i != j`` share a parent ``k``        ``Aᵀ·A > 0``, off-diagonal
  coparents        ``i != j`` share a child ``k``         ``A·Aᵀ > 0``, off-diagonal
  ===============  ====================================  ==========================

  Relations overlap: ``0->1, 0->2, 1->2`` makes 2 both a child and a sibling
  of 1, and a child and a grandchild of 0. Each relation has its own softmax
  in attention, so overlaps never double-count within one relation.
* Global tokens (the target token) are not graph nodes and never appear in
  ``edge_index``: a global node wired as parent of every node (as the public
  NN-Former code does) would make every pair siblings (``Aᵀ·A`` all ones).
  The attention layer gives them their own channel instead.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from cost_model.roofline import WORK_COLUMNS
from targets.errors import GraphError

__all__ = [
    "ALL_RELATIONS",
    "GraphTensors",
    "GraphBatch",
    "relation_index",
    "collate",
    "to_dense",
    "relation_masks",
]

ALL_RELATIONS: tuple[str, ...] = (
    "self",
    "children",
    "parents",
    "grandchildren",
    "grandparents",
    "siblings",
    "coparents",
)


def relation_index(edge_index: Tensor, num_nodes: int) -> Tensor:
    """All relation entries of one graph, sparse, for ``ALL_RELATIONS``.

    Two-hop relations are joins of the edge list with itself, so the cost
    follows the number of related pairs, not ``num_nodes ** 2`` (a node with
    fan-out ``k`` still gives ``k * (k - 1)`` sibling entries). The joins run
    in numpy: they are index arithmetic on a few hundred entries, where each
    torch call costs more in dispatch (and, for ``repeat_interleave`` with two
    threads, milliseconds) than the work itself.

    Shapes:
        ``edge_index``: ``(2, E)`` -> ``(3, M)`` rows ``(relation, i, j)``,
        sorted by ``(i, relation, j)``, relation ids index ``ALL_RELATIONS``.
    """
    n = int(num_nodes)
    edges = edge_index.long().numpy()
    src, dst = edges[0], edges[1]
    nodes = np.arange(n, dtype=np.int64)
    grandchildren = _two_hop(src, dst, src, dst, n)  # i -> k -> j
    siblings = _two_hop(dst, src, src, dst, n, drop_self=True)  # i <- k -> j
    coparents = _two_hop(src, dst, dst, src, n, drop_self=True)  # i -> k <- j
    parts = [
        (nodes, nodes),
        (src, dst),
        (dst, src),
        grandchildren,
        (grandchildren[1], grandchildren[0]),
        siblings,
        coparents,
    ]
    sizes = [p[0].size for p in parts]
    rel = np.repeat(np.arange(len(parts), dtype=np.int64), sizes)
    i = np.concatenate([p[0] for p in parts])
    j = np.concatenate([p[1] for p in parts])
    order = np.argsort((i * len(ALL_RELATIONS) + rel) * max(n, 1) + j)  # keys are distinct: any sort will do
    return torch.from_numpy(np.stack([rel[order], i[order], j[order]]))


def _two_hop(a_out: np.ndarray, a_mid: np.ndarray, b_mid: np.ndarray, b_out: np.ndarray, n: int,
             drop_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Distinct pairs ``(a_out[e], b_out[f])`` over entry pairs with ``a_mid[e] == b_mid[f]``."""
    b_out = b_out[np.argsort(b_mid, kind="stable")]
    degree = np.bincount(b_mid, minlength=n)
    start = np.cumsum(degree) - degree
    reps = degree[a_mid]
    left = np.repeat(a_out, reps)
    run_start = np.repeat(np.cumsum(reps) - reps, reps)
    right = b_out[np.repeat(start[a_mid], reps) + np.arange(left.size) - run_start]
    if drop_self:
        keep = left != right
        left, right = left[keep], right[keep]
    keys = np.unique(left * max(n, 1) + right)
    return keys // max(n, 1), keys % max(n, 1)


@dataclass
class GraphTensors:
    """One graph ready for batching; build it once per graph and reuse it every epoch.

    ``work`` holds each node's raw FLOPs and bytes (columns ``roofline.WORK_COLUMNS``) as
    lowered at ``input_batch``: the roofline head scales them to each target's batch and
    precision, so they stay unnormalized float64. None for graphs built without them (the
    free head does not read them).

    Shapes:
        ``texts``: N operator strings; ``x_num``: ``(N, F)`` float32;
        ``edge_index``: ``(2, E)`` long; ``rel_index``: ``(3, M)`` (see ``relation_index``),
        computed here when not given; ``work``: ``(N, 4)`` float64 or None.
    """

    texts: list[str]
    x_num: Tensor
    edge_index: Tensor
    rel_index: Tensor | None = None
    name: str = ""
    work: np.ndarray | None = None
    input_batch: int = 1

    def __post_init__(self) -> None:
        n = len(self.texts)
        where = f"graph {self.name!r}" if self.name else "graph"
        if n == 0:
            raise GraphError(f"{where}: has no nodes; the cost model needs at least one operator")
        if self.x_num.dim() != 2 or self.x_num.shape[0] != n:
            raise GraphError(f"{where}: x_num has shape {tuple(self.x_num.shape)}, expected ({n}, F)")
        if self.work is not None and (self.work.shape != (n, len(WORK_COLUMNS)) or self.work.dtype != np.float64):
            raise GraphError(f"{where}: work has shape {self.work.shape} ({self.work.dtype}), "
                             f"expected ({n}, {len(WORK_COLUMNS)}) float64")
        if self.input_batch < 1:
            raise GraphError(f"{where}: input_batch={self.input_batch}, expected >= 1")
        self.edge_index = self.edge_index.long().reshape(2, -1)
        src, dst = self.edge_index.numpy()
        if src.size and (min(src.min(), dst.min()) < 0 or max(src.max(), dst.max()) >= n):
            raise GraphError(f"{where}: edge_index points outside 0..{n - 1}")
        if (src == dst).any():
            raise GraphError(f"{where}: self-loop in edge_index")
        if np.unique(src * n + dst).size != src.size:
            raise GraphError(f"{where}: duplicate edges in edge_index")
        if self.rel_index is None:
            self.rel_index = relation_index(self.edge_index, n)

    @property
    def num_nodes(self) -> int:
        return len(self.texts)


@dataclass
class GraphBatch:
    """B graphs stored flat; node ``n`` of graph ``b`` is row ``ptr[b] + n``.

    Each distinct operator string appears once in ``texts`` so that it is
    embedded once per batch.

    Shapes:
        ``x_num``: ``(S, F)`` with S = total nodes; ``node_text_index``: ``(S,)``
        into ``texts`` (U strings); ``edge_index``: ``(2, E)``; ``batch``: ``(S,)``;
        ``ptr``: ``(B + 1,)``; ``rel_index``: ``(3, M)`` rows ``(relation, i, j)``,
        relation ids index ``relations``, sorted by ``(i, relation, j)``; ``work``: ``(S, 4)``
        float64 (None unless every graph has it); ``input_batch``: ``(B,)`` float64.
    """

    x_num: Tensor
    texts: list[str]
    node_text_index: Tensor
    edge_index: Tensor
    batch: Tensor
    ptr: Tensor
    rel_index: Tensor
    relations: tuple[str, ...]
    work: Tensor | None = None
    input_batch: Tensor | None = None

    def to(self, device: torch.device) -> "GraphBatch":
        """This batch's tensors on ``device`` (a CPU batch is returned as it is). Index structures are
        built from the CPU batch (numpy) before moving."""
        if device.type == "cpu":
            return self
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return replace(self, x_num=move(self.x_num), node_text_index=move(self.node_text_index),
                                   edge_index=move(self.edge_index), batch=move(self.batch), ptr=move(self.ptr),
                                   rel_index=move(self.rel_index), work=move(self.work),
                                   input_batch=move(self.input_batch))

    @property
    def num_graphs(self) -> int:
        return int(self.ptr.numel() - 1)

    @property
    def num_nodes(self) -> int:
        return int(self.x_num.shape[0])

    @property
    def counts(self) -> Tensor:
        """Nodes per graph, ``(B,)``."""
        return self.ptr[1:] - self.ptr[:-1]


def collate(graphs: Sequence[GraphTensors], relations: Sequence[str] = ALL_RELATIONS) -> GraphBatch:
    """Concatenate graphs into one ``GraphBatch`` keeping only ``relations`` (in that order)."""
    if not graphs:
        raise ValueError("collate needs at least one graph")
    relations = tuple(relations)
    unknown = [r for r in relations if r not in ALL_RELATIONS]
    if unknown or len(set(relations)) != len(relations) or not relations:
        raise ValueError(f"relations {relations!r}: expected distinct names from {ALL_RELATIONS}")
    widths = {int(g.x_num.shape[1]) for g in graphs}
    if len(widths) != 1:
        raise GraphError(
            f"graphs have different numeric feature widths {sorted(widths)}; featurize them with one schema"
        )

    remap = np.full(len(ALL_RELATIONS), -1, dtype=np.int64)
    remap[[ALL_RELATIONS.index(r) for r in relations]] = np.arange(len(relations))
    counts = np.array([g.num_nodes for g in graphs], dtype=np.int64)
    ptr = np.zeros(len(graphs) + 1, dtype=np.int64)
    ptr[1:] = np.cumsum(counts)
    flat_texts = list(itertools.chain.from_iterable(g.texts for g in graphs))
    text_ids = dict(zip(dict.fromkeys(flat_texts), itertools.count()))  # distinct texts, first seen first
    node_text = np.fromiter(map(text_ids.__getitem__, flat_texts), dtype=np.int64, count=len(flat_texts))
    # Per-graph index tensors are concatenated once and shifted by each graph's row offset.
    edges = np.concatenate([g.edge_index.numpy() for g in graphs], axis=1)
    edges += np.repeat(ptr[:-1], [g.edge_index.shape[1] for g in graphs])
    rel = np.concatenate([g.rel_index.numpy() for g in graphs], axis=1)
    rel[1:] += np.repeat(ptr[:-1], [g.rel_index.shape[1] for g in graphs])
    if relations != ALL_RELATIONS:
        rel[0] = remap[rel[0]]
        rel = rel[:, rel[0] >= 0]
    has_work = all(g.work is not None for g in graphs)
    return GraphBatch(
        x_num=torch.cat([g.x_num for g in graphs]).float(),
        texts=list(text_ids),
        node_text_index=torch.from_numpy(node_text),
        edge_index=torch.from_numpy(edges),
        batch=torch.from_numpy(np.repeat(np.arange(len(graphs), dtype=np.int64), counts)),
        ptr=torch.from_numpy(ptr),
        rel_index=torch.from_numpy(np.ascontiguousarray(rel)),
        relations=relations,
        work=torch.from_numpy(np.concatenate([g.work for g in graphs])) if has_work else None,
        input_batch=torch.tensor([float(g.input_batch) for g in graphs], dtype=torch.float64),
    )


def to_dense(batch: GraphBatch, x: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Pad flat rows (``batch.x_num`` unless ``x`` is given) to ``(B, N_max, F)``.

    Returns ``(x_dense, mask)``; padded rows are zero and ``mask`` is False there.
    """
    x = batch.x_num if x is None else x
    n_max = int(batch.counts.max())
    local = torch.arange(batch.num_nodes) - batch.ptr[batch.batch]
    dense = x.new_zeros((batch.num_graphs, n_max) + tuple(x.shape[1:]))
    dense[batch.batch, local] = x
    mask = torch.zeros(batch.num_graphs, n_max, dtype=torch.bool)
    mask[batch.batch, local] = True
    return dense, mask


def relation_masks(
    edge_index: Tensor,
    batch: Tensor,
    num_nodes_max: int,
    relations: Sequence[str] = ALL_RELATIONS,
    num_graphs: int | None = None,
) -> Tensor:
    """Dense relation masks, for inspection and as the reference the sparse path is tested against.

    Padded positions get only the ``self`` relation (when it is requested), so a
    dense masked softmax over them stays finite while they attend to nothing real.

    Shapes:
        ``edge_index``: ``(2, E)`` flat node ids; ``batch``: ``(S,)`` sorted graph ids
        -> ``(B, R, N_max, N_max)`` bool with ``M[b, r, i, j]`` as in the module docstring.
    """
    num_graphs = int(batch.max()) + 1 if num_graphs is None else num_graphs
    counts = torch.bincount(batch, minlength=num_graphs)
    ptr = torch.zeros(num_graphs + 1, dtype=torch.long)
    ptr[1:] = counts.cumsum(0)
    g = batch[edge_index[0]]
    src, dst = edge_index[0] - ptr[g], edge_index[1] - ptr[g]
    a = torch.zeros(num_graphs, num_nodes_max, num_nodes_max)
    a[g, src, dst] = 1.0
    at = a.transpose(1, 2)
    eye = torch.eye(num_nodes_max, dtype=torch.bool).expand(num_graphs, -1, -1)
    dense = {
        "self": eye.clone(),
        "children": a > 0,
        "parents": at > 0,
        "grandchildren": (a @ a) > 0,
        "grandparents": (at @ at) > 0,
        "siblings": ((at @ a) > 0) & ~eye,
        "coparents": ((a @ at) > 0) & ~eye,
    }
    return torch.stack([dense[r] for r in relations], dim=1)
