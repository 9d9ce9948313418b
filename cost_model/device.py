"""Which torch device a model trains and predicts on: "auto", "cpu", "cuda" or "cuda:N".

"auto" takes CUDA when ``torch.cuda.is_available()`` and the CPU otherwise, so
nothing depends on a GPU being present. Under ``torchrun`` a CUDA choice
without an index means this process's GPU, ``cuda:$LOCAL_RANK``.
"""

from __future__ import annotations

import os

import torch

from targets.errors import ArgumentError

__all__ = ["DEVICE_CHOICES", "resolve_device"]

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


def resolve_device(spec: str, option: str = "device") -> torch.device:
    """The device ``spec`` names; ``option`` (the setting or flag it came from) is named in errors."""
    if not isinstance(spec, str):
        raise ArgumentError(f"{option}: expected {DEVICE_CHOICES}, got {spec!r}")
    name = spec.strip().lower()
    if name == "cpu":
        return torch.device("cpu")
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        name = "cuda"
    kind, _, index = name.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise ArgumentError(f"{option}: expected {DEVICE_CHOICES}, got {spec!r}")
    if not torch.cuda.is_available():
        raise ArgumentError(f"{option} {spec!r}: CUDA is not available here (choose cpu or auto)")
    number = int(index) if index else int(os.environ.get("LOCAL_RANK", "0"))
    if number >= torch.cuda.device_count():
        raise ArgumentError(f"{option} {spec!r}: only {torch.cuda.device_count()} CUDA device(s) here")
    return torch.device("cuda", number)
