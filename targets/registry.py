"""Registry of target descriptors: the shipped YAMLs, looked up by name, alias or path.

``load("gtx1080ti-pytorch-fp32-b1")``, ``load("help:1080ti_1")`` (an upstream data
file's name) and ``load("my_board.yaml")`` all return a validated
:class:`~targets.schema.TargetDescriptor`. A user target is just a YAML file passed
by path; it does not need to be registered.
"""

from __future__ import annotations

import difflib
import functools
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from targets.errors import TargetError
from targets.schema import YAML_EXPONENT_FLOAT, YAML_EXPONENT_FLOAT_FIRST, TargetDescriptor

__all__ = ["DESCRIPTOR_DIR", "TargetRegistry", "load", "load_file", "load_many", "list_names", "resolve", "aliases"]

logger = logging.getLogger(__name__)

DESCRIPTOR_DIR = Path(__file__).resolve().parent / "descriptors"
_YAML_SUFFIXES = (".yaml", ".yml")


def _strict(base: type[yaml.SafeLoader]) -> type[yaml.SafeLoader]:
    """``base`` rejecting duplicate mapping keys (PyYAML silently keeps the last one) and reading
    ``1e3`` as a float (YAML 1.1 wants ``1.0e+3``)."""
    loader = type(f"Strict{base.__name__}", (base,), {})
    loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    loader.add_implicit_resolver("tag:yaml.org,2002:float", YAML_EXPONENT_FLOAT, YAML_EXPONENT_FLOAT_FIRST)
    return loader


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, f"found duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader = _strict(yaml.SafeLoader)
# The shipped descriptors are indexed by every cold `tvm-ledg predict`; libyaml's parser reads them
# about 10x faster. User files keep the pure-Python parser, whose recursion limit turns absurdly
# nested YAML into a clear error.
_ShippedLoader = _strict(getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def load_file(path: str | os.PathLike[str]) -> TargetDescriptor:
    """Read and validate one descriptor YAML; errors name the file (and the field)."""
    return _read_descriptor(path, _StrictLoader)


def _read_descriptor(path: str | os.PathLike[str], loader: type[yaml.SafeLoader]) -> TargetDescriptor:
    path = Path(path)
    origin = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TargetError(f"{origin}: no such target file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TargetError(f"{origin}: cannot read target file: {exc}") from None
    try:
        data = yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:  # PyYAML builds nested collections recursively
        raise TargetError(f"{origin}: invalid YAML: collections nested too deeply") from None
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" (line {mark.line + 1}, column {mark.column + 1})"
        problem = getattr(exc, "problem", None) or str(exc)
        raise TargetError(f"{origin}: invalid YAML{where}: {' '.join(str(problem).split())}") from None
    return TargetDescriptor.from_dict(data, origin=origin)


class TargetRegistry:
    """Descriptors of one directory (``*.yaml``), indexed by name and alias.

    Each file must be named ``<name>.yaml``; names and aliases must be unique
    across the directory. The directory is read once, on first use.
    """

    def __init__(self, directory: str | os.PathLike[str] = DESCRIPTOR_DIR) -> None:
        self.directory = Path(directory)
        self._by_name: dict[str, TargetDescriptor] | None = None
        self._alias_to_name: dict[str, str] = {}

    def _index(self) -> dict[str, TargetDescriptor]:
        if self._by_name is not None:
            return self._by_name
        if not self.directory.is_dir():
            raise TargetError(f"{self.directory}: target descriptor directory not found")
        by_name: dict[str, TargetDescriptor] = {}
        alias_to_name: dict[str, str] = {}
        owner: dict[str, str] = {}  # every name and alias -> the target that claims it
        for path in sorted(self.directory.glob("*.yaml")):
            desc = _read_descriptor(path, _ShippedLoader)
            if desc.name != path.stem:
                raise TargetError(f"{path}: field 'name': {desc.name!r} must match the file name {path.stem!r}")
            for key in (desc.name, *desc.aliases):
                if key in owner:
                    raise TargetError(f"{path}: {key!r} is already used by target {owner[key]!r}")
                owner[key] = desc.name
            by_name[desc.name] = desc
            alias_to_name.update((alias, desc.name) for alias in desc.aliases)
        logger.debug("indexed %d targets from %s", len(by_name), self.directory)
        self._by_name, self._alias_to_name = by_name, alias_to_name
        return by_name

    def list_names(self) -> list[str]:
        """Sorted names of the registered targets."""
        return sorted(self._index())

    def aliases(self) -> dict[str, str]:
        """Alias -> target name, sorted by alias."""
        self._index()
        return dict(sorted(self._alias_to_name.items()))

    def resolve(self, name_or_alias: str) -> str:
        """The target name for a name or alias; raises TargetError with close matches."""
        index = self._index()
        if name_or_alias in index:
            return name_or_alias
        if name_or_alias in self._alias_to_name:
            return self._alias_to_name[name_or_alias]
        known = [*index, *self._alias_to_name]
        close = difflib.get_close_matches(name_or_alias, known, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise TargetError(
            f"unknown target {name_or_alias!r}{hint} (list them with `tvm-ledg targets list`, "
            "or pass a path to a .yaml descriptor)"
        )

    def get(self, name_or_alias: str) -> TargetDescriptor:
        """The registered descriptor for a name or alias."""
        return self._index()[self.resolve(name_or_alias)]

    def all(self) -> list[TargetDescriptor]:
        """Every registered descriptor, sorted by name."""
        index = self._index()
        return [index[n] for n in sorted(index)]


def _is_path(ref: str | os.PathLike[str]) -> bool:
    if isinstance(ref, os.PathLike):
        return True
    return ref.endswith(_YAML_SUFFIXES) or "/" in ref or os.sep in ref


@functools.lru_cache(maxsize=1)
def _default() -> TargetRegistry:
    return TargetRegistry(DESCRIPTOR_DIR)


def load(name_or_path: str | os.PathLike[str]) -> TargetDescriptor:
    """A descriptor by registered name, alias (``"help:1080ti_1"``) or YAML path."""
    if _is_path(name_or_path):
        return load_file(name_or_path)
    return _default().get(name_or_path)


def load_many(refs: Iterable[str | os.PathLike[str] | TargetDescriptor]) -> list[TargetDescriptor]:
    """Descriptors of ``refs`` (names, aliases, YAML paths or descriptors) in order, each target once.

    Predictions and measurements are keyed by target name, so two different
    descriptors under one name would share one row and one would silently take
    over the other's (a user YAML copying a shipped target's ``name:``); that is
    refused, naming both references. The same target given twice (a name and
    its alias, or a YAML identical in content) is kept once.
    """
    seen: dict[str, tuple[str, TargetDescriptor]] = {}
    for ref in refs:
        desc = ref if isinstance(ref, TargetDescriptor) else load(ref)
        source = f"descriptor {desc.name!r}" if isinstance(ref, TargetDescriptor) else repr(str(ref))
        if desc.name not in seen:
            seen[desc.name] = (source, desc)
        elif seen[desc.name][1].content_hash() != desc.content_hash():
            raise TargetError(f"{seen[desc.name][0]} and {source} are different targets with the same name "
                              f"{desc.name!r}; give one of them another 'name:'")
    return [desc for _, desc in seen.values()]


def list_names() -> list[str]:
    """Sorted names of the shipped targets."""
    return _default().list_names()


def resolve(name_or_alias: str) -> str:
    """The shipped target name for a name or alias (e.g. ``"oneproxy:eagle_jetson"``)."""
    return _default().resolve(name_or_alias)


def aliases() -> dict[str, str]:
    """Alias -> shipped target name; the data loader maps upstream files with it."""
    return _default().aliases()
