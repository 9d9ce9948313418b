"""Once-for-All MobileNetV3 (w1.0) sub-networks: ``{ks, e, d, r}`` -> the network.

Mirrors mit-han-lab/once-for-all, i.e. what
``OFAMobileNetV3(width_mult=1.0, ks_list=[3,5,7], expand_ratio_list=[3,4,6],
depth_list=[2,3,4]).set_active_subnet(ks, e, d)`` followed by
``get_active_subnet()`` returns (the supernet HELP samples from,
``ofa_mbv3_d234_e346_k357_w1.0``):

* ``ofa/imagenet_classification/elastic_nn/networks/ofa_mbv3.py``: widths
  [16, 16, 24, 40, 80, 112, 160, 960, 1280], strides [1, 2, 2, 2, 1, 2],
  activations [relu, relu, relu, h_swish, h_swish, h_swish], SE on
  [False, False, True, False, True, True] -- i.e. the first 16->16 block and
  then five elastic stages (24, 40, 80, 112, 160) with SE on the 40, 112 and
  160 stages; stage i runs its first ``d[i]`` of 4 blocks, block j of stage i
  uses ``ks[4*i + j]`` / ``e[4*i + j]``.
* ``ofa/imagenet_classification/elastic_nn/modules/dynamic_layers.py``: a
  sub-block's middle width is ``make_divisible(round(C_in * e), 8)`` and its SE
  hidden width ``make_divisible(mid // 4, 8)``.
* ``ofa/utils/layers.py`` / ``ofa/utils/pytorch_modules.py``: ``MBConvLayer``
  (1x1 expand + BN + act [absent when e == 1], depthwise kxk + BN + act [+ SE],
  1x1 project + BN), ``ResidualBlock`` (identity shortcut iff stride 1 and
  C_in == C_out), ``ConvLayer`` (conv + BN + act), ``SEModule`` (two means ->
  1x1 conv with bias -> ReLU -> 1x1 conv with bias -> h_sigmoid -> multiply),
  ``Hswish`` = ``x * relu6(x + 3) / 6``, ``Hsigmoid`` = ``relu6(x + 3) / 6``.
* ``ofa/imagenet_classification/networks/mobilenet_v3.py``: first conv 3x3
  stride 2 (3 -> 16) + BN + h_swish, blocks, final expand 1x1 (160 -> 960) +
  BN + h_swish, global average pool as two ``mean`` calls, feature mix 1x1
  (960 -> 1280, no bias, no BN) + h_swish, linear classifier (1000 classes).

The classifier's dropout (identity at inference) is omitted; activations are
not in-place (export-friendly). Valid values follow HELP's OFA encoding
(``utils.arch_encoding_ofa``): ks in {3, 5, 7}, e in {3, 4, 6}, d in {2, 3, 4},
r in 128..224 in steps of 4.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from targets.errors import ModelImportError

__all__ = [
    "NAME",
    "KERNEL_SIZES",
    "EXPAND_RATIOS",
    "DEPTHS",
    "RESOLUTIONS",
    "NUM_STAGES",
    "BLOCKS_PER_STAGE",
    "OFAArch",
    "make_divisible",
    "build_network",
    "input_shape",
]

NAME = "ofa"

KERNEL_SIZES: tuple[int, ...] = (3, 5, 7)
EXPAND_RATIOS: tuple[int, ...] = (3, 4, 6)
DEPTHS: tuple[int, ...] = (2, 3, 4)
RESOLUTIONS: tuple[int, ...] = tuple(range(128, 225, 4))
NUM_STAGES = 5
BLOCKS_PER_STAGE = 4

_CHANNEL_DIVISIBLE = 8  # MyNetwork.CHANNEL_DIVISIBLE
_SE_REDUCTION = 4  # SEModule.REDUCTION
_FIRST_CONV = 16
_FIRST_BLOCK = 16
_STAGE_WIDTHS = (24, 40, 80, 112, 160)
_STAGE_STRIDES = (2, 2, 2, 1, 2)
_STAGE_ACTS = ("relu", "relu", "h_swish", "h_swish", "h_swish")
_STAGE_SE = (False, True, False, True, True)
_FINAL_EXPAND = 960
_LAST_CHANNEL = 1280


def make_divisible(v: float, divisor: int, min_val: int | None = None) -> int:
    """Upstream ``make_divisible`` (from the TF MobileNet repo), bit for bit."""
    if min_val is None:
        min_val = divisor
    new_v = max(min_val, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


@dataclass(frozen=True)
class OFAArch:
    """A sub-network: per-block kernel sizes and expand ratios (20 each), depths (5), resolution."""

    ks: tuple[int, ...]
    e: tuple[int, ...]
    d: tuple[int, ...]
    r: int

    def __post_init__(self) -> None:
        n_blocks = NUM_STAGES * BLOCKS_PER_STAGE
        _check_list("ks", self.ks, n_blocks, KERNEL_SIZES)
        _check_list("e", self.e, n_blocks, EXPAND_RATIOS)
        _check_list("d", self.d, NUM_STAGES, DEPTHS)
        if not _is_int(self.r) or self.r not in RESOLUTIONS:
            raise ModelImportError(
                f"ofa architecture: field 'r' is {self.r!r}; expected an int in 128..224 in steps of 4"
            )

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> OFAArch:
        """From a dict like HELP's ``ofa_archs.pt`` entries (``wid`` may be present but must be None)."""
        if not isinstance(config, dict):
            raise ModelImportError(f"ofa architecture: expected a JSON object, got {type(config).__name__}")
        extra = set(config) - {"ks", "e", "d", "r", "wid"}
        missing = {"ks", "e", "d", "r"} - set(config)
        if missing or extra:
            raise ModelImportError(
                f"ofa architecture: expected keys ks, e, d, r; missing {sorted(missing)}, unexpected {sorted(extra)}"
            )
        if config.get("wid") is not None:
            raise ModelImportError("ofa architecture: field 'wid' (width) must be null; only w1.0 is supported")
        lists = {}
        for key in ("ks", "e", "d"):
            value = config[key]
            if not isinstance(value, (list, tuple)):
                raise ModelImportError(f"ofa architecture: field {key!r} must be a list, got {value!r}")
            lists[key] = tuple(_as_int(key, v) for v in value)
        return cls(ks=lists["ks"], e=lists["e"], d=lists["d"], r=_as_int("r", config["r"]))

    @classmethod
    def parse(cls, text: str) -> OFAArch:
        """Parse ``{"ks": [...20], "e": [...20], "d": [...5], "r": 224}``."""
        try:
            config = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelImportError(f"ofa architecture {text!r}: not valid JSON ({exc})") from exc
        return cls.from_config(config)

    def to_text(self) -> str:
        """Canonical compact JSON with sorted keys (d, e, ks, r), as ``cost_model.data`` writes it."""
        config = {"ks": list(self.ks), "e": list(self.e), "d": list(self.d), "r": self.r}
        return json.dumps(config, separators=(",", ":"), sort_keys=True)

    def active_blocks(self) -> list[tuple[int, int, int]]:
        """(stage, kernel, expand) of every block that runs, in order."""
        blocks = []
        for stage, depth in enumerate(self.d):
            for j in range(depth):
                idx = stage * BLOCKS_PER_STAGE + j
                blocks.append((stage, self.ks[idx], self.e[idx]))
        return blocks


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _as_int(field: str, value: object) -> int:
    # Accept integral numbers such as numpy.int64 from HELP's files, reject floats/strings/bools.
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise ModelImportError(f"ofa architecture: field {field!r} has non-integer value {value!r}")
    return int(value.__index__())  # type: ignore[attr-defined]


