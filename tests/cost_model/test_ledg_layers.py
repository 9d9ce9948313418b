"""LeDG-Former blocks against dense reference formulas written out here."""

import pytest
import torch
from ledg_graphs import graph, random_dag

from cost_model.batch import ALL_RELATIONS, collate, relation_masks
from cost_model.layers import (
    BGIFFN,
    Adjacency,
    CSRPattern,
    FiLM,
    RelationAttention,
    RelationGate,
    RelationIndex,
    sddmm,
    spmm,
)

DIM = 16


def _batch(relations=ALL_RELATIONS):
    graphs = [graph(7, random_dag(7, seed=1)), graph(1, []), graph(5, [(0, 1), (0, 2), (1, 2), (2, 4)])]
    return collate(graphs, relations)


def _dense_reference(layer, x, batch, gates):
    """Per-relation masked softmax attention, one (node, head, relation) at a time."""
    s, h, dh = batch.num_nodes, layer.heads, layer.head_dim
    n_max = int(batch.counts.max())
    masks = relation_masks(batch.edge_index, batch.batch, n_max, batch.relations)
    q, k, v = layer.qkv(x).view(x.shape[0], 3, h, dh).unbind(1)
    q = q / dh**0.5
    out = torch.zeros(x.shape[0], h, dh)
    for i in range(s):
        g = int(batch.batch[i])
        base = int(batch.ptr[g])
        li = i - base
        for head in range(h):
            for r in range(len(batch.relations)):
                js = [base + j for j in masks[g, r, li].nonzero().flatten().tolist() if j < int(batch.counts[g])]
                if not js:
                    continue
                p = torch.softmax(torch.stack([q[i, head] @ k[j, head] for j in js]), 0)
                out[i, head] += gates[i, head, r] * sum(pj * v[j, head] for pj, j in zip(p, js))
            if layer.global_token:
                out[i, head] += gates[i, head, -1] * v[s + g, head]
    if layer.global_token:
        for g in range(batch.num_graphs):
            keys = list(range(int(batch.ptr[g]), int(batch.ptr[g + 1]))) + [s + g]
            for head in range(h):
                p = torch.softmax(torch.stack([q[s + g, head] @ k[j, head] for j in keys]), 0)
                out[s + g, head] = sum(pj * v[j, head] for pj, j in zip(p, keys))
    return layer.out(out.reshape(x.shape[0], -1))


def _rows(batch, global_token, seed=0):
    rows = batch.num_nodes + (batch.num_graphs if global_token else 0)
    return torch.randn(rows, DIM, generator=torch.Generator().manual_seed(seed))


def test_csr_kernels_match_dense_and_gradcheck():
    row, col = torch.tensor([0, 0, 1, 2, 2, 2, 4]), torch.tensor([0, 3, 1, 0, 1, 4, 2])
    pattern = CSRPattern.from_coo(row, col, 5, 6).repeat_diagonal(2)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(10, 3, dtype=torch.double, generator=gen, requires_grad=True)
    b = torch.randn(12, 3, dtype=torch.double, generator=gen, requires_grad=True)
    vals = torch.randn(14, dtype=torch.double, generator=gen, requires_grad=True)
    x = torch.randn(12, 2, dtype=torch.double, generator=gen, requires_grad=True)
    dense = torch.zeros(10, 12, dtype=torch.double)
    dense[pattern.row, pattern.col] = vals.detach()
    assert torch.allclose(sddmm(pattern, a, b), (a @ b.T)[pattern.row, pattern.col])
    assert torch.allclose(spmm(pattern, vals, x), dense @ x)
    assert torch.autograd.gradcheck(lambda a, b: sddmm(pattern, a, b), (a, b))
    assert torch.autograd.gradcheck(lambda v, x: spmm(pattern, v, x), (vals, x))


@pytest.mark.parametrize("global_token", [True, False])
def test_dynamic_attention_matches_dense_reference(global_token):
    torch.manual_seed(0)
    batch = _batch()
    layer = RelationAttention(DIM, 4, len(ALL_RELATIONS), gate="dynamic", global_token=global_token)
    torch.nn.init.normal_(layer.gate.proj.weight)  # non-trivial, node-dependent gates
    index = RelationIndex.from_batch(batch, global_token)
    x = _rows(batch, global_token)
    gates = layer.gate(x[: batch.num_nodes], index.available)
    expected = _dense_reference(layer, x, batch, gates)
    assert torch.allclose(layer(x, index), expected, atol=1e-5)


