"""Small graphs and inputs shared by the LeDG-Former tests (a helper module, not a test file)."""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence

import numpy as np
import torch

from cost_model.batch import GraphBatch, GraphTensors
from cost_model.ledgformer import LeDGFormerConfig
from cost_model.roofline import RooflineTargets

NUM_FEATURES = 5
TEXT_DIM = 12
TARGET_FEATURES = 3


def graph(
    num_nodes: int, edges: Sequence[tuple[int, int]], seed: int = 0, texts: Sequence[str] | None = None
) -> GraphTensors:
    gen = torch.Generator().manual_seed(seed)
    texts = list(texts) if texts is not None else [f"op{(seed + i) % 4} n{i % 3}" for i in range(num_nodes)]
    edge_index = torch.tensor(list(edges), dtype=torch.long).reshape(-1, 2).t()
    x_num = torch.randn(num_nodes, NUM_FEATURES, generator=gen)
    work = np.zeros((num_nodes, 4))
    work[:, :3] = np.exp(torch.rand(num_nodes, 3, generator=gen).double().numpy() * 12)  # 1 .. 1.6e5 FLOPs / bytes
    work[:, 3] = 4.0
    return GraphTensors(texts, x_num, edge_index, work=work)


def random_dag(num_nodes: int, seed: int, extra: float = 0.5) -> list[tuple[int, int]]:
    """A chain plus random forward skip edges (so there are siblings, co-parents, grand-relations)."""
    rng = random.Random(seed)
    edges = {(i - 1, i) for i in range(1, num_nodes)}
    for j in range(2, num_nodes):
        for i in range(j - 1):
            if rng.random() < extra / j:
                edges.add((i, j))
    return sorted(edges)


def branching_dag(num_nodes: int, seed: int) -> list[tuple[int, int]]:
    """Each node takes one or two random earlier parents: many valid topological orders."""
    rng = random.Random(seed)
    edges = set()
    for j in range(1, num_nodes):
        for _ in range(rng.choice((1, 2))):
            edges.add((rng.randrange(j), j))
    return sorted(edges)


def other_topological_order(num_nodes: int, edges: Sequence[tuple[int, int]], seed: int) -> list[int]:
    """``perm[old] = new``: a random valid topological order (Kahn's algorithm with random picks)."""
    rng = random.Random(seed)
    indeg = [0] * num_nodes
    children: list[list[int]] = [[] for _ in range(num_nodes)]
    for s, d in edges:
        indeg[d] += 1
        children[s].append(d)
    ready = [i for i in range(num_nodes) if indeg[i] == 0]
    perm = [0] * num_nodes
    for new in range(num_nodes):
        old = ready.pop(rng.randrange(len(ready)))
        perm[old] = new
        for c in children[old]:
            indeg[c] -= 1
            if indeg[c] == 0:
                ready.append(c)
    return perm


def permuted(g: GraphTensors, perm: Sequence[int]) -> GraphTensors:
    """The same graph with node ``old`` renamed ``perm[old]``."""
    perm_t = torch.tensor(perm)
    inverse = torch.empty_like(perm_t)
    inverse[perm_t] = torch.arange(len(perm))
    return GraphTensors([g.texts[int(o)] for o in inverse], g.x_num[inverse], perm_t[g.edge_index],
                        work=g.work[inverse.numpy()])


def text_embeddings(texts: Sequence[str], dim: int = TEXT_DIM) -> torch.Tensor:
    """A fixed embedding per string (seeded by its CRC), independent of batch order."""
    rows = [torch.randn(dim, generator=torch.Generator().manual_seed(zlib.crc32(t.encode()))) for t in texts]
    return torch.stack(rows)


def target_inputs(num_rows: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    emb = torch.randn(num_rows, TEXT_DIM, generator=gen)
    values = torch.randn(num_rows, TARGET_FEATURES, generator=gen)
    mask = torch.ones(num_rows, TARGET_FEATURES)
    mask[:, -1] = 0.0
    return emb, values, mask


def config(**overrides) -> LeDGFormerConfig:
    base = dict(text_dim=TEXT_DIM, num_node_features=NUM_FEATURES, num_target_features=TARGET_FEATURES,
                dim=16, layers=2, heads=4, dropout=0.0)
    base.update(overrides)
    return LeDGFormerConfig(**base)


def roofline_inputs(num_rows: int, seed: int = 0) -> RooflineTargets:
    """Targets with P in 1e9..1e13 FLOP/s and BW in 1e9..1e12 B/s, the last one stating neither."""
    gen = torch.Generator().manual_seed(seed + 1)
    log_specs = torch.stack([torch.rand(num_rows, generator=gen, dtype=torch.float64) * 9.2 + 20.7,
                             torch.rand(num_rows, generator=gen, dtype=torch.float64) * 6.9 + 20.7], dim=1)
    known = torch.ones(num_rows, 2, dtype=torch.bool)
    known[-1] = False
    return RooflineTargets(log_specs * known, known, torch.zeros(num_rows, dtype=torch.float64),
                           torch.zeros(num_rows, dtype=torch.float64))


def inputs_for(batch: GraphBatch, target_rows: torch.Tensor | None = None, seed: int = 0):
    """Model inputs for a batch; ``target_rows`` picks which of a fixed set of targets each graph gets."""
    emb, values, mask = target_inputs(8, seed)
    specs = roofline_inputs(8, seed)
    rows = torch.arange(batch.num_graphs) % 8 if target_rows is None else target_rows
    roofline = RooflineTargets(specs.log_specs[rows], specs.specs_known[rows], specs.batch_size[rows],
                               specs.elem_bytes[rows])
    return batch, text_embeddings(batch.texts), emb[rows], values[rows], mask[rows], roofline
