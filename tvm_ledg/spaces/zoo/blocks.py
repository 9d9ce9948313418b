"""Layers the family builders assemble, so that each builder reads as a list of layers.

Conv-BN-act and the classifier head (every CNN family), residual, squeeze-excite
and inverted-residual blocks (ResNet and the four mobile families), fire and
inception modules, and attention written out as matmul / softmax (ViT and the
text encoder). Each block that is more than an ``nn.Sequential`` counts its own
FLOPs (``flops(shape)``), so :func:`~tvm_ledg.spaces.zoo.flops._flops` needs no
rule per block.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from tvm_ledg.spaces.zoo.configs import _Inception, _MBStage, _round8
from tvm_ledg.spaces.zoo.flops import Shape, _concat_flops, _flops

_ACTS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "hardswish": nn.Hardswish,
    "silu": nn.SiLU,
    "sigmoid": nn.Sigmoid,
    "hardsigmoid": nn.Hardsigmoid,
}


def _conv_bn(
    c_in: int, c_out: int, kernel: int, stride: int = 1, *, groups: int = 1, act: str | None = "relu", bn: bool = True
) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=not bn)
    ]
    if bn:
        layers.append(nn.BatchNorm2d(c_out))
    if act is not None:
        layers.append(_ACTS[act]())
    return nn.Sequential(*layers)


def _classifier(c_in: int, hidden: int, num_classes: int, act: str = "relu") -> nn.Sequential:
    """Global average pool, then a linear layer (after a hidden one when ``hidden`` > 0)."""
    layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if hidden:
        layers += [nn.Linear(c_in, hidden), _ACTS[act]()]
        c_in = hidden
    layers.append(nn.Linear(c_in, num_classes))
    return nn.Sequential(*layers)


class _ResBlock(nn.Module):
    """ResNet basic (two 3x3) or bottleneck (1x1, 3x3, 1x1 x4) block with projection shortcut."""

    def __init__(self, c_in: int, width: int, stride: int, bottleneck: bool) -> None:
        super().__init__()
        self.c_out = width * 4 if bottleneck else width
        if bottleneck:
            self.body = nn.Sequential(
                _conv_bn(c_in, width, 1),
                _conv_bn(width, width, 3, stride),
                _conv_bn(width, self.c_out, 1, act=None),
            )
        else:
            self.body = nn.Sequential(_conv_bn(c_in, width, 3, stride), _conv_bn(width, width, 3, act=None))
        needs_projection = stride != 1 or c_in != self.c_out
        self.shortcut = _conv_bn(c_in, self.c_out, 1, stride, act=None) if needs_projection else nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))

    def flops(self, shape: Shape) -> tuple[int, Shape]:
        body, out = _flops(self.body, shape)
        return body + _flops(self.shortcut, shape)[0], out


class _SE(nn.Module):
    """Squeeze-excite: spatial mean, 1x1 conv down, act, 1x1 conv up, gate, rescale."""

    def __init__(self, channels: int, act: str, gate: str) -> None:
        super().__init__()
        squeeze = _round8(channels / 4)
        self.fc = nn.Sequential(
            nn.Conv2d(channels, squeeze, 1), _ACTS[act](), nn.Conv2d(squeeze, channels, 1), _ACTS[gate]()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean((2, 3), keepdim=True))

    def flops(self, shape: Shape) -> tuple[int, Shape]:
        return _flops(self.fc, (shape[0], 1, 1))[0], shape


class _MBConv(nn.Module):
    """Inverted residual: [1x1 expand], kxk depthwise, [SE], 1x1 linear projection, identity residual."""

    def __init__(self, c_in: int, stage: _MBStage, stride: int, se_act: str, se_gate: str) -> None:
        super().__init__()
        mid = c_in * stage.expand
        layers: list[nn.Module] = [] if stage.expand == 1 else [_conv_bn(c_in, mid, 1, act=stage.act)]
        layers.append(_conv_bn(mid, mid, stage.kernel, stride, groups=mid, act=stage.act))
        if stage.se:
            layers.append(_SE(mid, se_act, se_gate))
        layers.append(_conv_bn(mid, stage.channels, 1, act=None))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == stage.channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return out + x if self.residual else out

    def flops(self, shape: Shape) -> tuple[int, Shape]:
        return _flops(self.body, shape)


class _Fire(nn.Module):
    """SqueezeNet fire module: 1x1 squeeze, then 1x1 and 3x3 expands concatenated."""

    def __init__(self, c_in: int, squeeze: int, expand: int) -> None:
        super().__init__()
        self.squeeze = _conv_bn(c_in, squeeze, 1, bn=False)
        self.expand1 = _conv_bn(squeeze, expand, 1, bn=False)
        self.expand3 = _conv_bn(squeeze, expand, 3, bn=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze(x)
        return torch.cat([self.expand1(x), self.expand3(x)], 1)

    def flops(self, shape: Shape) -> tuple[int, Shape]:
        squeeze, shape = _flops(self.squeeze, shape)
        expand, out = _concat_flops((self.expand1, self.expand3), shape)
        return squeeze + expand, out


class _InceptionBlock(nn.Module):
    """GoogLeNet inception module: 1x1 | 1x1-3x3 | 1x1-kxk | 3x3 max-pool-1x1, concatenated."""

    def __init__(self, c_in: int, cfg: _Inception) -> None:
        super().__init__()
        self.branch1 = _conv_bn(c_in, cfg.c1, 1)
        self.branch3 = nn.Sequential(_conv_bn(c_in, cfg.c3_reduce, 1), _conv_bn(cfg.c3_reduce, cfg.c3, 3))
        self.branch5 = nn.Sequential(_conv_bn(c_in, cfg.c5_reduce, 1), _conv_bn(cfg.c5_reduce, cfg.c5, cfg.k5))
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, 1, padding=1), _conv_bn(c_in, cfg.pool_proj, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], 1)

    def flops(self, shape: Shape) -> tuple[int, Shape]:
        return _concat_flops((self.branch1, self.branch3, self.branch5, self.branch_pool), shape)


class _Attention(nn.Module):
    """Multi-head self-attention written out with matmul/softmax (no fused attention op).

    Token count and widths are fixed at build time so reshapes are static.
    """

    def __init__(self, dim: int, heads: int, tokens: int) -> None:
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.tokens, self.heads, self.head_dim = tokens, heads, dim // heads
        self.scale = self.head_dim**-0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = self.qkv(x).reshape(-1, self.tokens, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # not qkv[0]: TVM 0.27's FX importer returns all of qkv for an int index
        attn = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * self.scale, dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(-1, self.tokens, self.heads * self.head_dim)
        return self.proj(out)

    def flops(self, shape: Shape) -> tuple[int, Shape]:
        tokens, dim = shape
        scores = 2 * 2 * tokens * tokens * dim  # q @ k^T and attn @ v over all heads
        return _flops(self.qkv, shape)[0] + scores + _flops(self.proj, shape)[0], shape


class _EncoderLayer(nn.Module):
    """Pre-norm transformer encoder layer: x + attn(LN(x)), then x + MLP(LN(x)) with GELU."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int, tokens: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = _Attention(dim, heads, tokens)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * mlp_ratio), nn.GELU(), nn.Linear(dim * mlp_ratio, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))

    def flops(self, shape: Shape) -> tuple[int, Shape]:
        return self.attn.flops(shape)[0] + _flops(self.mlp, shape)[0], shape


def _encoder(dim: int, heads: int, mlp_ratio: int, depth: int, tokens: int) -> nn.Sequential:
    return nn.Sequential(*(_EncoderLayer(dim, heads, mlp_ratio, tokens) for _ in range(depth)))
