"""Seeded model zoo: ``<family>:<seed>`` -> a random but valid network of a classic family.

NNLQP-style training data needs many *different* networks of the families
people deploy, not the few published configurations. A zoo spec names a family
and a seed; ``random.Random(f"{family}:{seed}")`` (string seeding hashes with
SHA-512, so it is stable across processes and Python versions, unlike
``hash()``) draws everything else: depth, widths, kernel sizes, expansion
ratios, input resolution, number of classes and the batch size. The same spec
therefore always gives the same network, graph and ONNX bytes.

Families (plain PyTorch; torchvision is not needed):

* ``resnet``: basic or bottleneck blocks, 2-4 stages of 1-3 blocks;
* ``vgg``: 3-5 stages of 1-3 3x3 convs (BatchNorm optional), max-pools, FC head;
* ``mobilenetv2``: inverted residuals, ReLU6, expansion {1, 3, 4, 6}, kernel {3, 5};
* ``mobilenetv3``: as v2 plus squeeze-excite (hard-sigmoid) and hard-swish;
* ``efficientnet``: MBConv + SE + SiLU, kernel {3, 5}, expansion {1, 4, 6};
* ``mnasnet``: MBConv with ReLU, SE on some stages;
* ``squeezenet``: fire modules (squeeze 1x1, expand 1x1 + 3x3, concat);
* ``googlenet``: inception modules with four branches;
* ``alexnet``: a large-kernel strided first conv, 5 convs, 3 FC layers;
* ``nb201``: a random NAS-Bench-201 cell built by :mod:`tvm_ledg.spaces.nb201`;
* ``vit``: patch-embedding conv, cls token or mean pooling, hand-written
  attention (matmul / softmax / LayerNorm / GELU);
* ``transformer``: the same encoder on a float ``(seq, dim)`` input.

CNN resolutions come from :data:`RESOLUTIONS`, mostly <= 96 (224 only with a
base width <= 16). FLOPs follow ``torch.utils.flop_counter`` (2 per
multiply-accumulate of conv / linear / matmul) but are counted from shapes
alone (the module tree built on the meta device), so a draw costs a few
milliseconds and no arithmetic. A draw over :data:`FLOP_CAP` is discarded and
the seed's generator draws again; the batch size is then halved until the whole
measured batch fits too. This keeps every network cheap enough to time untuned
on a CPU (per-family FLOP medians of 40-300 M).

The batch size is part of the configuration (:attr:`ZooArch.batch`, mostly 1)
but, as for every space, :func:`tvm_ledg.spaces.build` takes it as an
argument: build with ``build(spec, batch_size=arch.batch)`` to get the sampled
workload (``spaces.parse(spec).arch.batch``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import torch
from torch import nn

from targets.errors import ModelImportError
from tvm_ledg.spaces import nb201

__all__ = [
    "NAME",
    "FAMILIES",
    "FLOP_CAP",
    "RESOLUTIONS",
    "ZooArch",
    "sample",
    "sample_specs",
    "build_network",
    "input_shape",
]

NAME = "zoo"

FAMILIES: tuple[str, ...] = (
    "resnet",
    "vgg",
    "mobilenetv2",
    "mobilenetv3",
    "efficientnet",
    "mnasnet",
    "squeezenet",
    "googlenet",
    "alexnet",
    "nb201",
    "vit",
    "transformer",
)

FLOP_CAP = 1_500_000_000  # FLOPs (2 per MAC) of one measured batch
RESOLUTIONS: tuple[int, ...] = (32, 48, 64, 96, 128, 160, 224)
_RESOLUTION_WEIGHTS = (30, 14, 22, 16, 9, 6, 3)  # 82% <= 96, 3% at 224
_BASE_WIDTHS = (8, 16, 24, 32, 48, 64)
_VIT_RESOLUTIONS = (32, 48, 64, 96, 128)
_VIT_PATCHES = (4, 6, 8, 12, 16)
_ENCODER_DIMS = (64, 96, 128, 192, 256)
_ENCODER_HEADS = (2, 3, 4, 6, 8)
_BATCHES = (1, 2, 4, 8)
_MAX_DRAWS = 100  # draws per seed before giving up on the FLOP cap (never reached in practice)
_SEED_RE = re.compile(r"[0-9]+")


# ------------------------------------------------------------------ configurations
@dataclass(frozen=True)
class _ResNetCfg:
    resolution: int
    bottleneck: bool
    base: int
    depths: tuple[int, ...]  # blocks per stage; widths base * 2**stage
    stem_stride: int  # 1: 3x3 conv, 2: 3x3/2 conv, 4: 7x7/2 conv + 3x3/2 max-pool


@dataclass(frozen=True)
class _VGGCfg:
    resolution: int
    widths: tuple[int, ...]
    convs: tuple[int, ...]  # 3x3 convs per stage, each stage ends in a 2x2 max-pool
    batch_norm: bool
    hidden: int  # 0: global pool + linear; else flatten + linear(hidden) + linear


@dataclass(frozen=True)
class _MBStage:
    channels: int
    repeats: int
    stride: int
    kernel: int
    expand: int
    se: bool
    act: str


@dataclass(frozen=True)
class _MBNetCfg:
    resolution: int
    stem: int
    stem_stride: int
    stem_act: str
    stages: tuple[_MBStage, ...]
    head: int  # 1x1 conv width before pooling
    head_act: str
    hidden: int  # 0: linear classifier; else linear(hidden) + act + linear
    se_act: str
    se_gate: str


@dataclass(frozen=True)
class _SqueezeCfg:
    resolution: int
    stem_kernel: int
    stem_width: int
    fires: tuple[tuple[int, int], ...]  # (squeeze, expand per branch)
    pools: tuple[int, ...]  # fire indices followed by a 3x3/2 max-pool


@dataclass(frozen=True)
class _Inception:
    c1: int
    c3_reduce: int
    c3: int
    c5_reduce: int
    c5: int
    pool_proj: int
    k5: int  # kernel of the "5x5" branch (torchvision's GoogLeNet uses 3)

    @property
    def out(self) -> int:
        return self.c1 + self.c3 + self.c5 + self.pool_proj


@dataclass(frozen=True)
class _GoogLeNetCfg:
    resolution: int
    stem_kernel: int
    stem_stride: int
    stem_width: int
    stages: tuple[tuple[_Inception, ...], ...]  # a 3x3/2 max-pool between stages


@dataclass(frozen=True)
class _AlexNetCfg:
    resolution: int
    kernel: int
    stride: int
    widths: tuple[int, ...]  # the 5 convs
    hidden: tuple[int, int]  # the two hidden FC layers


@dataclass(frozen=True)
class _NB201Cfg:
    resolution: int
    cell: str  # NAS-Bench-201 cell string
    channels: int
    cells_per_stage: int


@dataclass(frozen=True)
class _ViTCfg:
    resolution: int
    patch: int
    dim: int
    heads: int
    depth: int
    mlp_ratio: int
    cls_token: bool


@dataclass(frozen=True)
class _TextCfg:
    seq: int
    dim: int
    heads: int
    depth: int
    mlp_ratio: int


NetConfig: TypeAlias = (
    _ResNetCfg | _VGGCfg | _MBNetCfg | _SqueezeCfg | _GoogLeNetCfg | _AlexNetCfg | _NB201Cfg | _ViTCfg | _TextCfg
)


@dataclass(frozen=True)
class ZooArch:
    """One sampled network: the spec (``family``, ``seed``) and everything drawn from it.

    ``flops`` is the count for one sample; the measured workload is ``batch`` samples.
    """

    family: str
    seed: int
    batch: int
    num_classes: int
    flops: int
    net: NetConfig

    @classmethod
    def parse(cls, text: str) -> ZooArch:
        """Parse ``<family>:<seed>`` (family case-insensitive, seed a non-negative int) and sample it."""
        family, sep, seed_text = text.strip().partition(":")
        family, seed_text = family.strip().lower(), seed_text.strip()
        if not sep:
            raise ModelImportError(f"zoo spec {text!r}: expected '<family>:<seed>'; families: {', '.join(FAMILIES)}")
        if family not in FAMILIES:
            raise ModelImportError(
                f"zoo spec {text!r}: unknown family {family!r}; expected one of {', '.join(FAMILIES)}"
            )
        if not _SEED_RE.fullmatch(seed_text):
            raise ModelImportError(f"zoo spec {text!r}: seed {seed_text!r} is not a non-negative integer")
        return sample(family, int(seed_text))

    def to_text(self) -> str:
        """Canonical ``<family>:<seed>`` (the seed determines the rest)."""
        return f"{self.family}:{self.seed}"

    def config_text(self) -> str:
        """Everything the seed drew, as canonical JSON (for logs and data-set metadata)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":"))


