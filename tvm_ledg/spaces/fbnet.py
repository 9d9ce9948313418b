"""FBNet space in HELP / HW-NAS-Bench encoding: 22 op indices -> the network.

Mirrors GATECH-EIC/HW-NAS-Bench ``hw_nas_bench_api/fbnet_models/model_infer.py``
(``FBNet_Infer``), the model behind HW-NAS-Bench's FBNet measurements that HELP
(HayeonLee/HELP ``data/fbnet``) reuses:

* ops, in index order (``PRIMITIVES``; also HELP ``utils.arch_enc``, where
  index 8 is skip, ``i < 4`` is kernel 3, ``i % 4`` picks the expansion):
  0 k3_e1, 1 k3_e1_g2, 2 k3_e3, 3 k3_e6, 4 k5_e1, 5 k5_e1_g2, 6 k5_e3, 7 k5_e6, 8 skip;
* ``ConvBlock``: 1x1 conv (groups g) + BN + ReLU, channel shuffle if g > 1,
  kxk depthwise conv (stride s) + BN + ReLU, 1x1 conv (groups g) + BN,
  identity residual when C_in == C_out and s == 1;
* ``Skip``: identity, or 1x1 conv (stride s) + BN + ReLU when the shape changes;
* macro network (FBNet-v1 layout): stem ConvNorm 3x3 (3 -> 16) + BN + ReLU,
  stages of [1, 4, 4, 4, 4, 4, 1] blocks with [16, 24, 32, 64, 112, 184, 352]
  channels, first block of each stage strided, header ConvNorm 1x1 + BN + ReLU,
  AdaptiveAvgPool2d(1), Linear.
  CIFAR-100 (``dataset="cifar100"``, HW-NAS-Bench's "unofficial CIFAR setting"):
  32x32 input, stem stride 1, stage strides [1, 1, 2, 2, 1, 2, 1], header 1504.
  ImageNet (``dataset="imagenet"``): 224x224, stem stride 2, strides
  [1, 2, 2, 2, 1, 2, 1], header 1984, 1000 classes.

Upstream's custom weight init is not reproduced (weights do not change the
operator graph); activations are not in-place (export-friendly).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from targets.errors import ModelImportError

__all__ = [
    "NAME",
    "OPS",
    "NUM_LAYERS",
    "FBNetArch",
    "build_network",
    "input_shape",
]

NAME = "fbnet"

OPS: tuple[str, ...] = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
# (kernel, expansion, groups) of each ConvBlock op; "skip" is handled separately.
_CONV_OPS: dict[str, tuple[int, int, int]] = {
    "k3_e1": (3, 1, 1),
    "k3_e1_g2": (3, 1, 2),
    "k3_e3": (3, 3, 1),
    "k3_e6": (3, 6, 1),
    "k5_e1": (5, 1, 1),
    "k5_e1_g2": (5, 1, 2),
    "k5_e3": (5, 3, 1),
    "k5_e6": (5, 6, 1),
}

_INDEX_RE = re.compile(r"[0-9]+")
_STAGE_BLOCKS = (1, 4, 4, 4, 4, 4, 1)
_STAGE_CHANNELS = (16, 24, 32, 64, 112, 184, 352)
_STEM_CHANNELS = 16
NUM_LAYERS = sum(_STAGE_BLOCKS)  # 22

# dataset -> (input resolution, stem stride, stage strides, header channels, classes)
_DATASETS: dict[str, tuple[int, int, tuple[int, ...], int, int]] = {
    "cifar100": (32, 1, (1, 1, 2, 2, 1, 2, 1), 1504, 100),
    "imagenet": (224, 2, (1, 2, 2, 2, 1, 2, 1), 1984, 1000),
}


@dataclass(frozen=True)
class FBNetArch:
    """22 op indices into :data:`OPS`, one per searchable layer."""

    ops: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.ops) != NUM_LAYERS:
            raise ModelImportError(f"fbnet architecture: expected {NUM_LAYERS} op indices, got {len(self.ops)}")
        for layer, op in enumerate(self.ops):
            if isinstance(op, bool) or not isinstance(op, int) or not 0 <= op < len(OPS):
                raise ModelImportError(
                    f"fbnet architecture: layer {layer} has op index {op!r}; expected an int in 0..{len(OPS) - 1} "
                    f"({', '.join(f'{i}={name}' for i, name in enumerate(OPS))})"
                )

    @classmethod
    def parse(cls, text: str) -> FBNetArch:
        """Parse ``"3,8,0,..."`` (22 comma-separated ints, spaces allowed)."""
        items = [item.strip() for item in text.split(",")]
        ops: list[int] = []
        for layer, item in enumerate(items):
            if not _INDEX_RE.fullmatch(item):
                raise ModelImportError(
                    f"fbnet architecture {text!r}: layer {layer} value {item!r} is not an op index (0..{len(OPS) - 1})"
                )
            ops.append(int(item))
        return cls(tuple(ops))

    @classmethod
    def from_names(cls, names: list[str] | tuple[str, ...]) -> FBNetArch:
        """Build from op names, e.g. HW-NAS-Bench's ``arch_str`` list."""
        unknown = [name for name in names if name not in OPS]
        if unknown:
            raise ModelImportError(f"fbnet architecture: unknown operation(s) {unknown}; expected names from {OPS}")
        return cls(tuple(OPS.index(name) for name in names))

    def to_text(self) -> str:
        """Canonical form: comma-separated indices, no spaces."""
        return ",".join(str(op) for op in self.ops)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(OPS[op] for op in self.ops)


