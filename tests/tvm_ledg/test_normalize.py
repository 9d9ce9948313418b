"""normalize_module: the NumPy constant folder agrees with TVM's FoldConstant, bit for bit."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
import torch
from nets import TinyViT

from tvm_ledg._tvm import TensorConst, from_exported_program, from_onnx, relax, tvm
from tvm_ledg.frontend import load_model
from tvm_ledg.lowering import to_op_graph
from tvm_ledg.normalize import _has_constant_only_call, _NumpyFolder, normalize_module

pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")


class ConvBnNet(torch.nn.Module):
    """BatchNorm after a conv (folded into it) and after an add (decomposed), then a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(4)
        self.bn2 = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv(x)))
        y = self.bn2(y + x.mean(1, keepdim=True))
        return self.fc(y.mean((2, 3)))


def _imported(seed: int = 0):
    torch.manual_seed(seed)
    model = ConvBnNet().eval()
    for bn in (model.bn1, model.bn2):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    with torch.no_grad():
        program = torch.export.export(model, (torch.randn(1, 3, 8, 8),))
    return model, from_exported_program(program, decompose=True)


def _onnx_vit(tmp_path):
    """TVM's ONNX importer emits shape plumbing (shape_of, take, less, where) around every Gather."""
    path = tmp_path / "vit.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(TinyViT().eval(), (torch.randn(1, 3, 32, 32),), str(path), dynamo=False, input_names=["x"])
    return from_onnx(onnx.load(str(path)), {"x": [1, 3, 32, 32]}, "float32")


@pytest.mark.parametrize("source", ["torch_conv_bn", "onnx_vit"])
def test_numpy_folding_equals_tvm_fold_constant(source, tmp_path):
    mod = _imported()[1] if source == "torch_conv_bn" else _onnx_vit(tmp_path)
    mod = relax.transform.DecomposeOpsForInference()(relax.transform.FoldBatchnormToConv2D()(mod))
    fast = _NumpyFolder(mod).rewrite("main")
    assert not _has_constant_only_call(fast["main"])  # nothing left for TVM's pass
    reference = relax.transform.FoldConstant()(mod)
    clean = tvm.transform.Sequential(
        [relax.transform.CanonicalizeBindings(), relax.transform.DeadCodeElimination(["main"])]
    )
    tvm.ir.assert_structural_equal(clean(fast)["main"], clean(reference)["main"])


def test_batchnorm_is_folded_or_decomposed_and_numbers_are_kept():
    model, mod = _imported(1)
    norm = normalize_module(mod)
    ops = [n.op for n in to_op_graph(norm).nodes]
    assert ops.count("nn.conv2d") == 1 and "nn.batch_norm" not in ops
    assert ops[:3] == ["nn.conv2d", "add", "nn.relu"]  # bn1 became the conv's bias add
    x = torch.randn(1, 3, 8, 8)
    vm = relax.VirtualMachine(tvm.compile(norm, "llvm"), tvm.cpu())
    got = vm["main"](tvm.runtime.tensor(x.numpy())).numpy()
    np.testing.assert_allclose(got, model(x).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_integer_division_folds_with_tvm_semantics():
    """Integer division is not NumPy's (floor, or float rounding for large values): TVM folds it."""
    a = relax.const(np.array([-7, 7], "int32"))
    b = relax.const(np.array([2, 2], "int32"))
    bb = relax.BlockBuilder()
    with bb.function("main", []):
        with bb.dataflow():
            out = bb.emit_output(bb.emit(relax.op.divide(a, b)))
        bb.emit_func_output(out)
    folded = normalize_module(bb.get())
    value = folded["main"].body.body
    assert isinstance(value, TensorConst)
    np.testing.assert_array_equal(value.value.numpy(), [-3, 3])  # TVM's truncating division


def test_load_model_output_is_normalized():
    mod = load_model(ConvBnNet().eval(), torch.randn(1, 3, 8, 8))
    assert not _has_constant_only_call(mod["main"])
    assert "nn.batch_norm" not in {n.op for n in to_op_graph(mod).nodes}