# ------------------------------------------------------------------ FLOP counting
# Counted from the module tree and one sample's shape, without running anything,
# with torch.utils.flop_counter's convention (2 per MAC of conv / linear / matmul;
# pooling, normalization and activations count 0). A test checks the two agree.
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


# ------------------------------------------------------------------ building blocks
_ACTS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "hardswish": nn.Hardswish,
    "silu": nn.SiLU,
    "sigmoid": nn.Sigmoid,
    "hardsigmoid": nn.Hardsigmoid,
}


def _round8(value: float) -> int:
    """Channel counts are multiples of 8 (as in the mobile families), at least 8."""
    return max(8, int(round(value / 8)) * 8)


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


# ------------------------------------------------------------------ networks
def _build_resnet(cfg: _ResNetCfg, num_classes: int) -> nn.Module:
    stem: list[nn.Module] = {
        1: [_conv_bn(3, cfg.base, 3)],
        2: [_conv_bn(3, cfg.base, 3, 2)],
        4: [_conv_bn(3, cfg.base, 7, 2), nn.MaxPool2d(3, 2, padding=1)],
    }[cfg.stem_stride]
    blocks: list[nn.Module] = []
    c_in = cfg.base
    for stage, depth in enumerate(cfg.depths):
        for i in range(depth):
            block = _ResBlock(c_in, cfg.base * 2**stage, 2 if stage > 0 and i == 0 else 1, cfg.bottleneck)
            blocks.append(block)
            c_in = block.c_out
    return nn.Sequential(*stem, *blocks, _classifier(c_in, 0, num_classes))


