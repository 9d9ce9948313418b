"""Model inputs assembled from per-block pieces equal featurizing the assembled graph, exactly."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from cost_model.batch import GraphTensors
from cost_model.chain_tensors import NodeRows, RowTable, block_structure, chain_tensors
from cost_model.featurize import graph_tensors, node_rows
from cost_model.graph import OpGraph, OpNode, TensorSpec
from targets.errors import GraphError

_SHAPES = [TensorSpec((1, c, s, s), "float32") for c in (8, 16) for s in (4, 8)]
_OPS = ("relax.nn.relu", "relax.add", "relax.nn.conv2d", "relax.nn.avg_pool2d")


def _node(rng: random.Random) -> OpNode:
    shape = rng.choice(_SHAPES)
    return OpNode(0, rng.choice(_OPS), attrs={"strides": [rng.choice((1, 2))] * 2}, inputs=[shape],
                  outputs=[shape], flops=rng.choice((0, 64, 4096)), bytes_read=shape.nbytes,
                  bytes_written=shape.nbytes)


def _block(rng: random.Random, first: bool) -> tuple[list[OpNode], tuple[tuple[int, int], ...]]:
    """A random block: the last node is its output; ``-1`` is its input (none in the first block).

    Covers what real blocks have and more: residual edges from the input to the output, nodes
    that do not depend on the input (sources), dead ends (sinks other than the output), one-node blocks.
    """
    n = rng.choice((1, 1, 2, 3, 5, 8))
    edges: set[tuple[int, int]] = set()
    for d in range(n):
        sources = list(range(-1 if not first else 0, d))
        if not sources or rng.random() < 0.1:
            continue  # a source of the block
        for s in rng.sample(sources, min(len(sources), rng.choice((1, 1, 2, 3)))):
            edges.add((s, d))
    edges = {(s, d) for s, d in edges if s != n - 1}
    if not first and rng.random() < 0.3:
        edges.add((-1, n - 1))  # residual
    return [_node(rng) for _ in range(n)], tuple(sorted(edges))


def _chain(seed: int) -> tuple[OpGraph, NodeRows, list]:
    rng = random.Random(seed)
    nodes: list[OpNode] = []
    edges: list[tuple[int, int]] = []
    table, ids, structures = RowTable(), [], []
    for k in range(rng.randint(1, 7)):
        block_nodes, block_edges = _block(rng, first=k == 0)
        offset = len(nodes)
        for i, node in enumerate(block_nodes):
            node.id = offset + i
        nodes += block_nodes
        edges += [(s + offset, d + offset) for s, d in block_edges]
        ids += table.add(node_rows(block_nodes))
        structures.append(block_structure(len(block_nodes), block_edges))
    graph = OpGraph(nodes, edges, inputs=[_SHAPES[0]], output_nodes=[len(nodes) - 1], name=f"chain{seed}")
    return graph, table.gather(ids), structures


def _assert_same(got: GraphTensors, want: GraphTensors) -> None:
    assert got.texts == want.texts
    assert torch.equal(got.x_num, want.x_num)
    assert torch.equal(got.edge_index, want.edge_index)
    assert torch.equal(got.rel_index, want.rel_index)
    assert got.work.dtype == want.work.dtype and np.array_equal(got.work, want.work)
    assert (got.name, got.input_batch, got.num_nodes) == (want.name, want.input_batch, want.num_nodes)


@pytest.mark.parametrize("seed", range(300))
def test_chain_equals_featurizing_the_assembled_graph(seed):
    graph, rows, structures = _chain(seed)
    _assert_same(chain_tensors(rows, structures, name=graph.name), graph_tensors(graph))


def test_a_repeated_chain_shares_its_structure_and_keeps_its_own_features():
    graph, rows, structures = _chain(3)
    first = chain_tensors(rows, structures, name="a")
    again = chain_tensors(rows, structures, name="b")
    assert again.rel_index is first.rel_index and again.name == "b"
    assert again.x_num is not first.x_num


def test_rows_must_cover_the_blocks():
    graph, rows, structures = _chain(5)
    with pytest.raises(GraphError, match="node feature rows"):
        chain_tensors(NodeRows(rows.texts[:-1], rows.numeric[:-1], rows.work[:-1]), structures, name="short")


def test_block_edges_point_forward_inside_the_block_and_the_first_block_has_no_input():
    for edges in (((0, 1), (1, 2)), ((1, 0),), ((-2, 0),)):  # past the output, backwards, before the input
        with pytest.raises(GraphError, match="forward"):
            block_structure(2, edges)
    with pytest.raises(GraphError, match="repeated"):
        block_structure(2, ((-1, 0), (0, 1), (0, 1)))
    reads_input = block_structure(1, ((-1, 0),))
    with pytest.raises(GraphError, match="first block"):
        chain_tensors(node_rows([_node(random.Random(0))]), [reads_input])