def _check_list(field: str, values: tuple[int, ...], length: int, allowed: tuple[int, ...]) -> None:
    if len(values) != length:
        raise ModelImportError(f"ofa architecture: field {field!r} needs {length} values, got {len(values)}")
    for i, v in enumerate(values):
        if not _is_int(v) or v not in allowed:
            raise ModelImportError(f"ofa architecture: {field}[{i}] = {v!r}; expected one of {allowed}")


class _HSwish(nn.Module):
    """Upstream ``Hswish``: ``x * relu6(x + 3) / 6``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * F.relu6(x + 3.0) / 6.0


class _HSigmoid(nn.Module):
    """Upstream ``Hsigmoid``: ``relu6(x + 3) / 6``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(x + 3.0) / 6.0


def _act(name: str) -> nn.Module:
    return nn.ReLU() if name == "relu" else _HSwish()


class _SE(nn.Module):
    """Upstream ``SEModule`` with hidden width ``make_divisible(C // 4, 8)``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        mid = make_divisible(channels // _SE_REDUCTION, _CHANNEL_DIVISIBLE)
        self.fc = nn.Sequential(
            nn.Conv2d(channels, mid, 1, bias=True),
            nn.ReLU(),
            nn.Conv2d(mid, channels, 1, bias=True),
            _HSigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean(3, keepdim=True).mean(2, keepdim=True)
        return x * self.fc(y)


def _conv_bn_act(c_in: int, c_out: int, kernel: int, stride: int, act: str, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
        _act(act),
    )


class _MBConv(nn.Module):
    """Upstream ``MBConvLayer`` wrapped in ``ResidualBlock``."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int, mid: int, act: str, use_se: bool, expand: bool
    ) -> None:
        super().__init__()
        self.inverted_bottleneck = _conv_bn_act(c_in, mid, 1, 1, act) if expand else None
        depth_conv = _conv_bn_act(mid, mid, kernel, stride, act, groups=mid)
        if use_se:
            depth_conv.append(_SE(mid))
        self.depth_conv = depth_conv
        self.point_linear = nn.Sequential(nn.Conv2d(mid, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.inverted_bottleneck is None else self.inverted_bottleneck(x)
        out = self.point_linear(self.depth_conv(out))
        return out + x if self.residual else out


class _OFAMobileNetV3(nn.Module):
    def __init__(self, arch: OFAArch, num_classes: int) -> None:
        super().__init__()
        self.first_conv = _conv_bn_act(3, _FIRST_CONV, 3, 2, "h_swish")
        blocks: list[nn.Module] = [
            _MBConv(_FIRST_CONV, _FIRST_BLOCK, 3, 1, _FIRST_CONV, "relu", use_se=False, expand=False)
        ]
        c_in = _FIRST_BLOCK
        prev_stage = -1
        for stage, kernel, expand in arch.active_blocks():
            stride = _STAGE_STRIDES[stage] if stage != prev_stage else 1
            prev_stage = stage
            c_out = _STAGE_WIDTHS[stage]
            mid = make_divisible(round(c_in * expand), _CHANNEL_DIVISIBLE)
            blocks.append(_MBConv(c_in, c_out, kernel, stride, mid, _STAGE_ACTS[stage], _STAGE_SE[stage], expand=True))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.final_expand_layer = _conv_bn_act(c_in, _FINAL_EXPAND, 1, 1, "h_swish")
        self.feature_mix_layer = nn.Sequential(nn.Conv2d(_FINAL_EXPAND, _LAST_CHANNEL, 1, bias=False), _HSwish())
        self.classifier = nn.Linear(_LAST_CHANNEL, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first_conv(x)
        for block in self.blocks:
            x = block(x)
        x = self.final_expand_layer(x)
        x = x.mean(3, keepdim=True).mean(2, keepdim=True)
        x = self.feature_mix_layer(x)
        return self.classifier(x.view(x.size(0), -1))


def build_network(arch: OFAArch, *, num_classes: int = 1000) -> nn.Module:
    """The OFA-MobileNetV3 w1.0 sub-network selected by ``arch`` (ImageNet head by default)."""
    return _OFAMobileNetV3(arch, num_classes)


def input_shape(arch: OFAArch) -> tuple[int, int, int]:
    """(C, H, W) of one input image: the sub-network's resolution ``r``."""
    return (3, arch.r, arch.r)