def _build_vgg(cfg: _VGGCfg, num_classes: int) -> nn.Module:
    layers: list[nn.Module] = []
    c_in, size = 3, cfg.resolution
    for width, convs in zip(cfg.widths, cfg.convs):
        for _ in range(convs):
            layers.append(_conv_bn(c_in, width, 3, bn=cfg.batch_norm))
            c_in = width
        layers.append(nn.MaxPool2d(2, 2))
        size //= 2
    if not cfg.hidden:
        return nn.Sequential(*layers, _classifier(c_in, 0, num_classes))
    head = [nn.Flatten(), nn.Linear(c_in * size * size, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, num_classes)]
    return nn.Sequential(*layers, *head)


def _build_mbnet(cfg: _MBNetCfg, num_classes: int) -> nn.Module:
    layers: list[nn.Module] = [_conv_bn(3, cfg.stem, 3, cfg.stem_stride, act=cfg.stem_act)]
    c_in = cfg.stem
    for stage in cfg.stages:
        for i in range(stage.repeats):
            layers.append(_MBConv(c_in, stage, stage.stride if i == 0 else 1, cfg.se_act, cfg.se_gate))
            c_in = stage.channels
    layers.append(_conv_bn(c_in, cfg.head, 1, act=cfg.head_act))
    return nn.Sequential(*layers, _classifier(cfg.head, cfg.hidden, num_classes, cfg.head_act))


