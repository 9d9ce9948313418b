"""Per-family configurations: everything a seed draws, as frozen dataclasses.

Plain data with no torch or ``random`` import, because three sides share it: the
samplers fill it in, the builders and the FLOP count read it, and
:meth:`ZooArch.config_text <tvm_ledg.spaces.zoo.api.ZooArch.config_text>`
serializes it for logs and data-set metadata. The channel rounding lives here too,
as both the samplers and the squeeze-excite block apply it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

__all__ = ["NetConfig"]


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


def _round8(value: float) -> int:
    """Channel counts are multiples of 8 (as in the mobile families), at least 8."""
    return max(8, round(value / 8) * 8)
