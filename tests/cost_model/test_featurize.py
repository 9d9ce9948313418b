"""Operator text template and numeric features."""

import hashlib
import json
import math

import pytest
import torch
from ledg_graphs import branching_dag, other_topological_order

from cost_model.featurize import (
    FEATURE_NAMES,
    NODE_FEATURE_NAMES,
    TEXT_TEMPLATE_VERSION,
    feature_schema_hash,
    graph_tensors,
    node_numeric_features,
    node_text,
    position_features,
)
from cost_model.graph import OpGraph, OpNode, TensorSpec
from targets.errors import GraphError

ACT = TensorSpec((1, 16, 32, 32), "float32")
CONV_ATTRS = {
    "strides": [1, 1], "padding": [1, 1, 1, 1], "dilation": [1, 1], "groups": 1, "data_layout": "NCHW",
    "kernel_layout": "OIHW", "out_layout": "NCHW", "out_dtype": "",
}


def _conv(groups: int = 1, **kw) -> OpNode:
    weight = TensorSpec((16, 16 // groups, 3, 3), "float32")
    attrs = dict(CONV_ATTRS, groups=groups)
    macs = 16 * 32 * 32 * (16 // groups) * 9
    return OpNode(0, "relax.nn.conv2d", attrs=attrs, inputs=[ACT, weight], outputs=[ACT], flops=2 * macs, macs=macs,
                  params=weight.numel, bytes_read=ACT.nbytes + weight.nbytes, bytes_written=ACT.nbytes, **kw)


def _feature(node: OpNode, name: str) -> float:
    return node_numeric_features(node)[NODE_FEATURE_NAMES.index(name)]


def test_conv_text():
    assert node_text(_conv()) == "conv2d k3x3 s1 p1 g1 in 1x16x32x32 out 1x16x32x32 float32"


def test_pool_text_and_asymmetric_values():
    pool = OpNode(0, "relax.nn.avg_pool2d", attrs={
        "pool_size": [3, 3], "strides": [2, 1], "padding": [0, 1, 0, 1], "dilation": [1, 1], "ceil_mode": False,
        "count_include_pad": False, "layout": "NCHW", "out_layout": "NCHW"}, inputs=[ACT], outputs=[ACT])
    assert node_text(pool) == "avg_pool2d k3x3 s2x1 p0x1x0x1 in 1x16x32x32 out 1x16x32x32 float32"


def test_text_is_independent_of_attr_order_and_skips_nested_values():
    attrs = {"zeta": 1, "weird": {"nested": [1]}, "approximate": "tanh", "mode": 3}
    a = OpNode(0, "relax.nn.gelu", attrs=attrs, inputs=[ACT], outputs=[ACT])
    b = OpNode(0, "relax.nn.gelu", attrs=dict(reversed(list(attrs.items()))), inputs=[ACT], outputs=[ACT])
    assert node_text(a) == node_text(b) == "gelu approximate=tanh mode=3 in 1x16x32x32 out 1x16x32x32 float32"


def test_fused_symbolic_and_many_inputs():
    fused = OpNode(0, "fused_conv2d_add_relu", members=["relax.nn.conv2d", "relax.add", "relax.nn.relu"],
                   inputs=[ACT, TensorSpec((16, 16, 1, 1), "float32"), TensorSpec((1, 16, 1, 1), "float32")],
                   outputs=[ACT])
    assert node_text(fused) == "conv2d+add+relu k1x1 in 1x16x32x32 out 1x16x32x32 float32"
    cat = OpNode(0, "relax.concat", attrs={"axis": 1}, inputs=[TensorSpec((-1, 8), "float16")] * 3,
                 outputs=[TensorSpec((-1, 24), "float16")])
    assert node_text(cat) == "concat ax1 in ?x8,?x8,+1 out ?x24 float16"


def test_texts_stay_short():
    nodes = [_conv(), _conv(groups=16), OpNode(0, "relax.nn.softmax", attrs={"axis": -1}, inputs=[ACT], outputs=[ACT])]
    for node in nodes:
        text = node_text(node)
        assert len(text.split()) <= 12 and len(text) <= 96, text


def test_numeric_features_carry_magnitudes():
    conv = _conv()
    values = node_numeric_features(conv)
    assert len(values) == len(NODE_FEATURE_NAMES)
    assert _feature(conv, "log_flops") == pytest.approx(math.log1p(2 * 16 * 32 * 32 * 16 * 9))
    assert _feature(conv, "log_params") == pytest.approx(math.log1p(16 * 16 * 9))
    assert (_feature(conv, "kernel_h"), _feature(conv, "kernel_w"), _feature(conv, "stride")) == (3.0, 3.0, 1.0)
    assert _feature(conv, "log_channels_in") == pytest.approx(math.log1p(16))
    assert _feature(conv, "log_spatial_out") == pytest.approx(math.log1p(32 * 32))
    assert _feature(conv, "log_batch") == pytest.approx(math.log1p(1))
    assert _feature(conv, "depthwise") == 0.0
    dw = _conv(groups=16)
    assert _feature(dw, "depthwise") == 1.0 and _feature(dw, "log_groups") == pytest.approx(math.log1p(16))
    assert _feature(dw, "log_flops") < _feature(conv, "log_flops")


def test_nhwc_layout_moves_the_channel_axis():
    x = TensorSpec((1, 32, 32, 8), "float32")
    pool = OpNode(0, "relax.nn.max_pool2d", attrs={"pool_size": [2, 2], "layout": "NHWC"}, inputs=[x],
                  outputs=[TensorSpec((1, 16, 16, 8), "float32")])
    assert _feature(pool, "log_channels_out") == pytest.approx(math.log1p(8))
    assert _feature(pool, "log_spatial_out") == pytest.approx(math.log1p(256))
    assert "NHWC" in node_text(pool).split()


def test_position_features_diamond():
    rows = position_features(4, [(0, 1), (0, 2), (1, 3), (2, 3), (0, 3)])
    assert [r[0] for r in rows] == [0, 1, 1, 3]  # in-degree
    assert [r[1] for r in rows] == [3, 1, 1, 0]  # out-degree
    assert [r[2] for r in rows] == [0.0, 0.5, 0.5, 1.0]  # longest path from a source / 2
    assert [r[3] for r in rows] == [1.0, 0.5, 0.5, 0.0]  # longest path to a sink / 2


def test_position_features_do_not_depend_on_the_topological_order():
    n, edges = 12, branching_dag(12, seed=3)
    perm = other_topological_order(n, edges, seed=5)
    base = position_features(n, edges)
    assert perm != list(range(n))
    moved = position_features(n, [(perm[s], perm[d]) for s, d in edges])
    assert all(base[old] == moved[perm[old]] for old in range(n))


def test_graph_tensors():
    nodes = [_conv(), OpNode(1, "relax.nn.relu", inputs=[ACT], outputs=[ACT], flops=ACT.numel), _conv()]
    nodes[2].id = 2
    g = OpGraph(nodes=nodes, edges=[(0, 1), (1, 2)], name="tiny")
    gt = graph_tensors(g)
    assert gt.texts == [node_text(n) for n in nodes]
    assert gt.x_num.shape == (3, len(FEATURE_NAMES)) and gt.x_num.dtype == torch.float32
    assert gt.edge_index.tolist() == [[0, 1], [1, 2]]
    assert gt.x_num[1, FEATURE_NAMES.index("depth_frac")] == 0.5
    with pytest.raises(GraphError, match="no nodes"):
        graph_tensors(OpGraph(nodes=[], edges=[], name="empty"))


def test_schema_hash_is_stable_hex():
    digest = feature_schema_hash()
    assert digest == feature_schema_hash() and len(digest) == 16 and int(digest, 16) >= 0


def _template_nodes() -> list[OpNode]:
    """One node of each kind the featurizer renders: operators, a fused kernel, program loops and blocks."""
    loop = OpNode(1, "tir.loop.parallel", attrs={"extent": 32, "pragma_auto_unroll_max_step": 64},
                  outputs=[TensorSpec((32,), "int32")])
    block = OpNode(2, "tir.block", attrs={"iters": "SSR", "reads": 2, "writes": 1, "scope": "global", "init": True,
                                          "predicated": False, "read_strides": [0, 1], "write_strides": [1]},
                   inputs=[TensorSpec((64, 64), "float32")] * 2, outputs=[TensorSpec((64, 64), "float32")],
                   flops=2 * 64 ** 3, bytes_read=2 * 64 ** 3 * 4, bytes_written=64 ** 3 * 4)
    fused = OpNode(3, "fused_conv2d_add_relu", members=["relax.nn.conv2d", "relax.add", "relax.nn.relu"],
                   inputs=[ACT, TensorSpec((16, 16, 1, 1), "float32")], outputs=[ACT], flops=10, macs=5)
    softmax = OpNode(4, "relax.nn.softmax", attrs={"axis": -1}, inputs=[ACT], outputs=[ACT])
    return [_conv(), _conv(groups=16), fused, softmax, loop, block]


# Checkpoints record the schema hash and are refused when it changes, so a change of the node
# text or of the features must change the hash: bump TEXT_TEMPLATE_VERSION (text) or edit the
# feature names, then update both pins here and retrain the shipped checkpoints.
PINNED_SCHEMA_HASH = "3985a386639e4785"  # what the shipped checkpoints record
PINNED_TEMPLATE = (1, "ca2d987702715136")


def test_feature_schema_hash_is_pinned():
    assert feature_schema_hash() == PINNED_SCHEMA_HASH


def test_node_text_and_features_cannot_change_without_a_new_template_version():
    rendered = [(node_text(n), [round(v, 6) for v in node_numeric_features(n)]) for n in _template_nodes()]
    digest = hashlib.sha256(json.dumps(rendered).encode()).hexdigest()[:16]
    assert (TEXT_TEMPLATE_VERSION, digest) == PINNED_TEMPLATE, (
        "node text or features changed: bump TEXT_TEMPLATE_VERSION, update the pins and retrain checkpoints")