class _ConvNorm(nn.Module):
    """Upstream ``ConvNorm``: conv -> BN -> ReLU with "same"-style padding."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=_padding(kernel, stride), bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class _ChannelShuffle(nn.Module):
    """[N, C, H, W] -> [N, g, C/g, H, W] -> transpose -> [N, C, H, W] (upstream ``ChannelShuffle``)."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.size()
        g = self.groups
        return x.view(n, g, c // g, h, w).permute(0, 2, 1, 3, 4).contiguous().view(n, c, h, w)


class _ConvBlock(nn.Module):
    """Upstream ``ConvBlock``: grouped-1x1 -> shuffle -> depthwise kxk -> grouped-1x1 (+ residual)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, expansion: int, groups: int, stride: int) -> None:
        super().__init__()
        mid = c_in * expansion
        self.shuffle = _ChannelShuffle(groups) if groups > 1 else None
        self.conv1 = nn.Conv2d(c_in, mid, 1, bias=False, groups=groups)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(
            mid, mid, kernel, stride=stride, padding=_padding(kernel, stride), groups=mid, bias=False
        )
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, c_out, 1, bias=False, groups=groups)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.nl = nn.ReLU()
        self.residual = c_in == c_out and stride == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.nl(self.bn1(self.conv1(x)))
        if self.shuffle is not None:
            out = self.shuffle(out)
        out = self.nl(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return out + x if self.residual else out


class _Skip(nn.Module):
    """Upstream ``Skip``: identity, or 1x1 conv + BN + ReLU when stride or width changes."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.proj = _ConvNorm(c_in, c_out, 1, stride) if stride == 2 or c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.proj is None else self.proj(x)


class _FBNet(nn.Module):
    def __init__(self, arch: FBNetArch, dataset: str, num_classes: int) -> None:
        super().__init__()
        _, stem_stride, strides, header, _ = _DATASETS[dataset]
        self.stem = _ConvNorm(3, _STEM_CHANNELS, 3, stem_stride)
        self.cells = nn.ModuleList()
        c_prev = _STEM_CHANNELS
        layer = 0
        for n_blocks, c_out, stage_stride in zip(_STAGE_BLOCKS, _STAGE_CHANNELS, strides):
            for i in range(n_blocks):
                stride = stage_stride if i == 0 else 1
                name = OPS[arch.ops[layer]]
                if name == "skip":
                    self.cells.append(_Skip(c_prev, c_out, stride))
                else:
                    kernel, expansion, groups = _CONV_OPS[name]
                    self.cells.append(_ConvBlock(c_prev, c_out, kernel, expansion, groups, stride))
                c_prev = c_out
                layer += 1
        self.header = _ConvNorm(c_prev, header, 1, 1)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(header, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.stem(x)
        for cell in self.cells:
            out = cell(out)
        out = self.avgpool(self.header(out))
        return self.fc(out.view(out.size(0), -1))


def _padding(kernel: int, stride: int) -> int:
    # Upstream: int(np.ceil((dilation * (kernel - 1) + 1 - stride) / 2.)) with dilation 1.
    return -(-(kernel - stride) // 2)


def _check_dataset(dataset: str) -> None:
    if dataset not in _DATASETS:
        raise ModelImportError(f"fbnet: unknown dataset {dataset!r}; expected one of {sorted(_DATASETS)}")


def build_network(arch: FBNetArch, *, dataset: str = "cifar100", num_classes: int | None = None) -> nn.Module:
    """The HW-NAS-Bench FBNet network; ``num_classes`` defaults to the dataset's."""
    _check_dataset(dataset)
    return _FBNet(arch, dataset, _DATASETS[dataset][4] if num_classes is None else num_classes)


def input_shape(arch: FBNetArch, *, dataset: str = "cifar100") -> tuple[int, int, int]:
    """(C, H, W) of one input image for ``dataset``."""
    del arch  # every architecture takes the same input
    _check_dataset(dataset)
    resolution = _DATASETS[dataset][0]
    return (3, resolution, resolution)
