"""Public entry points: spec parsing (:class:`ZooArch`), the seeded draw under the FLOP cap,
spec lists, and building a drawn network.

The family registry lives here, next to the draw loop that uses it, so that a
new family is one sampler, one builder, and one ``_FAMILIES.add`` line;
:data:`FAMILIES` (the public tuple, in registration order) follows from it.
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
from typing import Any

import torch
from torch import nn

from cost_model.registry import Registry
from targets.errors import ModelImportError
from tvm_ledg.spaces.zoo.builders import (
    _build_alexnet,
    _build_googlenet,
    _build_mbnet,
    _build_nb201,
    _build_resnet,
    _build_squeezenet,
    _build_vgg,
    _TextEncoder,
    _ViT,
)
from tvm_ledg.spaces.zoo.configs import NetConfig, _NB201Cfg, _TextCfg
from tvm_ledg.spaces.zoo.flops import _flops, _nb201_flops
from tvm_ledg.spaces.zoo.samplers import (
    _sample_alexnet,
    _sample_googlenet,
    _sample_mbnet,
    _sample_nb201,
    _sample_resnet,
    _sample_squeezenet,
    _sample_transformer,
    _sample_vgg,
    _sample_vit,
)

__all__ = [
    "FAMILIES",
    "FLOP_CAP",
    "NAME",
    "ZooArch",
    "build_network",
    "input_shape",
    "list_families",
    "sample",
    "sample_specs",
]

NAME = "zoo"


@dataclass(frozen=True)
class _Family:
    sample: Callable[[random.Random], Any]  # rng -> that family's config
    build: Callable[[Any, int], nn.Module]  # (config, num_classes) -> network


_FAMILIES: Registry[_Family] = Registry("family")  # unknown names: ModelImportError, with the spec
_FAMILIES.add("resnet", _Family(_sample_resnet, _build_resnet))
_FAMILIES.add("vgg", _Family(_sample_vgg, _build_vgg))
for _name in ("mobilenetv2", "mobilenetv3", "efficientnet", "mnasnet"):
    _FAMILIES.add(_name, _Family(functools.partial(_sample_mbnet, family=_name), _build_mbnet))
_FAMILIES.add("squeezenet", _Family(_sample_squeezenet, _build_squeezenet))
_FAMILIES.add("googlenet", _Family(_sample_googlenet, _build_googlenet))
_FAMILIES.add("alexnet", _Family(_sample_alexnet, _build_alexnet))
_FAMILIES.add("nb201", _Family(_sample_nb201, _build_nb201))
_FAMILIES.add("vit", _Family(_sample_vit, _ViT))
_FAMILIES.add("transformer", _Family(_sample_transformer, _TextEncoder))

FAMILIES: tuple[str, ...] = tuple(_FAMILIES)
"""The family names, in registration order (the order ``sample_specs`` deals seeds in)."""


def list_families() -> list[str]:
    """The family names, in registration order."""
    return list(_FAMILIES)


FLOP_CAP = 1_500_000_000  # FLOPs (2 per MAC) of one measured batch
_BATCHES = (1, 2, 4, 8)
_MAX_DRAWS = 100  # draws per seed before giving up on the FLOP cap (never reached in practice)
_SEED_RE = re.compile(r"[0-9]+")


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
        if family not in _FAMILIES:
            raise ModelImportError(f"zoo spec {text!r}: {_FAMILIES.unknown(family)}")
        if not _SEED_RE.fullmatch(seed_text):
            raise ModelImportError(f"zoo spec {text!r}: seed {seed_text!r} is not a non-negative integer")
        return sample(family, int(seed_text))

    def to_text(self) -> str:
        """Canonical ``<family>:<seed>`` (the seed determines the rest)."""
        return f"{self.family}:{self.seed}"

    def config_text(self) -> str:
        """Everything the seed drew, as canonical JSON (for logs and data-set metadata)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":"))


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
        raise ModelImportError(f"zoo: {_FAMILIES.unknown(family)}")
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
