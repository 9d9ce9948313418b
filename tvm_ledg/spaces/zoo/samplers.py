"""Per-family samplers: a seeded ``random.Random`` -> that family's configuration.

The order of the draws is part of the spec's meaning (collected latencies
refer to networks by spec only): reordering, adding or removing a draw re-maps
every seed, which the pinned seed-0 FLOPs in the tests make visible.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from tvm_ledg.spaces import nb201
from tvm_ledg.spaces.zoo.configs import (
    _AlexNetCfg,
    _GoogLeNetCfg,
    _Inception,
    _MBNetCfg,
    _MBStage,
    _NB201Cfg,
    _ResNetCfg,
    _round8,
    _SqueezeCfg,
    _TextCfg,
    _VGGCfg,
    _ViTCfg,
)

__all__ = ["RESOLUTIONS"]

RESOLUTIONS: tuple[int, ...] = (32, 48, 64, 96, 128, 160, 224)
_RESOLUTION_WEIGHTS = (30, 14, 22, 16, 9, 6, 3)  # 82% <= 96, 3% at 224
_BASE_WIDTHS = (8, 16, 24, 32, 48, 64)
_VIT_RESOLUTIONS = (32, 48, 64, 96, 128)
_VIT_PATCHES = (4, 6, 8, 12, 16)
_ENCODER_DIMS = (64, 96, 128, 192, 256)
_ENCODER_HEADS = (2, 3, 4, 6, 8)


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