def _build_squeezenet(cfg: _SqueezeCfg, num_classes: int) -> nn.Module:
    layers: list[nn.Module] = [
        _conv_bn(3, cfg.stem_width, cfg.stem_kernel, 2, bn=False),
        nn.MaxPool2d(3, 2, ceil_mode=True),
    ]
    c_in = cfg.stem_width
    for i, (squeeze, expand) in enumerate(cfg.fires):
        layers.append(_Fire(c_in, squeeze, expand))
        c_in = 2 * expand
        if i in cfg.pools:
            layers.append(nn.MaxPool2d(3, 2, ceil_mode=True))
    head = [nn.Conv2d(c_in, num_classes, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers, *head)


def _build_googlenet(cfg: _GoogLeNetCfg, num_classes: int) -> nn.Module:
    w = cfg.stem_width
    layers: list[nn.Module] = [
        _conv_bn(3, w, cfg.stem_kernel, cfg.stem_stride),
        nn.MaxPool2d(3, 2, padding=1),
        _conv_bn(w, w, 1),
        _conv_bn(w, 3 * w, 3),
        nn.MaxPool2d(3, 2, padding=1),
    ]
    c_in = 3 * w
    for s, stage in enumerate(cfg.stages):
        if s > 0:
            layers.append(nn.MaxPool2d(3, 2, padding=1))
        for module in stage:
            layers.append(_InceptionBlock(c_in, module))
            c_in = module.out
    return nn.Sequential(*layers, _classifier(c_in, 0, num_classes))


def _build_alexnet(cfg: _AlexNetCfg, num_classes: int) -> nn.Module:
    size = (cfg.resolution + 4 - cfg.kernel) // cfg.stride + 1
    layers: list[nn.Module] = [nn.Conv2d(3, cfg.widths[0], cfg.kernel, cfg.stride, padding=2), nn.ReLU()]
    c_in = cfg.widths[0]
    for i, width in enumerate(cfg.widths[1:], start=1):
        if i in (1, 2) and size >= 3:  # AlexNet pools after conv1 and conv2 (and conv5, below)
            layers.append(nn.MaxPool2d(3, 2))
            size = (size - 3) // 2 + 1
        layers += [nn.Conv2d(c_in, width, 5 if i == 1 else 3, padding=2 if i == 1 else 1), nn.ReLU()]
        c_in = width
    if size >= 3:
        layers.append(nn.MaxPool2d(3, 2))
        size = (size - 3) // 2 + 1
    h1, h2 = cfg.hidden
    head = [
        nn.Flatten(),
        nn.Linear(c_in * size * size, h1),
        nn.ReLU(),
        nn.Linear(h1, h2),
        nn.ReLU(),
        nn.Linear(h2, num_classes),
    ]
    return nn.Sequential(*layers, *head)


def _build_nb201(cfg: _NB201Cfg, num_classes: int) -> nn.Module:
    cell = nb201.NB201Cell.parse(cfg.cell)
    return nb201.build_network(
        cell, num_classes=num_classes, channels=cfg.channels, cells_per_stage=cfg.cells_per_stage
    )


class _ViT(nn.Module):
    """Vision transformer: patch conv, [cls token], learned positions, encoder, LN, cls or mean pooling."""

    def __init__(self, cfg: _ViTCfg, num_classes: int) -> None:
        super().__init__()
        tokens = (cfg.resolution // cfg.patch) ** 2 + int(cfg.cls_token)
        self.patch_embed = nn.Conv2d(3, cfg.dim, cfg.patch, stride=cfg.patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, cfg.dim) * 0.02) if cfg.cls_token else None
        self.pos_embed = nn.Parameter(torch.randn(1, tokens, cfg.dim) * 0.02)
        self.layers = _encoder(cfg.dim, cfg.heads, cfg.mlp_ratio, cfg.depth, tokens)
        self.norm = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.size(0), -1, -1), x], dim=1)
        x = self.norm(self.layers(x + self.pos_embed))
        # select, not x[:, 0]: TVM 0.27's FX importer keeps the indexed axis (shape (B, 1, dim)).
        return self.head(x.select(1, 0) if self.cls_token is not None else x.mean(1))

    def flops(self, shape: Shape) -> tuple[int, Shape]:
        patches, (dim, h, w) = _flops(self.patch_embed, shape)
        encoder, _ = _flops(self.layers, (self.pos_embed.shape[1], dim))
        head, out = _flops(self.head, (dim,))
        return patches + encoder + head, out


class _TextEncoder(nn.Module):
    """Text-style encoder on float token features ``(B, seq, dim)``: positions, encoder, LN, mean pool."""

    def __init__(self, cfg: _TextCfg, num_classes: int) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.randn(1, cfg.seq, cfg.dim) * 0.02)
        self.layers = _encoder(cfg.dim, cfg.heads, cfg.mlp_ratio, cfg.depth, cfg.seq)
        self.norm = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.layers(x + self.pos_embed)).mean(1))

    def flops(self, shape: Shape) -> tuple[int, Shape]:
        encoder, _ = _flops(self.layers, shape)
        head, out = _flops(self.head, shape[1:])
        return encoder + head, out


# ------------------------------------------------------------------ samplers
def _resolution(rng: random.Random) -> int:
    return rng.choices(RESOLUTIONS, weights=_RESOLUTION_WEIGHTS)[0]


