"""NAS-Bench-201 cell strings -> the CIFAR network upstream actually runs.

Mirrors D-X-Y/AutoDL-Projects (the code that generated NAS-Bench-201 and
NATS-Bench ``tss``):

* ``lib/models/cell_infers/tiny_network.py`` -- ``TinyNetwork``: stem conv 3x3
  (3 -> C) + BN, 3 stages of N ``InferCell`` separated by two stride-2
  ``ResNetBasicblock`` reductions, channels C / 2C / 4C, ``lastact`` BN + ReLU,
  global average pool, linear classifier. NAS-Bench-201 uses C=16, N=5.
* ``lib/models/cell_infers/cells.py`` -- ``InferCell``: node j is the sum over
  its incoming edges of ``OPS[op](node_i)``.
* ``lib/models/cell_operations.py`` -- ``OPS``: ``nor_conv_kxk`` = ReLU ->
  Conv(bias=False) -> BN, ``avg_pool_3x3`` = AvgPool2d(3, 1, 1,
  count_include_pad=False), ``skip_connect`` = identity, ``none`` = ``Zero``
  (``x.mul(0.)``).

``none`` edges: upstream does *not* drop them. ``Structure.str2structure``
keeps every edge and ``InferCell`` instantiates ``OPS['none']``, a ``Zero``
module whose forward is ``x.mul(0.)`` (all cells have C_in == C_out and
stride 1). A node whose inputs are all ``none`` is therefore a sum of zeros.
We keep that multiply so the operator graph matches what upstream executes.

``InferCell.forward`` sums a node's edges with Python's ``sum()``, which starts
from the integer 0: every node also executes ``0 + tensor`` (an elementwise add
kernel in eager PyTorch). We sum the same way, so that add is in our graph too.

Two deliberate differences, neither of which changes the computation:
upstream ``TinyNetwork.forward`` returns ``(features, logits)``; ours returns
the logits only. Activations are not in-place (export-friendly).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from targets.errors import ModelImportError

__all__ = [
    "NAME",
    "OPS",
    "NB201Cell",
    "build_network",
    "input_shape",
]

NAME = "nb201"

# Operation vocabulary of NAS-Bench-201 (``NAS_BENCH_201`` in upstream cell_operations.py).
OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")

_NUM_NODES = 4  # input node 0 + three computed nodes


@dataclass(frozen=True)
class NB201Cell:
    """One cell: ``edges[j-1][i]`` is the operation on edge node i -> node j."""

    edges: tuple[tuple[str, ...], ...]

    @classmethod
    def parse(cls, text: str) -> NB201Cell:
        """Parse ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (inputs listed in order)."""
        text = text.strip()
        node_strs = text.split("+")
        if len(node_strs) != _NUM_NODES - 1:
            raise ModelImportError(
                f"nb201 cell {text!r}: expected {_NUM_NODES - 1} '+'-separated nodes, got {len(node_strs)}"
            )
        edges: list[tuple[str, ...]] = []
        for j, node_str in enumerate(node_strs, start=1):
            if not (node_str.startswith("|") and node_str.endswith("|")) or len(node_str) < 2:
                raise ModelImportError(f"nb201 cell {text!r}: node {j} {node_str!r} must look like '|op~0|...|'")
            items = node_str[1:-1].split("|")
            if len(items) != j:
                raise ModelImportError(f"nb201 cell {text!r}: node {j} must have {j} input edge(s), got {len(items)}")
            ops: list[str] = []
            for i, item in enumerate(items):
                op, sep, src = item.partition("~")
                if not sep or src != str(i):
                    raise ModelImportError(
                        f"nb201 cell {text!r}: node {j} edge {item!r} must be '<op>~{i}' (inputs in order 0..{j - 1})"
                    )
                if op not in OPS:
                    raise ModelImportError(f"nb201 cell {text!r}: unknown operation {op!r}; expected one of {OPS}")
                ops.append(op)
            edges.append(tuple(ops))
        return cls(tuple(edges))

    def to_text(self) -> str:
        """Canonical NAS-Bench-201 string (the key format of ``str_arch2idx.pt``)."""
        return "+".join("|" + "|".join(f"{op}~{i}" for i, op in enumerate(ops)) + "|" for ops in self.edges)


class _ReLUConvBN(nn.Module):
    """Upstream ``ReLUConvBN``: pre-activation conv, no bias."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int) -> None:
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class _Zero(nn.Module):
    """Upstream ``Zero`` for C_in == C_out, stride 1: keeps the multiply by zero."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def _make_op(name: str, channels: int) -> nn.Module:
    # Inside a cell C_in == C_out and stride == 1, so POOLING has no preprocess
    # conv and skip_connect is a plain identity (upstream cell_operations.py).
    if name == "none":
        return _Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return _ReLUConvBN(channels, channels, 1, 1, 0)
    if name == "nor_conv_3x3":
        return _ReLUConvBN(channels, channels, 3, 1, 1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ModelImportError(f"nb201: unknown operation {name!r}")


class _InferCell(nn.Module):
    """Upstream ``InferCell`` (one layer per edge, node = sum of its edges)."""

    def __init__(self, cell: NB201Cell, channels: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        self._node_edges: list[list[tuple[int, int]]] = []  # per node: (layer index, source node)
        for ops in cell.edges:
            node = []
            for src, op in enumerate(ops):
                node.append((len(self.layers), src))
                self.layers.append(_make_op(op, channels))
            self._node_edges.append(node)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for node in self._node_edges:
            # Python's sum() starts at 0, so upstream (and we) also run ``0 + first_edge``.
            nodes.append(sum(self.layers[layer_idx](nodes[src]) for layer_idx, src in node))
        return nodes[-1]


class _ResNetBasicblock(nn.Module):
    """Upstream stride-2 reduction block: two ReLUConvBN + avgpool/1x1-conv shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = _ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = _ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, kernel_size=1, stride=1, padding=0, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class _TinyNetwork(nn.Module):
    """Upstream ``TinyNetwork`` returning logits only."""

    def __init__(self, cell: NB201Cell, channels: int, cells_per_stage: int, num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        stage_channels = (channels, channels * 2, channels * 4)
        self.cells = nn.ModuleList()
        c_prev = channels
        for stage, c_curr in enumerate(stage_channels):
            if stage > 0:
                self.cells.append(_ResNetBasicblock(c_prev, c_curr))
            for _ in range(cells_per_stage):
                self.cells.append(_InferCell(cell, c_curr))
            c_prev = c_curr
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU())
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        x = self.global_pooling(self.lastact(x))
        return self.classifier(x.view(x.size(0), -1))


def build_network(
    cell: NB201Cell, *, num_classes: int = 10, channels: int = 16, cells_per_stage: int = 5
) -> nn.Module:
    """The NAS-Bench-201 network (defaults: CIFAR-10, C=16, N=5 as in the benchmark)."""
    return _TinyNetwork(cell, channels, cells_per_stage, num_classes)


def input_shape(cell: NB201Cell, *, resolution: int = 32) -> tuple[int, int, int]:
    """(C, H, W) of one input image: CIFAR 32x32 (ImageNet16-120 uses 16)."""
    del cell  # every cell takes the same input
    return (3, resolution, resolution)
