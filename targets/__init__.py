"""Hardware targets: one YAML descriptor per (device, runtime, precision, batch).

``targets.load(name_or_alias_or_path)`` returns a validated ``TargetDescriptor``;
``targets.list()`` names the shipped ones. A user target is just a YAML file
passed by path. ``targets.peaks`` derives peak compute and memory bandwidth where no
spec sheet gives them and lists what a descriptor lacks for the latency model's roofline.
This package imports neither torch nor TVM.
"""

from targets.errors import TargetError
from targets.registry import DESCRIPTOR_DIR, TargetRegistry, aliases, list_names, load, load_file, load_many, resolve
from targets.schema import (
    DEVICE_CLASSES,
    FEATURE_NAMES,
    PRECISIONS,
    RUNTIMES,
    SCHEMA_VERSION,
    TargetDescriptor,
)

list = list_names  # noqa: A001 - ``targets.list()`` is the documented spelling

__all__ = [
    "load",
    "list",
    "list_names",
    "resolve",
    "aliases",
    "load_file",
    "load_many",
    "TargetDescriptor",
    "TargetRegistry",
    "DESCRIPTOR_DIR",
    "FEATURE_NAMES",
    "DEVICE_CLASSES",
    "PRECISIONS",
    "RUNTIMES",
    "SCHEMA_VERSION",
    "TargetError",
]
