"""load_model: ONNX files/protos and torch modules -> normalized Relax modules; bad inputs -> clear errors."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from nets import TinyMobileNetV2, TinyResNet, TinyViT

from targets.errors import ModelImportError, UnsupportedOperatorError
from tvm_ledg._tvm import TVM_VERSION, IRModule, relax, tvm
from tvm_ledg.frontend import load_model
from tvm_ledg.lowering import to_op_graph

pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")

NETS = {"resnet": TinyResNet, "mobilenetv2": TinyMobileNetV2, "vit": TinyViT}
X = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def _randomize_batchnorm(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial running statistics so that folding BatchNorm is actually exercised."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) - 0.5)
    return model.eval()


def export_onnx(model: torch.nn.Module, path: Path, x: torch.Tensor = X, dynamic_axes: dict | None = None) -> Path:
    """TorchScript ONNX export (offline, ~10x faster than the dynamo exporter for these nets)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (x,), str(path), dynamo=False, input_names=["x"], output_names=["y"], dynamic_axes=dynamic_axes
        )
    return path


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {name: _randomize_batchnorm(cls()) for name, cls in NETS.items()}


@pytest.fixture(scope="module")
def onnx_files(models, tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx")
    return {name: export_onnx(m, root / f"{name}.onnx") for name, m in models.items()}


@pytest.fixture(scope="module")
def torch_graphs(models):
    return {name: to_op_graph(load_model(m, (X,))) for name, m in models.items()}


@pytest.fixture(scope="module")
def onnx_graphs(onnx_files):
    return {name: to_op_graph(load_model(path)) for name, path in onnx_files.items()}


# ------------------------------------------------------------------ both frontends
@pytest.mark.parametrize("name", sorted(NETS))
def test_onnx_and_torch_give_the_same_graph(name, torch_graphs, onnx_graphs):
    gt, go = torch_graphs[name], onnx_graphs[name]
    assert [n.op for n in gt.nodes] == [n.op for n in go.nodes]
    assert gt.edges == go.edges
    assert (gt.total_flops, gt.total_macs, gt.total_params) == (go.total_flops, go.total_macs, go.total_params)
    assert gt.content_hash() == go.content_hash()
    ops = {n.op for n in gt.nodes}
    assert not any("batch_norm" in op for op in ops)  # folded into the convolutions on both sides
    assert not ops & {"call_tir", "maximum", "minimum", "nn.adaptive_avg_pool2d"}  # one spelling per op


@pytest.mark.parametrize("name", sorted(NETS))
def test_graph_meta_and_inputs(name, torch_graphs, onnx_graphs):
    for frontend, graph in (("torch", torch_graphs[name]), ("onnx", onnx_graphs[name])):
        assert graph.meta["frontend"] == frontend
        assert graph.meta["tvm_version"] == TVM_VERSION
        assert [(t.shape, t.dtype) for t in graph.inputs] == [((1, 3, 32, 32), "float32")]


@pytest.mark.parametrize("name", ["mobilenetv2", "vit"])
def test_imported_modules_compute_the_torch_function(name, models, onnx_files):
    """Translation without decomposition and normalization (BN folding, NumPy folding, rewrites) keep the numbers."""
    model = models[name]
    expected = model(X).detach().numpy()
    for mod in (load_model(model, X), load_model(onnx_files[name])):
        vm = relax.VirtualMachine(tvm.compile(mod, "llvm"), tvm.cpu())
        got = vm["main"](tvm.runtime.tensor(X.numpy())).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_onnx_model_proto_and_path_give_the_same_module(onnx_files):
    path = onnx_files["resnet"]
    a = to_op_graph(load_model(path))
    b = to_op_graph(load_model(onnx.load(str(path))))
    assert a.content_hash() == b.content_hash()


def test_relax_module_is_returned_as_is(onnx_files):
    mod = load_model(onnx_files["resnet"])
    assert load_model(mod) is mod


def test_torch_module_keeps_its_training_mode():
    model = TinyResNet().train()
    load_model(model, X)
    assert model.training


def test_torch_shapes_follow_the_example_inputs():
    model = TinyResNet().eval()
    g1 = to_op_graph(load_model(model, torch.randn(1, 3, 32, 32)))
    g2 = to_op_graph(load_model(model, torch.randn(2, 3, 64, 64)))
    assert g2.inputs[0].shape == (2, 3, 64, 64)
    conv1 = sum(n.flops for n in g1.nodes if n.op == "nn.conv2d")
    conv2 = sum(n.flops for n in g2.nodes if n.op == "nn.conv2d")
    assert conv2 == 2 * 4 * conv1  # batch x2, pixels x4


# ------------------------------------------------------------------ input shapes
@pytest.fixture(scope="module")
def dynamic_onnx(tmp_path_factory):
    model = TinyResNet().eval()
    path = tmp_path_factory.mktemp("dyn") / "dyn.onnx"
    return export_onnx(model, path, dynamic_axes={"x": {0: "batch", 2: "height", 3: "width"}})


def test_dynamic_dims_without_override_name_the_input_and_dimension(dynamic_onnx):
    with pytest.raises(ModelImportError, match=r"input 'x' has a dynamic dimension 0 \(batch\)"):
        load_model(dynamic_onnx)


def test_dynamic_dims_with_override(dynamic_onnx):
    g = to_op_graph(load_model(dynamic_onnx, input_shapes={"x": [4, 3, 64, 64]}))
    assert g.inputs[0].shape == (4, 3, 64, 64)
    assert g.nodes[0].outputs[0].shape == (4, 8, 64, 64)


def test_override_of_a_static_model_changes_batch_and_resolution(onnx_files):
    base = to_op_graph(load_model(onnx_files["resnet"]))
    big = to_op_graph(load_model(onnx_files["resnet"], input_shapes={"x": (2, 3, 32, 32)}))
    assert big.inputs[0].shape == (2, 3, 32, 32)
    assert big.total_macs == 2 * base.total_macs


def test_override_errors(onnx_files):
    with pytest.raises(ModelImportError, match=r"unknown inputs \['images'\]"):
        load_model(onnx_files["resnet"], input_shapes={"images": [1, 3, 32, 32]})
    with pytest.raises(ModelImportError, match="does not fit input 'x' of rank 4"):
        load_model(onnx_files["resnet"], input_shapes={"x": [1, 3, 32]})


# ------------------------------------------------------------------ bad input
def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere" / "model.onnx"
    with pytest.raises(ModelImportError, match="model.onnx: no such ONNX file") as info:
        load_model(path)
    assert str(path) in str(info.value)


def test_corrupt_onnx_names_the_file(tmp_path):
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\x08\x07 definitely not a protobuf \xff\xfe\x00" * 4)
    with pytest.raises(ModelImportError, match="broken.onnx: not a readable ONNX model"):
        load_model(str(path))


def test_unsupported_onnx_operator_is_named(tmp_path):
    class Lstm(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = torch.nn.LSTM(4, 8, batch_first=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lstm(x)[0]

    path = export_onnx(Lstm().eval(), tmp_path / "lstm.onnx", x=torch.randn(1, 5, 4))
    with pytest.raises(UnsupportedOperatorError, match=r"lstm.onnx: .*operator\(s\) LSTM"):
        load_model(path)


def test_unsupported_torch_operator_is_named():
    class NonZero(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nonzero(x)

    with pytest.raises(UnsupportedOperatorError, match=r"NonZero: .*nonzero"):
        load_model(NonZero(), torch.randn(4, 4))


def test_torch_module_without_example_inputs():
    with pytest.raises(ModelImportError, match="TinyResNet: a torch module needs example_inputs"):
        load_model(TinyResNet())
    with pytest.raises(ModelImportError, match="example_inputs must be a tensor"):
        load_model(TinyResNet(), ("not a tensor",))
    with pytest.raises(ModelImportError, match="input_shapes applies to ONNX"):
        load_model(TinyResNet(), X, input_shapes={"x": [1, 3, 32, 32]})


def test_torch_export_failure_names_the_module():
    class Branchy(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + 1 if x.sum() > 0 else x - 1  # data-dependent control flow

    with pytest.raises(ModelImportError, match="Branchy: torch.export failed"):
        load_model(Branchy(), torch.randn(2, 2))


def test_fx_tracing_failure_names_the_module():
    class Branchy(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + 1 if x.sum() > 0 else x - 1

    with pytest.raises(ModelImportError, match="Branchy: torch.fx.symbolic_trace failed"):
        load_model(Branchy(), torch.randn(2, 2), torch_tracer="fx")
    with pytest.raises(ModelImportError, match="torch_tracer must be"):
        load_model(Branchy(), torch.randn(2, 2), torch_tracer="jit")


_SPACE_SPECS = [
    "nb201:|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|avg_pool_3x3~2|",
    "nb201:|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    "fbnet:0,1,4,0,0,7,6,3,7,7,4,8,6,7,0,5,6,7,4,7,7,3",
    'ofa:{"ks":[3,5,7,3,5,7,3,5,7,3,5,7,3,5,7,3,5,7,3,5],"e":[3,4,6,3,4,6,3,4,6,3,4,6,3,4,6,3,4,6,3,4],'
    '"d":[2,3,4,2,3],"r":128}',
]


@pytest.mark.parametrize("spec", _SPACE_SPECS)
def test_fx_and_export_give_the_same_space_graph(spec):
    """Spaces are lowered through FX for speed; that is only valid while both tracers agree exactly."""
    from tvm_ledg import spaces

    built = spaces.build(spec, batch_size=2)
    via_export = to_op_graph(load_model(built.module, built.example_inputs))
    via_fx = to_op_graph(load_model(built.module, built.example_inputs, torch_tracer="fx"))
    assert via_fx.content_hash() == via_export.content_hash()
    assert [n.op for n in via_fx.nodes] == [n.op for n in via_export.nodes]


def test_unknown_source_type():
    with pytest.raises(ModelImportError, match="cannot import a int"):
        load_model(42)


def test_lowering_rejects_non_modules():
    with pytest.raises(ModelImportError, match="needs a Relax IRModule"):
        to_op_graph("model.onnx")
    with pytest.raises(ModelImportError, match="no Relax function 'main'"):
        to_op_graph(IRModule({}))
