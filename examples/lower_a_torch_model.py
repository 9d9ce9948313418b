"""Lower a PyTorch model and an ONNX export of it to operator DAGs, and compare them.

Run: python examples/lower_a_torch_model.py
Both frontends give the same canonical graph (same content hash), because
tvm_ledg normalizes BatchNorm folding, constants and op spellings.
"""

import tempfile
from pathlib import Path

import torch
from torch import nn

import tvm_ledg


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    ).eval()


def main() -> None:
    model, x = small_cnn(), torch.randn(1, 3, 32, 32)
    from_torch = tvm_ledg.to_op_graph(tvm_ledg.load_model(model, (x,)), name="torch")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "small_cnn.onnx"
        torch.onnx.export(model, (x,), str(path), input_names=["input"], dynamo=False)
        from_onnx = tvm_ledg.to_op_graph(tvm_ledg.load_model(path), name="onnx")
    for g in (from_torch, from_onnx):
        print(g.summary())
    print("same graph:", from_torch.content_hash() == from_onnx.content_hash())
    fused = tvm_ledg.to_op_graph(tvm_ledg.load_model(model, (x,)), fused=True)
    for node in fused.nodes:
        print(f"kernel {node.id}: {' + '.join(node.members)}  ({node.flops} FLOPs)")


if __name__ == "__main__":
    main()