def _base_width(rng: random.Random, resolution: int, widths: Sequence[int] = _BASE_WIDTHS) -> int:
    """Narrower nets for big inputs: <= 64 up to 96 px, <= 32 up to 160 px, <= 16 at 224."""
    limit = 64 if resolution <= 96 else 32 if resolution <= 160 else 16
    return rng.choice([w for w in widths if w <= limit])


def _stem_stride(rng: random.Random, resolution: int) -> int:
    if resolution <= 32:
        return 1
    if resolution <= 64:
        return rng.choice((1, 2))
    return rng.choice((2, 4)) if resolution <= 128 else 4


def _sample_resnet(rng: random.Random) -> _ResNetCfg:
    res = _resolution(rng)
    return _ResNetCfg(
        resolution=res,
        bottleneck=rng.random() < 0.4,
        base=_base_width(rng, res),
        depths=tuple(rng.randint(1, 3) for _ in range(rng.randint(2, 4))),
        stem_stride=_stem_stride(rng, res),
    )


def _sample_vgg(rng: random.Random) -> _VGGCfg:
    res = _resolution(rng)
    base = _base_width(rng, res, _BASE_WIDTHS[:-1])  # no stem downsampling: full-resolution convs
    stages = rng.randint(3, 5)
    return _VGGCfg(
        resolution=res,
        widths=tuple(base * 2 ** min(s, 3) for s in range(stages)),
        convs=tuple(rng.randint(1, 3) for _ in range(stages)),
        batch_norm=rng.random() < 0.5,
        hidden=rng.choice((0, 128, 256, 512, 1024)),
    )


def _mb_stages(
    rng: random.Random,
    stem: int,
    resolution: int,
    expands: Sequence[int],
    act: Callable[[int], str],
    se_prob: float,
) -> tuple[_MBStage, ...]:
    """4-7 stages of 1-4 blocks with growing widths; the first stage has expansion 1 and stride 1.

    ``act(stage)`` names each stage's activation.
    """
    n = rng.randint(4, 7)
    downsample = set(rng.sample(range(1, n), min(n - 1, 3 if resolution <= 64 else 4)))
    growth = rng.uniform(1.3, 1.8)
    stages = []
    for i in range(n):
        stages.append(
            _MBStage(
                channels=_round8(stem * growth**i),
                repeats=1 if i == 0 else rng.randint(1, 4),
                stride=2 if i in downsample else 1,
                kernel=rng.choice((3, 5)),
                expand=1 if i == 0 else rng.choice(expands),
                se=rng.random() < se_prob,
                act=act(i),
            )
        )
    return tuple(stages)


def _sample_mbnet(rng: random.Random, family: str) -> _MBNetCfg:
    res = _resolution(rng)
    stem = _base_width(rng, res, (8, 16, 24, 32))
    stem_stride = 1 if res <= 48 else 2
    if family == "mobilenetv2":
        stages = _mb_stages(rng, stem, res, (3, 4, 6), lambda i: "relu6", 0.0)
        stem_act = head_act = se_act = "relu6"
        gate, hidden = "sigmoid", 0
    elif family == "mobilenetv3":
        switch = rng.randint(1, 3)  # hard-swish from this stage on, ReLU before (as in MobileNetV3)
        stages = _mb_stages(rng, stem, res, (3, 4, 6), lambda i: "relu" if i < switch else "hardswish", 0.5)
        stem_act = head_act = "hardswish"
        se_act, gate, hidden = "relu", "hardsigmoid", rng.choice((256, 512, 1024, 1280))
    elif family == "efficientnet":
        stages = _mb_stages(rng, stem, res, (4, 6), lambda i: "silu", 1.0)
        stem_act = head_act = se_act = "silu"
        gate, hidden = "sigmoid", 0
    else:  # mnasnet
        stages = _mb_stages(rng, stem, res, (3, 6), lambda i: "relu", 0.4)
        stem_act = head_act = se_act = "relu"
        gate, hidden = "sigmoid", 0
    head = min(1280, _round8(stages[-1].channels * rng.choice((2, 4, 6))))
    return _MBNetCfg(res, stem, stem_stride, stem_act, stages, head, head_act, hidden, se_act, gate)