def test_static_gates_are_nn_former_head_masks():
    torch.manual_seed(0)
    batch = _batch()
    slots = len(ALL_RELATIONS) + 1
    layer = RelationAttention(DIM, 8, len(ALL_RELATIONS), gate="static", global_token=True)
    index = RelationIndex.from_batch(batch, True)
    x = _rows(batch, True, seed=1)
    constant = torch.zeros(batch.num_nodes, 8, slots)
    constant[:, torch.arange(8), torch.arange(8) % slots] = 1.0  # head h sees channel h mod slots only
    assert torch.allclose(layer(x, index), _dense_reference(layer, x, batch, constant), atol=1e-5)


def test_gate_modes():
    available = torch.tensor([[True, False, True], [True, True, True]])
    x = torch.randn(2, DIM)
    dynamic = RelationGate(DIM, 2, 3, "dynamic")
    torch.nn.init.normal_(dynamic.proj.weight)
    g = dynamic(x, available)
    assert torch.allclose(g.sum(-1), torch.ones(2, 2)) and bool((g[0, :, 1] == 0).all())
    learned = RelationGate(DIM, 2, 3, "learned")
    assert torch.allclose(learned(x, available)[0], torch.tensor([[0.5, 0.0, 0.5]] * 2))
    static = RelationGate(DIM, 4, 3, "static")
    assert static(x, available)[1].argmax(-1).tolist() == [0, 1, 2, 0]
    with pytest.raises(ValueError, match="heads >= channels"):
        RelationGate(DIM, 2, 3, "static")


def test_no_leakage_between_unrelated_nodes_through_the_global_token():
    # Chains 0->1 and 2->3 in one graph: node 1 may only see 0, itself and the global token.
    batch = collate([graph(4, [(0, 1), (2, 3)])])
    layer = RelationAttention(DIM, 4, len(ALL_RELATIONS), global_token=True)
    torch.nn.init.normal_(layer.gate.proj.weight)
    index = RelationIndex.from_batch(batch, True)
    x = _rows(batch, True)
    moved = x.clone()
    moved[2:4] += 5.0
    before, after = layer(x, index), layer(moved, index)
    assert torch.allclose(before[:2], after[:2], atol=1e-6)
    assert not torch.allclose(before[4], after[4]), "the global token must see every node"


def test_empty_relation_rows_give_zeros_not_nan():
    batch = collate([graph(3, [(0, 1)])], relations=("children",))  # nodes 1 and 2 have no children
    layer = RelationAttention(DIM, 2, 1, global_token=False)
    index = RelationIndex.from_batch(batch, False)
    x = _rows(batch, False).requires_grad_()
    out = layer(x, index)
    assert torch.allclose(out[1:], layer.out.bias.expand(2, -1))
    out.sum().backward()
    assert bool(torch.isfinite(x.grad).all())


def test_bgiffn_matches_dense_formula():
    torch.manual_seed(0)
    batch = _batch()
    ffn = BGIFFN(DIM, 8)
    x = torch.randn(batch.num_nodes + 2, DIM)  # two extra rows without edges, like global tokens
    adjacency = Adjacency.from_edges(batch.edge_index, x.shape[0])
    a = torch.zeros(x.shape[0], x.shape[0])
    a[batch.edge_index[0], batch.edge_index[1]] = 1.0
    h = ffn.fc1(x) + torch.cat([a @ ffn.g1(x), a.T @ ffn.g2(x)], -1)
    assert torch.allclose(ffn(x, adjacency), ffn.fc2(torch.nn.functional.gelu(h)), atol=1e-6)
    plain = BGIFFN(DIM, 8, bidirectional=False)
    assert torch.allclose(plain(x), plain.fc2(torch.nn.functional.gelu(plain.fc1(x))))


def test_film_starts_as_identity():
    film = FiLM(4, DIM)
    x, cond, group = torch.randn(5, DIM), torch.randn(2, 4), torch.tensor([0, 0, 1, 1, 1])
    assert torch.equal(film(x, cond, group), x)
    torch.nn.init.normal_(film.proj.weight)
    gamma, beta = film.proj(cond).chunk(2, -1)
    assert torch.allclose(film(x, cond, group), x * (1 + gamma[group]) + beta[group], atol=1e-6)


def test_attention_gradients_match_finite_differences():
    batch = collate([graph(4, [(0, 1), (0, 2), (1, 3), (2, 3)]), graph(2, [(0, 1)])])
    torch.manual_seed(0)
    layer = RelationAttention(8, 2, len(ALL_RELATIONS), global_token=True).double()
    torch.nn.init.normal_(layer.gate.proj.weight)
    index = RelationIndex.from_batch(batch, True)
    x = torch.randn(batch.num_nodes + 2, 8, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: layer(x, index), (x,))
