"""to_op_graph: nodes, attributes, FLOPs, edges, hashing, JSON and the fused view."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch
from nets import TinyMobileNetV2, TinyResNet, TinyViT

from cost_model.graph import OpGraph, TensorSpec
from tvm_ledg import op_costs
from tvm_ledg._tvm import PrimFunc, estimate_tir_flops, relax, tvm
from tvm_ledg.frontend import load_model
from tvm_ledg.lowering import fuse_module, to_op_graph

pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")

X = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))


# ------------------------------------------------------------------ helpers
def _var(name: str, shape, dtype: str = "float32"):
    return relax.Var(name, relax.TensorType(shape, dtype))


def _const(shape, seed: int = 0):
    return relax.const(np.random.default_rng(seed).standard_normal(shape).astype("float32"))


def _module(params, body):
    """A module whose main emits the expressions ``body(*params)`` in one dataflow block; the last is the output."""
    bb = relax.BlockBuilder()
    with bb.function("main", params):
        with bb.dataflow():
            out = None
            for expr in body(*params):
                out = bb.emit(expr)
            gv = bb.emit_output(out)
        bb.emit_func_output(gv)
    return bb.get()


def _legalized_tir_flops(mod) -> int:
    """TVM's own count: estimate_tir_flops over every call_tir of the legalized main."""
    legal = relax.transform.LegalizeOps()(mod)
    total = 0
    for block in legal["main"].body.blocks:
        for b in block.bindings:
            v = b.value
            if isinstance(v, relax.Call) and v.op.name == "relax.call_tir":
                total += estimate_tir_flops(legal[v.args[0]])
    return total


