"""Architecture spaces: spec strings -> PyTorch networks ready for lowering.

A *spec* names one architecture of one search space as ``<space>:<arch>``:

* ``nb201:<cell>`` -- a NAS-Bench-201 cell string, e.g.
  ``nb201:|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|``
  (CIFAR-10 network, 32x32 input);
* ``fbnet:<22 comma-separated op indices>``, e.g. ``fbnet:0,3,4,0,0,7,6,3,7,7,7,8,6,7,0,4,6,7,4,7,7,3``
  (HW-NAS-Bench / HELP CIFAR-100 network, 32x32 input);
* ``ofa:<JSON {ks, e, d, r}>``, e.g. ``ofa:{"ks":[3,...],"e":[3,...],"d":[2,2,2,2,2],"r":128}``
  (OFA-MobileNetV3 w1.0 sub-network, ImageNet head, r x r input);
* ``zoo:<family>:<seed>``, e.g. ``zoo:resnet:17`` (a random but valid network of
  a classic family -- resnet, vgg, mobilenetv2/v3, efficientnet, mnasnet,
  squeezenet, googlenet, alexnet, nb201, vit, transformer -- drawn from the
  seed; see :mod:`tvm_ledg.spaces.zoo`).

The spec identifies an architecture only; the batch size is a separate
argument of :func:`build` because it changes the input shape, not the network.
A zoo architecture also draws a batch size: build it with
``build(spec, batch_size=parse(spec).arch.batch)`` to get the sampled workload.
:func:`parse` validates a spec and gives its canonical form (the one
:attr:`SpaceModel.name` carries), so equal architectures get equal names.
Errors are :class:`~targets.errors.ModelImportError` naming the offending field.

Everything here is pure PyTorch (no TVM import).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import torch
from torch import nn

from cost_model.registry import Registry
from targets.errors import ModelImportError
from tvm_ledg.spaces import fbnet, nb201, ofa, zoo

__all__ = [
    "Arch",
    "ArchSpec",
    "SpaceModel",
    "build",
    "describe_space",
    "list_spaces",
    "parse",
]

logger = logging.getLogger(__name__)

_INPUT_SEED = 0  # example inputs and initial weights are deterministic

Arch: TypeAlias = nb201.NB201Cell | fbnet.FBNetArch | ofa.OFAArch | zoo.ZooArch


@dataclass(frozen=True)
class _Space:
    parse_arch: Callable[[str], Any]  # str -> that space's Arch class
    build_module: Callable[[Any], nn.Module]
    input_shape: Callable[[Any], tuple[int, ...]]  # one sample, without the batch axis
    description: str


_SPACES: Registry[_Space] = Registry("architecture space", error=ModelImportError)
for _module, _arch, _description in (
    (nb201, nb201.NB201Cell, "NAS-Bench-201 cell (CIFAR-10 TinyNetwork, C=16, N=5, 32x32)"),
    (fbnet, fbnet.FBNetArch, "FBNet space, HW-NAS-Bench/HELP encoding (22 op indices, CIFAR-100, 32x32)"),
    (ofa, ofa.OFAArch, "Once-for-All MobileNetV3 w1.0 sub-network (JSON ks/e/d/r, ImageNet, r x r)"),
    (zoo, zoo.ZooArch, f"seeded random networks, <family>:<seed> with family in {', '.join(zoo.list_families())}"),
):
    _SPACES.add(_module.NAME, _Space(_arch.parse, _module.build_network, _module.input_shape, _description))


@dataclass(frozen=True)
class ArchSpec:
    """A validated spec: the space name and its typed architecture object."""

    space: str
    arch: Arch

    @property
    def canonical(self) -> str:
        """``<space>:<arch>`` in the space's canonical text form."""
        return f"{self.space}:{self.arch.to_text()}"


@dataclass(frozen=True)
class SpaceModel:
    """A built network with the inputs to trace/export it with.

    ``module`` is in eval mode; ``example_inputs`` is a tuple of one float32
    tensor of shape ``(batch_size, *input_shape)``: NCHW images, except for
    ``zoo:transformer:*`` whose samples are ``(seq, dim)`` token features.
    """

    name: str
    space: str
    arch: Arch
    module: nn.Module
    example_inputs: tuple[torch.Tensor, ...]

    @property
    def batch_size(self) -> int:
        return int(self.example_inputs[0].shape[0])


def list_spaces() -> list[str]:
    """Registered space names, sorted."""
    return sorted(_SPACES)


def describe_space(space: str) -> str:
    """One-line description of ``space`` (for CLI help)."""
    return _SPACES.lookup(space).description


def parse(spec: str) -> ArchSpec:
    """Validate ``<space>:<arch>`` and return the typed architecture."""
    if not isinstance(spec, str):
        raise ModelImportError(f"architecture spec must be a string, got {type(spec).__name__}")
    space, sep, arch_text = spec.strip().partition(":")
    if not sep:
        raise ModelImportError(
            f"architecture spec {spec!r} has no '<space>:' prefix; spaces: {', '.join(list_spaces())}"
        )
    entry = _SPACES.lookup(space.strip().lower())
    return ArchSpec(space.strip().lower(), entry.parse_arch(arch_text))


def build(spec: str | ArchSpec, *, batch_size: int = 1) -> SpaceModel:
    """Build the network of ``spec`` (eval mode) with a ``batch_size`` example input.

    Weights are randomly initialised from a fixed seed (latency does not depend
    on them) without touching the global RNG state.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ModelImportError(f"batch_size must be a positive int, got {batch_size!r}")
    parsed = spec if isinstance(spec, ArchSpec) else parse(spec)
    entry = _SPACES.lookup(parsed.space)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_INPUT_SEED)
        module = entry.build_module(parsed.arch).eval()
        example = torch.randn(batch_size, *entry.input_shape(parsed.arch))
    name = parsed.canonical
    logger.debug("built %s (batch %d)", name, batch_size)
    return SpaceModel(name=name, space=parsed.space, arch=parsed.arch, module=module, example_inputs=(example,))
