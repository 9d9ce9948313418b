"""Relation masks on hand-built DAGs, sparse/dense agreement, batching and densification."""

import pytest
import torch
from ledg_graphs import graph, random_dag

from cost_model.batch import ALL_RELATIONS, GraphTensors, collate, relation_index, relation_masks, to_dense
from targets.errors import GraphError


def _pairs(edges, n):
    """Relation name -> set of (i, j) from the dense masks of a single graph."""
    edge_index = torch.tensor(edges, dtype=torch.long).reshape(-1, 2).t()
    masks = relation_masks(edge_index, torch.zeros(n, dtype=torch.long), n)[0]
    return {r: {tuple(p) for p in masks[k].nonzero().tolist()} for k, r in enumerate(ALL_RELATIONS)}


def _both(pairs):
    return pairs | {(j, i) for i, j in pairs}


def test_diamond():
    rel = _pairs([(0, 1), (0, 2), (1, 3), (2, 3)], 4)
    assert rel["self"] == {(i, i) for i in range(4)}
    assert rel["children"] == {(0, 1), (0, 2), (1, 3), (2, 3)}
    assert rel["parents"] == {(1, 0), (2, 0), (3, 1), (3, 2)}
    assert rel["grandchildren"] == {(0, 3)}
    assert rel["grandparents"] == {(3, 0)}
    assert rel["siblings"] == {(1, 2), (2, 1)}
    assert rel["coparents"] == {(1, 2), (2, 1)}


def test_chain():
    rel = _pairs([(0, 1), (1, 2), (2, 3)], 4)
    assert rel["children"] == {(0, 1), (1, 2), (2, 3)}
    assert rel["grandchildren"] == {(0, 2), (1, 3)}
    assert rel["grandparents"] == {(2, 0), (3, 1)}
    assert rel["siblings"] == set() and rel["coparents"] == set()


def test_fork_and_join():
    fork = _pairs([(0, 1), (0, 2), (0, 3)], 4)
    assert fork["siblings"] == {(i, j) for i in (1, 2, 3) for j in (1, 2, 3) if i != j}
    assert fork["coparents"] == set() and fork["grandchildren"] == set()
    join = _pairs([(0, 3), (1, 3), (2, 3)], 4)
    assert join["coparents"] == {(i, j) for i in (0, 1, 2) for j in (0, 1, 2) if i != j}
    assert join["siblings"] == set() and join["parents"] == {(3, 0), (3, 1), (3, 2)}


def test_siblings_that_are_also_linked():
    # 1 and 2 share parent 0 and 1 -> 2 is an edge: relations overlap, none is dropped.
    rel = _pairs([(0, 1), (0, 2), (1, 2)], 3)
    assert rel["children"] == {(0, 1), (0, 2), (1, 2)}
    assert rel["siblings"] == _both({(1, 2)})
    assert rel["grandchildren"] == {(0, 2)}  # 0 -> 1 -> 2, also a direct child
    assert rel["coparents"] == _both({(0, 1)})  # both feed 2


@pytest.mark.parametrize("seed", range(8))
def test_sparse_relation_index_matches_dense(seed):
    n = 3 + seed * 2
    edges = random_dag(n, seed)
    edge_index = torch.tensor(edges).t()
    sparse = relation_index(edge_index, n)
    dense = torch.zeros(len(ALL_RELATIONS), n, n, dtype=torch.bool)
    dense[sparse[0], sparse[1], sparse[2]] = True
    assert sparse.shape[1] == int(dense.sum()), "duplicate entries"
    assert torch.equal(dense, relation_masks(edge_index, torch.zeros(n, dtype=torch.long), n)[0])
    key = (sparse[1] * len(ALL_RELATIONS) + sparse[0]) * n + sparse[2]
    assert bool((key[1:] > key[:-1]).all()), "entries must be sorted by (i, relation, j)"


def test_global_token_is_not_a_node():
    # Two disjoint chains: nothing may make 1 and 3 siblings (a global parent of all nodes would).
    rel = _pairs([(0, 1), (2, 3)], 4)
    assert rel["siblings"] == set() and rel["coparents"] == set()


def test_collate_offsets_texts_and_relation_subset():
    a = graph(3, [(0, 1), (0, 2)], texts=["x", "y", "x"])
    b = graph(2, [(0, 1)], texts=["y", "z"])
    batch = collate([a, b], relations=("siblings", "self"))
    assert batch.texts == ["x", "y", "z"]
    assert [batch.texts[i] for i in batch.node_text_index] == ["x", "y", "x", "y", "z"]
    assert batch.edge_index.tolist() == [[0, 0, 3], [1, 2, 4]]
    assert batch.batch.tolist() == [0, 0, 0, 1, 1] and batch.ptr.tolist() == [0, 3, 5]
    entries = {tuple(e) for e in batch.rel_index.t().tolist()}
    expected = {(1, i, i) for i in range(5)} | {(0, 1, 2), (0, 2, 1)}
    assert entries == expected
    assert torch.equal(batch.x_num, torch.cat([a.x_num, b.x_num]))


def test_batched_masks_are_block_diagonal_with_self_on_padding():
    a, b = graph(3, [(0, 1), (0, 2)]), graph(2, [(0, 1)])
    batch = collate([a, b])
    masks = relation_masks(batch.edge_index, batch.batch, 3)
    assert masks.shape == (2, len(ALL_RELATIONS), 3, 3)
    alone = relation_masks(b.edge_index, torch.zeros(2, dtype=torch.long), 2)[0]
    assert torch.equal(masks[1, :, :2, :2], alone)
    padded_row = masks[1, :, 2, :]
    assert padded_row.sum() == 1 and bool(padded_row[ALL_RELATIONS.index("self"), 2])
    assert not bool(masks[1, :, :2, 2].any()), "real nodes attend to padding"


def test_to_dense():
    a, b = graph(3, [(0, 1)]), graph(1, [])
    batch = collate([a, b])
    x, mask = to_dense(batch)
    assert x.shape == (2, 3, a.x_num.shape[1])
    assert mask.tolist() == [[True, True, True], [True, False, False]]
    assert torch.equal(x[0], a.x_num) and torch.equal(x[1, 0], b.x_num[0])
    assert not bool(x[1, 1:].any())


@pytest.mark.parametrize(
    "edges, message",
    [([(0, 3)], "outside"), ([(1, 1)], "self-loop"), ([(0, 1), (0, 1)], "duplicate")],
)
def test_graph_tensors_validation(edges, message):
    with pytest.raises(GraphError, match=message):
        graph(3, edges)


def test_empty_graph_rejected():
    with pytest.raises(GraphError, match="no nodes"):
        GraphTensors([], torch.zeros(0, 5), torch.zeros(2, 0, dtype=torch.long))