# ------------------------------------------------------------------ single operators
def test_single_conv2d_by_hand():
    n, cin, cout, h, groups, k, stride = 2, 4, 6, 16, 2, 3, 2
    x = _var("x", (n, cin, h, h))
    w = _const((cout, cin // groups, k, k))
    mod = _module([x], lambda x: [relax.op.nn.conv2d(x, w, strides=stride, padding=1, groups=groups)])
    g = to_op_graph(mod)
    assert g.num_nodes == 1 and g.edges == []
    node = g.nodes[0]
    hout = (h + 2 - k) // stride + 1
    assert node.op == "nn.conv2d"
    assert node.attrs["strides"] == [2, 2] and node.attrs["padding"] == [1, 1, 1, 1]
    assert node.attrs["dilation"] == [1, 1] and node.attrs["groups"] == 2
    assert node.attrs["data_layout"] == "NCHW" and node.attrs["out_dtype"] == "float32"
    assert node.inputs == [TensorSpec((n, cin, h, h), "float32"), TensorSpec((cout, cin // groups, k, k), "float32")]
    assert node.outputs == [TensorSpec((n, cout, hout, hout), "float32")]
    assert node.macs == n * cout * hout * hout * (cin // groups) * k * k
    assert node.flops == 2 * node.macs
    assert node.params == cout * (cin // groups) * k * k
    assert node.bytes_read == 4 * (n * cin * h * h + node.params)
    assert node.bytes_written == 4 * n * cout * hout * hout
    assert g.inputs == [TensorSpec((n, cin, h, h), "float32")]
    assert node.flops == _legalized_tir_flops(mod)  # TVM's TIR FLOP counter agrees


def test_linear_layer_by_hand():
    b, fin, fout = 3, 16, 10
    mod = load_model(torch.nn.Linear(fin, fout), torch.randn(b, fin))
    g = to_op_graph(mod)
    assert [n.op for n in g.nodes] == ["matmul", "add"]
    matmul, add = g.nodes
    assert matmul.inputs[1].shape == (fin, fout)  # the weight transpose was folded into the constant
    assert (matmul.macs, matmul.flops, matmul.params) == (b * fin * fout, 2 * b * fin * fout, fin * fout)
    assert (add.flops, add.params) == (b * fout, fout)
    assert g.edges == [(0, 1)]
    assert g.total_params == sum(p.numel() for p in torch.nn.Linear(fin, fout).parameters())


def test_diamond_edges():
    x = _var("x", (1, 3, 8, 8))
    wa, wb = _const((4, 3, 3, 3), 1), _const((4, 3, 1, 1), 2)

    def build(order: str):
        bb = relax.BlockBuilder()
        with bb.function("main", [x]):
            with bb.dataflow():
                if order == "ab":
                    a = bb.emit(relax.op.nn.conv2d(x, wa, padding=1))
                    b = bb.emit(relax.op.nn.conv2d(x, wb))
                else:
                    b = bb.emit(relax.op.nn.conv2d(x, wb))
                    a = bb.emit(relax.op.nn.conv2d(x, wa, padding=1))
                out = bb.emit_output(bb.emit(relax.op.add(a, b)))
            bb.emit_func_output(out)
        return bb.get()

    g = to_op_graph(build("ab"))
    assert [n.op for n in g.nodes] == ["nn.conv2d", "nn.conv2d", "add"]
    assert g.edges == [(0, 2), (1, 2)]
    assert g.parents(0) == [] and g.parents(1) == [] and g.parents(2) == [0, 1]
    assert g.output_nodes == [2]
    assert g.nodes[0].attrs["padding"] == [1, 1, 1, 1]  # conv_a (first argument of add) comes first
    # the node order follows the dataflow, not the binding order
    assert to_op_graph(build("ba")).content_hash() == g.content_hash()


def test_tuples_are_looked_through():
    """split -> TupleGetItem x2 -> add: no bookkeeping nodes, edges reach the split."""
    x = _var("x", (2, 8))
    bb = relax.BlockBuilder()
    with bb.function("main", [x]):
        with bb.dataflow():
            parts = bb.emit(relax.op.split(x, 2, axis=1))
            tup = bb.emit(relax.Tuple([relax.TupleGetItem(parts, 1), relax.TupleGetItem(parts, 0)]))
            y = bb.emit(relax.op.multiply(relax.TupleGetItem(tup, 0), relax.TupleGetItem(tup, 1)))
            out = bb.emit_output(bb.emit(relax.op.nn.relu(y)))
        bb.emit_func_output(out)
    g = to_op_graph(bb.get())
    assert [n.op for n in g.nodes] == ["split", "multiply", "nn.relu"]
    assert g.edges == [(0, 1), (1, 2)]
    assert g.nodes[0].outputs == [TensorSpec((2, 4), "float32")] * 2
    assert g.nodes[1].flops == 8 and g.nodes[0].flops == 0


def test_raw_batch_norm_is_one_node_and_its_tuple_output_keeps_the_edge():
    x = _var("x", (1, 4, 4, 4))
    stats = [_const((4,), i) for i in range(4)]
    bb = relax.BlockBuilder()
    with bb.function("main", [x]):
        with bb.dataflow():
            bn = bb.emit(relax.op.nn.batch_norm(x, *stats, axis=1))
            out = bb.emit_output(bb.emit(relax.op.nn.relu(relax.TupleGetItem(bn, 0))))
        bb.emit_func_output(out)
    g = to_op_graph(bb.get())
    assert [n.op for n in g.nodes] == ["nn.batch_norm", "nn.relu"]
    assert g.edges == [(0, 1)]
    assert g.nodes[0].params == 16 and g.nodes[0].flops == 2 * 64
    assert g.nodes[0].attrs["epsilon"] == pytest.approx(1e-5)


def test_unknown_operators_are_kept():
    x = _var("x", (4, 6))
    y = _var("y", (6, 5))
    mod = _module([x, y], lambda x, y: [relax.op.sort(x, axis=1)])
    (node,) = to_op_graph(mod).nodes
    assert node.op == "sort" and node.flops == 24  # elementwise-like: output numel
    bb = relax.BlockBuilder()
    with bb.function("main", [x, y]):
        with bb.dataflow():
            out = bb.emit_output(bb.emit(relax.op.einsum((x, y), "ij,jk->ik")))
        bb.emit_func_output(out)
    (node,) = to_op_graph(bb.get()).nodes
    assert node.op == "einsum" and node.flops == 0 and node.outputs == [TensorSpec((4, 5), "float32")]


def test_frontend_call_tir_is_a_node_named_after_its_primfunc():
    x = _var("x", (2, 8))
    bb = relax.BlockBuilder()
    with bb.function("main", [x]):
        with bb.dataflow():
            lo = bb.emit_te(tvm.topi.maximum, x, 0.5)
            out = bb.emit_output(bb.emit(relax.op.exp(lo)))
        bb.emit_func_output(out)
    g = to_op_graph(bb.get())
    assert [n.op for n in g.nodes] == ["maximum", "exp"]
    assert g.nodes[0].flops == 16  # estimate_tir_flops of the PrimFunc: one max per element
    assert g.edges == [(0, 1)]


def test_weights_passed_as_parameters_count_as_params():
    x, w = _var("x", (1, 8)), _var("w", (8, 4))
    mod = _module([x, w], lambda x, w: [relax.op.matmul(x, w)])
    mod["main"] = mod["main"].with_attr("num_input", 1)
    g = to_op_graph(mod)
    assert g.inputs == [TensorSpec((1, 8), "float32")]
    assert g.nodes[0].params == 32


# ------------------------------------------------------------------ FLOP convention vs TVM
def _op_cases():
    x4 = _var("x", (2, 8, 12, 12))
    s3 = _var("s", (3, 5, 7))
    return {
        "conv_grouped_dilated": (
            [x4],
            lambda x: relax.op.nn.conv2d(x, _const((6, 4, 3, 3)), strides=2, padding=2, dilation=2, groups=2),
        ),
        "conv_depthwise": ([x4], lambda x: relax.op.nn.conv2d(x, _const((8, 1, 3, 3)), padding=1, groups=8)),
        "matmul_batched": ([s3], lambda s: relax.op.matmul(s, _const((7, 9)))),
        "add_broadcast": ([x4], lambda x: relax.op.add(x, _const((1, 8, 1, 1)))),
        "relu": ([x4], lambda x: relax.op.nn.relu(x)),
        "max_pool": ([x4], lambda x: relax.op.nn.max_pool2d(x, 3, 2, 1)),
        "global_avg_pool": ([x4], lambda x: relax.op.nn.adaptive_avg_pool2d(x, 1)),
        "sum": ([x4], lambda x: relax.op.sum(x, [2, 3])),
        "mean": ([x4], lambda x: relax.op.mean(x, [1])),
    }


@pytest.mark.parametrize("case", sorted(_op_cases()))
def test_flop_convention_matches_tvm_tir_counter(case):
    params, make = _op_cases()[case]
    mod = _module(params, lambda *p: [make(*p)])
    graph = to_op_graph(mod)
    assert graph.total_flops == _legalized_tir_flops(mod) > 0


def test_transcendental_ops_count_one_flop_per_element_unlike_tvm():
    x = _var("x", (4, 4))
    mod = _module([x], lambda x: [relax.op.exp(x)])
    assert to_op_graph(mod).total_flops == 16
    assert _legalized_tir_flops(mod) == 0  # TVM does not count intrinsic calls


def test_op_costs_unknown_flag():
    spec = TensorSpec((2, 3), "float32")
    assert op_costs.estimate("nn.relu", {}, [spec], [spec]).known
    unknown = op_costs.estimate("my.custom_op", {}, [spec], [spec])
    assert not unknown.known and unknown.flops == 6


# ------------------------------------------------------------------ networks
@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return {"resnet": TinyResNet().eval(), "mobilenetv2": TinyMobileNetV2().eval(), "vit": TinyViT().eval()}


@pytest.fixture(scope="module")
def modules(nets):
    return {name: load_model(model, X) for name, model in nets.items()}


@pytest.fixture(scope="module")
def graphs(modules):
    return {name: (to_op_graph(m, name=name), to_op_graph(m, fused=True, name=name)) for name, m in modules.items()}


def test_resnet_conv_and_linear_flops_match_pytorch_hooks(nets, graphs):
    model = nets["resnet"]
    counted: Counter = Counter()

    def hook(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            kh, kw = module.kernel_size
            counted["conv"] += 2 * output.numel() * (module.in_channels // module.groups) * kh * kw
        else:
            counted["linear"] += 2 * output.numel() * module.in_features

    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    handles = [m.register_forward_hook(hook) for m in layers]
    try:
        with torch.no_grad():
            model(X)
    finally:
        for h in handles:
            h.remove()
    graph, _ = graphs["resnet"]
    assert sum(n.flops for n in graph.nodes if n.op == "nn.conv2d") == counted["conv"]
    assert sum(n.flops for n in graph.nodes if n.op == "matmul") == counted["linear"]


def test_resnet_total_flops_match_tvm_tir_counter(modules, graphs):
    """Every ResNet operator (conv, add, relu, mean, reshape, matmul) follows TVM's own count."""
    graph, _ = graphs["resnet"]
    assert graph.total_flops == _legalized_tir_flops(modules["resnet"])


@pytest.mark.parametrize("name", ["resnet", "mobilenetv2", "vit"])
def test_fused_view_partitions_the_unfused_graph(name, graphs):
    graph, fused = graphs[name]
    assert fused.fused and not graph.fused
    assert fused.num_nodes < graph.num_nodes
    members = sorted(m for k in fused.nodes for m in k.member_ids)
    assert members == list(range(graph.num_nodes))  # every operator in exactly one kernel
    for kernel in fused.nodes:
        assert kernel.members == [graph.nodes[m].op for m in kernel.member_ids]
    totals = (graph.total_flops, graph.total_macs, graph.total_params)
    assert (fused.total_flops, fused.total_macs, fused.total_params) == totals
    assert fused.inputs == graph.inputs


@pytest.mark.parametrize("name", ["resnet", "mobilenetv2", "vit"])
def test_fused_edges_are_the_unfused_edges_between_kernels(name, graphs):
    graph, fused = graphs[name]
    kernel_of = {m: k.id for k in fused.nodes for m in k.member_ids}
    crossing = {(kernel_of[s], kernel_of[d]) for s, d in graph.edges if kernel_of[s] != kernel_of[d]}
    assert set(fused.edges) == crossing


def test_fused_resnet_kernels(graphs):
    graph, fused = graphs["resnet"]
    first = fused.nodes[0]
    assert first.op == "fused_conv2d_add_relu" and first.members == ["nn.conv2d", "add", "nn.relu"]
    assert first.attrs["anchor"] == "nn.conv2d" and first.attrs["anchor_attrs"]["strides"] == [1, 1]
    # fusion removes the intermediate tensors from the memory traffic
    assert fused.nodes[0].bytes_written < sum(graph.nodes[m].bytes_written for m in first.member_ids)
    assert fused.meta["target"] == "llvm"


def test_fused_kernels_keep_tvm_flops(modules):
    """TVM's count over the fused PrimFuncs equals its count over the unfused ones."""
    fused = fuse_module(modules["mobilenetv2"])
    kernels = [f for f in fused.functions.values() if isinstance(f, PrimFunc)]
    total = 0
    for block in fused["main"].body.blocks:
        for b in block.bindings:
            if isinstance(b.value, relax.Call) and b.value.op.name == "relax.call_tir":
                total += estimate_tir_flops(fused[b.value.args[0]])
    assert kernels and total == _legalized_tir_flops(modules["mobilenetv2"])


# ------------------------------------------------------------------ hashing and JSON
@pytest.mark.parametrize("fused", [False, True])
def test_json_round_trip(graphs, fused):
    graph = graphs["vit"][int(fused)]
    text = json.dumps(graph.to_json(), allow_nan=False)  # strictly JSON
    back = OpGraph.from_json(json.loads(text))
    assert back == graph
    assert back.content_hash() == graph.content_hash()


def test_hash_is_stable_across_weights_and_changes_with_architecture():
    def graph_of(model, x=X):
        return to_op_graph(load_model(model.eval(), x))

    torch.manual_seed(1)
    a = graph_of(TinyResNet())
    torch.manual_seed(2)
    b = graph_of(TinyResNet())
    assert a.content_hash() == b.content_hash()
    assert graph_of(TinyResNet(widths=(8, 16, 24))).content_hash() != a.content_hash()
    assert graph_of(TinyResNet(), torch.randn(1, 3, 64, 64)).content_hash() != a.content_hash()
    assert graph_of(TinyMobileNetV2()).content_hash() != a.content_hash()