def _sample_squeezenet(rng: random.Random) -> _SqueezeCfg:
    res = _resolution(rng)
    n = rng.randint(4, 8)
    squeeze0 = _base_width(rng, res, (8, 16, 24, 32))
    squeezes = [squeeze0 + (i // 2) * squeeze0 // 2 for i in range(n)]  # grows every second fire, as upstream
    return _SqueezeCfg(
        resolution=res,
        stem_kernel=rng.choice((3, 7)),
        stem_width=_base_width(rng, res),
        fires=tuple((squeeze, 4 * squeeze) for squeeze in squeezes),
        pools=tuple(sorted(rng.sample(range(n - 1), rng.randint(1, 2)))),
    )


def _sample_inception(rng: random.Random, width: int) -> _Inception:
    """Branch widths in GoogLeNet's proportions (about 1/4, 1/2, 1/8, 1/8 of ``width``), jittered."""
    c3, c5 = _round8(width / 2), _round8(width / 8)
    return _Inception(
        c1=_round8(width * rng.choice((0.25, 0.375))),
        c3_reduce=_round8(c3 * rng.choice((0.5, 0.75))),
        c3=c3,
        c5_reduce=_round8(c5 * rng.choice((0.5, 1.0))),
        c5=c5,
        pool_proj=_round8(width / 8),
        k5=rng.choice((3, 5)),
    )


def _sample_googlenet(rng: random.Random) -> _GoogLeNetCfg:
    res = _resolution(rng)
    stem_width = _base_width(rng, res)
    growth = rng.uniform(1.1, 1.4)
    stages: list[tuple[_Inception, ...]] = []
    width = 4.0 * stem_width
    for _ in range(rng.randint(2, 3)):
        modules = []
        for _ in range(rng.randint(1, 3)):
            modules.append(_sample_inception(rng, width))
            width *= growth
        stages.append(tuple(modules))
    return _GoogLeNetCfg(
        resolution=res,
        stem_kernel=rng.choice((3, 7)),
        stem_stride=1 if res <= 64 else 2,
        stem_width=stem_width,
        stages=tuple(stages),
    )


def _sample_alexnet(rng: random.Random) -> _AlexNetCfg:
    res = _resolution(rng)
    c1 = _base_width(rng, res)
    c2 = _round8(c1 * rng.choice((2, 3)))
    c3 = _round8(c2 * rng.choice((1.5, 2)))
    c4 = _round8(c3 * rng.choice((2 / 3, 1)))
    c5 = _round8(c4 * rng.choice((2 / 3, 1)))
    small = res <= 64
    return _AlexNetCfg(
        resolution=res,
        kernel=rng.choice((5, 7) if small else (7, 11)),
        stride=2 if small else 4,
        widths=(c1, c2, c3, c4, c5),
        hidden=(rng.choice((256, 512, 1024, 2048)), rng.choice((256, 512, 1024, 2048))),
    )


def _sample_nb201(rng: random.Random) -> _NB201Cfg:
    edges = [tuple(rng.choice(nb201.OPS) for _ in range(j)) for j in (1, 2, 3)]
    return _NB201Cfg(
        resolution=_resolution(rng),
        cell=nb201.NB201Cell(tuple(edges)).to_text(),
        channels=rng.choice((8, 12, 16, 24, 32)),
        cells_per_stage=rng.randint(1, 5),
    )


def _heads(rng: random.Random, dim: int) -> int:
    return rng.choice([h for h in _ENCODER_HEADS if dim % h == 0])


def _sample_vit(rng: random.Random) -> _ViTCfg:
    res = rng.choice(_VIT_RESOLUTIONS)
    patch = rng.choice([p for p in _VIT_PATCHES if res % p == 0 and 4 <= (res // p) ** 2 <= 256])
    dim = rng.choice(_ENCODER_DIMS)
    return _ViTCfg(
        resolution=res,
        patch=patch,
        dim=dim,
        heads=_heads(rng, dim),
        depth=rng.randint(2, 6),
        mlp_ratio=rng.randint(2, 4),
        cls_token=rng.random() < 0.5,
    )


def _sample_transformer(rng: random.Random) -> _TextCfg:
    seq, dim = rng.randint(16, 128), rng.choice(_ENCODER_DIMS)
    return _TextCfg(seq=seq, dim=dim, heads=_heads(rng, dim), depth=rng.randint(2, 6), mlp_ratio=rng.randint(2, 4))


@dataclass(frozen=True)
class _Family:
    sample: Callable[[random.Random], Any]  # rng -> that family's config
    build: Callable[[Any, int], nn.Module]  # (config, num_classes) -> network


_FAMILIES: dict[str, _Family] = {
    "resnet": _Family(_sample_resnet, _build_resnet),
    "vgg": _Family(_sample_vgg, _build_vgg),
    **{
        name: _Family(functools.partial(_sample_mbnet, family=name), _build_mbnet)
        for name in ("mobilenetv2", "mobilenetv3", "efficientnet", "mnasnet")
    },
    "squeezenet": _Family(_sample_squeezenet, _build_squeezenet),
    "googlenet": _Family(_sample_googlenet, _build_googlenet),
    "alexnet": _Family(_sample_alexnet, _build_alexnet),
    "nb201": _Family(_sample_nb201, _build_nb201),
    "vit": _Family(_sample_vit, _ViT),
    "transformer": _Family(_sample_transformer, _TextEncoder),
}


# ------------------------------------------------------------------ public API
def _sample_shape(net: NetConfig) -> tuple[int, ...]:
    if isinstance(net, _TextCfg):
        return (net.seq, net.dim)
    return (3, net.resolution, net.resolution)


def _count_flops(family: str, net: NetConfig, num_classes: int) -> int:
    """FLOPs of one sample: by hand for nb201, else from the module tree built on the meta device."""
    if isinstance(net, _NB201Cfg):
        return _nb201_flops(net, num_classes)
    with torch.device("meta"):  # no weight memory, no RNG draws
        module = _FAMILIES[family].build(net, num_classes)
    return _flops(module, _sample_shape(net))[0]


def _batch(rng: random.Random, net: NetConfig, flops: int) -> int:
    """Mostly 1; 2, 4 or 8 less often for big inputs; never beyond the FLOP cap."""
    big = math.prod(_sample_shape(net)) > 3 * 96 * 96
    batch = rng.choices(_BATCHES, weights=(85, 7, 5, 3) if big else (70, 12, 10, 8))[0]
    while batch > 1 and batch * flops > FLOP_CAP:
        batch //= 2
    return batch


@functools.lru_cache(maxsize=4096)  # parse-then-build samples twice; ZooArch is immutable
def sample(family: str, seed: int) -> ZooArch:
    """Draw the network of ``family`` for ``seed``, redrawing while it exceeds :data:`FLOP_CAP`."""
    if family not in _FAMILIES:
        raise ModelImportError(f"zoo: unknown family {family!r}; expected one of {', '.join(FAMILIES)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ModelImportError(f"zoo: seed {seed!r} is not a non-negative integer")
    rng = random.Random(f"{family}:{seed}")
    for _ in range(_MAX_DRAWS):
        net = _FAMILIES[family].sample(rng)
        num_classes = round(10 ** rng.uniform(1, 3))
        flops = _count_flops(family, net, num_classes)
        if flops <= FLOP_CAP:
            return ZooArch(family, seed, _batch(rng, net, flops), num_classes, flops, net)
    raise ModelImportError(f"zoo spec {family}:{seed}: no configuration under {FLOP_CAP} FLOPs in {_MAX_DRAWS} draws")


def sample_specs(count: int, families: Sequence[str] = FAMILIES, start_seed: int = 0) -> list[str]:
    """``count`` zoo specs dealing seeds round-robin over ``families`` (deterministic).

    Spec i is ``zoo:<families[i % F]>:<start_seed + i // F>``, so every family
    gets an equal share and a longer list extends a shorter one.
    """
    families = [f.strip().lower() for f in families]  # as case-insensitive as parsing a spec
    if not families or any(f not in FAMILIES for f in families):
        raise ModelImportError(f"zoo families {families!r}: expected a non-empty subset of {', '.join(FAMILIES)}")
    if count < 0 or start_seed < 0:
        raise ModelImportError(f"sample_specs: count ({count}) and start_seed ({start_seed}) must be >= 0")
    n = len(families)
    return [f"{NAME}:{families[i % n]}:{start_seed + i // n}" for i in range(count)]


def build_network(arch: ZooArch) -> nn.Module:
    """The sampled network, in eval mode (weights from the caller's torch RNG state)."""
    return _FAMILIES[arch.family].build(arch.net, arch.num_classes).eval()


def input_shape(arch: ZooArch) -> tuple[int, ...]:
    """Shape of one sample: (C, H, W) for the CNN families and ``vit``, (seq, dim) for ``transformer``."""
    return _sample_shape(arch.net)
