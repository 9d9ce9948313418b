"""The fast featurize / relation / collate path agrees exactly with straightforward reference versions."""

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from ledg_graphs import branching_dag, graph, random_dag

import cost_model
import targets
from cost_model import featurize
from cost_model.batch import ALL_RELATIONS, collate, relation_index
from cost_model.featurize import graph_tensors, node_numeric_features, node_text, position_features
from cost_model.graph import OpGraph, OpNode, TensorSpec
from cost_model.layers.relation_attention import RelationIndex
from cost_model.predictor import LatencyPredictor

ACT = TensorSpec((1, 16, 32, 32), "float32")
HALF = TensorSpec((1, 16, 16, 16), "float32")
NHWC = TensorSpec((1, 32, 32, 16), "float32")


def _conv(c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1, attrs_first: str = "strides") -> OpNode:
    attrs = {"strides": [stride, stride], "padding": [k // 2] * 4, "dilation": [1, 1], "groups": groups,
             "data_layout": "NCHW", "kernel_layout": "OIHW"}
    if attrs_first != "strides":  # the same attributes inserted in another order
        attrs = dict(reversed(list(attrs.items())))
    weight = TensorSpec((c_out, c_in // groups, k, k), "float32")
    macs = c_out * 32 * 32 * (c_in // groups) * k * k
    return OpNode(0, "relax.nn.conv2d", attrs=attrs, inputs=[ACT, weight], outputs=[ACT], flops=2 * macs,
                  macs=macs, params=weight.numel, bytes_read=ACT.nbytes + weight.nbytes, bytes_written=ACT.nbytes)


def _mixed_nodes() -> list[OpNode]:
    """Operators that differ in exactly one thing the features read, plus exact repeats."""
    relu = OpNode(0, "relax.nn.relu", inputs=[ACT], outputs=[ACT], flops=ACT.numel)
    nodes = [
        _conv(16, 16, 3), _conv(16, 16, 3), _conv(16, 16, 3, attrs_first="padding"), _conv(16, 16, 1),
        _conv(16, 16, 3, stride=2), _conv(16, 16, 3, groups=16), relu,
        OpNode(0, "relax.nn.relu", name="other name", inputs=[ACT], outputs=[ACT], flops=ACT.numel),
        OpNode(0, "relax.nn.relu", inputs=[ACT], outputs=[ACT], flops=ACT.numel + 1),  # only the cost differs
        OpNode(0, "relax.nn.relu", inputs=[HALF], outputs=[HALF], flops=HALF.numel),
        OpNode(0, "relax.nn.relu", inputs=[TensorSpec((1, 16, 32, 32), "float16")],
               outputs=[TensorSpec((1, 16, 32, 32), "float16")], flops=ACT.numel),
        OpNode(0, "relax.nn.avg_pool2d", attrs={"pool_size": [3, 3], "strides": [2, 1], "padding": [0, 1, 0, 1],
                                                  "layout": "NHWC"}, inputs=[NHWC], outputs=[NHWC]),
        OpNode(0, "relax.mean", attrs={"axis": [2, 3], "keepdims": True}, inputs=[ACT],
               outputs=[TensorSpec((1, 16, 1, 1), "float32")]),
        OpNode(0, "relax.mean", attrs={"axis": [2, 3], "keepdims": 1}, inputs=[ACT],  # 1 is not True
               outputs=[TensorSpec((1, 16, 1, 1), "float32")]),
        OpNode(0, "relax.concat", attrs={"axis": 1}, inputs=[TensorSpec((-1, 8), "float16")] * 3,
               outputs=[TensorSpec((-1, 24), "float16")]),
        OpNode(0, "fused_conv2d_add_relu", members=["relax.nn.conv2d", "relax.add", "relax.nn.relu"],
               member_ids=[1, 2, 3], inputs=[ACT, TensorSpec((16, 16, 1, 1), "float32"), ACT], outputs=[ACT],
               flops=3 * ACT.numel),
        OpNode(0, "fused_conv2d_add_relu", members=["relax.nn.conv2d", "relax.add"], member_ids=[1, 2],
               inputs=[ACT, TensorSpec((16, 16, 1, 1), "float32"), ACT], outputs=[ACT], flops=3 * ACT.numel),
        OpNode(0, "tir.loop.parallel", attrs={"extent": 32, "pragma_auto_unroll_max_step": 64},
               outputs=[TensorSpec((32,), "int32")]),
        OpNode(0, "tir.block", attrs={"iters": "SSR", "read_strides": [0, 1], "write_strides": [1]},
               inputs=[TensorSpec((64, 64), "float32")], outputs=[TensorSpec((64,), "float32")], flops=4096),
        OpNode(0, "tir.block", attrs={"iters": "SSR", "read_strides": [None, 1], "write_strides": [1]},
               inputs=[TensorSpec((64, 64), "float32")], outputs=[TensorSpec((64,), "float32")], flops=4096),
        OpNode(0, "relax.add", inputs=[], outputs=[]),
    ]
    for i, n in enumerate(nodes):
        n.id = i
    return nodes


def _mixed_graph(seed: int) -> OpGraph:
    """The mixed operators in a shuffled order, wired as a random DAG."""
    nodes = _mixed_nodes()
    random.Random(seed).shuffle(nodes)
    for i, n in enumerate(nodes):
        n.id = i
    return OpGraph(nodes=nodes, edges=branching_dag(len(nodes), seed), name=f"mixed{seed}")


def _reference_tensors(g: OpGraph) -> tuple[list[str], torch.Tensor]:
    """Node by node, without any table: the definition the interned path must reproduce."""
    rows = [node_numeric_features(n) + p for n, p in zip(g.nodes, position_features(g.num_nodes, g.edges))]
    return [node_text(n) for n in g.nodes], torch.tensor(rows, dtype=torch.float32)


@pytest.mark.parametrize("max_kinds", [100_000, 5])
def test_interned_features_equal_per_node_features(monkeypatch, max_kinds):
    monkeypatch.setattr(featurize, "_KINDS", featurize._KindTable(max_kinds=max_kinds))
    graphs = [_mixed_graph(seed) for seed in range(4)]
    for g in graphs + graphs[::-1]:  # the second pass reads rows interned by other graphs
        texts, x_num = _reference_tensors(g)
        gt = graph_tensors(g)
        assert gt.texts == texts
        assert torch.equal(gt.x_num, x_num)
        assert gt.edge_index.tolist() == [list(e) for e in zip(*g.edges)]
    assert len(featurize._KINDS) <= max(max_kinds, len(_mixed_nodes()))


def test_kind_key_separates_what_the_features_read():
    nodes = _mixed_nodes()
    by_key: dict[tuple, tuple] = {}
    for n in nodes:
        seen = by_key.setdefault(featurize.kind_key(n), (node_text(n), node_numeric_features(n)))
        assert seen == (node_text(n), node_numeric_features(n))
    assert len(by_key) == len(nodes) - 2  # the repeated conv and the renamed relu share their rows


def test_failed_featurization_leaves_the_table_unchanged(monkeypatch):
    table = featurize._KindTable()
    monkeypatch.setattr(featurize, "_KINDS", table)
    bad = OpNode(1, "relax.nn.relu", inputs=[TensorSpec((4,), "weird")], outputs=[TensorSpec((4,), "weird")])
    with pytest.raises(Exception, match="dtype"):
        graph_tensors(OpGraph(nodes=[_conv(16, 16, 3), bad], edges=[(0, 1)]))
    assert len(table) == 0 and table.numeric.shape[0] == 0


# ----------------------------------------------------------------- relations

def _reference_relations(n: int, edges: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """``(relation, i, j)`` by definition, with Python sets, sorted by ``(i, relation, j)``."""
    children = {i: {d for s, d in edges if s == i} for i in range(n)}
    parents = {i: {s for s, d in edges if d == i} for i in range(n)}
    rel = {
        "self": {(i, i) for i in range(n)},
        "children": {(i, j) for i in range(n) for j in children[i]},
        "parents": {(i, j) for i in range(n) for j in parents[i]},
        "grandchildren": {(i, j) for i in range(n) for k in children[i] for j in children[k]},
        "grandparents": {(i, j) for i in range(n) for k in parents[i] for j in parents[k]},
        "siblings": {(i, j) for i in range(n) for k in parents[i] for j in children[k] if j != i},
        "coparents": {(i, j) for i in range(n) for k in children[i] for j in parents[k] if j != i},
    }
    return sorted(((r, i, j) for r, name in enumerate(ALL_RELATIONS) for i, j in rel[name]),
                  key=lambda e: (e[1], e[0], e[2]))


@pytest.mark.parametrize("seed", range(10))
def test_relation_index_equals_reference(seed):
    n = 1 + 3 * seed
    edges = random_dag(n, seed, extra=1.5) if seed % 2 else branching_dag(n, seed)
    got = relation_index(torch.tensor(edges, dtype=torch.long).reshape(-1, 2).t(), n)
    assert got.dtype == torch.long
    assert [tuple(c) for c in got.t().tolist()] == _reference_relations(n, edges)


def test_collate_equals_per_graph_relations_shifted():
    sizes = [1, 7, 4, 12, 2]
    gs = [graph(n, random_dag(n, s, extra=1.0), seed=s) for s, n in enumerate(sizes)]
    for relations in (ALL_RELATIONS, ("self", "siblings", "grandparents")):
        batch = collate(gs, relations)
        expected, offset = [], 0
        for g, n in zip(gs, sizes):
            edges = [tuple(e) for e in g.edge_index.t().tolist()]
            for r, i, j in _reference_relations(n, edges):
                if ALL_RELATIONS[r] in relations:
                    expected.append((relations.index(ALL_RELATIONS[r]), i + offset, j + offset))
            offset += n
        assert [tuple(c) for c in batch.rel_index.t().tolist()] == expected
        assert batch.batch.tolist() == [b for b, n in enumerate(sizes) for _ in range(n)]
        assert batch.ptr.tolist() == np.concatenate([[0], np.cumsum(sizes)]).tolist()
        assert [batch.texts[k] for k in batch.node_text_index.tolist()] == [t for g in gs for t in g.texts]


def test_relation_index_global_rows_follow_their_definition():
    sizes = [3, 1, 5]
    gs = [graph(n, random_dag(n, s, extra=1.0), seed=s) for s, n in enumerate(sizes)]
    batch = collate(gs)
    index = RelationIndex.from_batch(batch, global_token=True)
    s, rows, r = batch.num_nodes, batch.num_nodes + len(sizes), len(ALL_RELATIONS)
    pairs = list(zip(index.pattern.row.tolist(), index.pattern.col.tolist()))
    entries = [pairs[p] for p in index.entry_pair.tolist()]
    segs = index.entry_seg.tolist()
    owner = batch.batch.tolist()
    expected = [((i, j), i * r + rel) for rel, i, j in batch.rel_index.t().tolist()]
    expected += [((i, s + owner[i]), s * r + i) for i in range(s)]
    for b in range(len(sizes)):
        nodes = [i for i in range(s) if owner[i] == b]
        expected += [((s + b, j), s * r + s + b) for j in nodes + [s + b]]
    assert list(zip(entries, segs)) == expected
    assert pairs == sorted(set(pairs)) and all(0 <= j < rows for _, j in pairs)
    assert index.seg_len.tolist() == np.bincount(segs, minlength=s * r + s + len(sizes)).tolist()


# ---------------------------------------------------------- shipped checkpoint

SHIPPED = Path(cost_model.__file__).resolve().parent / "checkpoints" / "ledg-default"

# latency_ms of the shipped checkpoint on ``_mixed_graph(seed)`` for ``seed`` in 0..3, recorded when the
# checkpoint was trained: a change here means the prediction path (featurization, collation, relation
# joins, the model) changed what users get, and a retrained checkpoint must record them again.
REFERENCE_MS = {
    "gtx1080ti-pytorch-fp32-b1": [0.7447163416619492, 0.7984749832773657, 0.8076469981239798, 0.7718514976154801],
    "pixel3-tflite": [0.9164989810016292, 0.8070148849827727, 0.9749510881574684, 0.7520053147652023],
}
# The descriptors the references were computed with, by content hash.
REFERENCE_HASH = {"gtx1080ti-pytorch-fp32-b1": "36f18c036a0795d3c142726d8463d29209c7c36e4a69a9594a906e8c048c5474",
                  "pixel3-tflite": "5def4dd6e22e34e7452c3753db68bb7fd64412eab83a6a9d8fd98add1acf4648"}


def _reference_descriptor(name: str) -> targets.TargetDescriptor:
    desc = targets.load(name)
    assert desc.content_hash() == REFERENCE_HASH[name], name
    return desc


@pytest.mark.skipif(not SHIPPED.is_dir(), reason="no shipped checkpoint")
def test_shipped_checkpoint_predictions_are_unchanged_alone_and_in_a_batch():
    predictor = LatencyPredictor.from_pretrained(SHIPPED)
    graphs = {f"g{seed}": _mixed_graph(seed) for seed in range(4)}
    descs = {name: _reference_descriptor(name) for name in REFERENCE_MS}
    pairs = [(g, t) for t in REFERENCE_MS for g in graphs]
    together = predictor.predict(graphs, descs, pairs)
    alone = np.array([predictor.predict(graphs, descs, [p])[0] for p in pairs])
    expected = np.array([ms for t in REFERENCE_MS for ms in REFERENCE_MS[t]])
    np.testing.assert_allclose(together, expected, rtol=1e-5)
    np.testing.assert_allclose(alone, expected, rtol=1e-5)
