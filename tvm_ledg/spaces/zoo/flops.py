"""FLOPs of a zoo network from shapes alone, so that a draw over the cap is rejected cheaply.

Counted from the module tree (built on the meta device) and one sample's shape,
without running anything, with torch.utils.flop_counter's convention (2 per MAC
of conv / linear / matmul; pooling, normalization and activations count 0). A
test checks the two agree. Blocks that are not a plain layer or ``nn.Sequential``
count themselves through a ``flops(shape)`` method.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeAlias

from torch import nn

from tvm_ledg.spaces import nb201
from tvm_ledg.spaces.zoo.configs import _NB201Cfg

__all__ = ["Shape"]

Shape: TypeAlias = tuple[int, ...]

_NO_FLOPS = (
    nn.BatchNorm2d,
    nn.LayerNorm,
    nn.Identity,
    nn.ReLU,
    nn.ReLU6,
    nn.Hardswish,
    nn.SiLU,
    nn.Sigmoid,
    nn.Hardsigmoid,
    nn.GELU,
)


def _flops(module: nn.Module, shape: Shape) -> tuple[int, Shape]:
    """FLOPs and output shape of ``module`` on one sample of ``shape`` (no batch axis)."""
    if isinstance(module, nn.Sequential):
        total = 0
        for layer in module:
            flops, shape = _flops(layer, shape)
            total += flops
        return total, shape
    if isinstance(module, nn.Conv2d):
        c, h, w = shape
        (kh, kw), (sh, sw), (ph, pw) = module.kernel_size, module.stride, module.padding
        out = (module.out_channels, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)
        return 2 * math.prod(out) * (c // module.groups) * kh * kw, out
    if isinstance(module, nn.Linear):
        return 2 * math.prod(shape) * module.out_features, (*shape[:-1], module.out_features)
    if isinstance(module, nn.MaxPool2d):
        return 0, (shape[0], *(_pooled(size, module) for size in shape[1:]))
    if isinstance(module, nn.AdaptiveAvgPool2d):  # only global pooling is used here
        return 0, (shape[0], 1, 1)
    if isinstance(module, nn.Flatten):
        return 0, (math.prod(shape),)
    if isinstance(module, _NO_FLOPS):
        return 0, shape
    if hasattr(module, "flops"):
        return module.flops(shape)
    raise TypeError(f"zoo: no FLOP rule for {type(module).__name__}")


def _pooled(size: int, pool: nn.MaxPool2d) -> int:
    """Output size of a square max-pool (PyTorch's rule, including ceil_mode)."""
    k, s, p = pool.kernel_size, pool.stride, pool.padding
    span = size + 2 * p - k
    out = (-(-span // s) if pool.ceil_mode else span // s) + 1
    return out - 1 if pool.ceil_mode and (out - 1) * s >= size + p else out


def _concat_flops(branches: Sequence[nn.Module], shape: Shape) -> tuple[int, Shape]:
    """Parallel branches on one input, concatenated along channels."""
    results = [_flops(branch, shape) for branch in branches]
    _, (_, h, w) = results[0]
    return sum(f for f, _ in results), (sum(out[0] for _, out in results), h, w)


def _nb201_flops(cfg: _NB201Cfg, num_classes: int) -> int:
    """By hand from nb201's TinyNetwork (not our module tree): stem, 3 stages of cells, 2 reductions, linear."""
    per_cell = sum({"nor_conv_3x3": 9, "nor_conv_1x1": 1}.get(op, 0) for op in _cell_ops(cfg.cell))
    size, c = cfg.resolution, cfg.channels
    macs = 27 * c * size * size
    for stage in range(3):
        if stage:  # ResNetBasicblock: 3x3/2 conv, 3x3 conv, 2x2 avg-pool + 1x1 conv
            size //= 2
            macs += size * size * (9 * c * 2 * c + 9 * 4 * c * c + 2 * c * c)
            c *= 2
        macs += cfg.cells_per_stage * per_cell * c * c * size * size
    return 2 * (macs + c * num_classes)


def _cell_ops(cell: str) -> list[str]:
    return [op for node in nb201.NB201Cell.parse(cell).edges for op in node]
