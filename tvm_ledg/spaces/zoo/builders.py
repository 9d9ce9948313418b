"""Per-family network builders: a configuration and a class count -> an ``nn.Module``.

Builders make no choices: every choice is in the configuration, so the same
configuration always gives the same module tree (weights come from the
caller's torch RNG state). Sampling builds them on the meta device to count FLOPs.
"""

from __future__ import annotations

import torch
from torch import nn

from tvm_ledg.spaces import nb201
from tvm_ledg.spaces.zoo.blocks import (
    _classifier,
    _conv_bn,
    _encoder,
    _Fire,
    _InceptionBlock,
    _MBConv,
    _ResBlock,
)
from tvm_ledg.spaces.zoo.configs import (
    _AlexNetCfg,
    _GoogLeNetCfg,
    _MBNetCfg,
    _NB201Cfg,
    _ResNetCfg,
    _SqueezeCfg,
    _TextCfg,
    _VGGCfg,
    _ViTCfg,
)
from tvm_ledg.spaces.zoo.flops import Shape, _flops


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
        patches, (dim, _, _) = _flops(self.patch_embed, shape)
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
