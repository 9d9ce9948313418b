"""Checking a target descriptor mapping: the schema's vocabularies, one checker per field, the rules between fields.

Kept apart from :mod:`targets.schema` (the descriptor class, its text and
features) so that the strict validation reads as one table (``_TOP_SPEC``) and
its small checkers. Errors are :class:`~targets.errors.TargetError` naming the
file (``origin``) and the field path, e.g. ``my.yaml: field 'memory.size_gb':
expected a number > 0, got -1``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from targets.errors import TargetError

__all__ = [
    "SCHEMA_VERSION",
    "DEVICE_CLASSES",
    "PRECISIONS",
    "RUNTIMES",
    "PEAK_KEYS",
    "TVM_TUNERS",
    "DERIVABLE_FIELDS",
    "check_descriptor",
    "freeze",
    "thaw",
]

SCHEMA_VERSION = 1

DEVICE_CLASSES: tuple[str, ...] = (
    "server-cpu",
    "desktop-cpu",
    "embedded-cpu",
    "mobile-cpu",
    "server-gpu",
    "desktop-gpu",
    "embedded-gpu",
    "mobile-gpu",
    "dsp",
    "npu",
    "tpu",
    "vpu",
    "fpga",
    "asic",
)
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "bf16", "int8")
RUNTIMES: tuple[str, ...] = (
    "pytorch",
    "tensorflow",
    "tflite",
    "tensorrt",
    "openvino",
    "snpe",
    "onnxruntime",
    "tvm",
    "other",
)
PEAK_KEYS: tuple[str, ...] = ("fp64", "fp32", "fp16", "fp16_tensor", "bf16", "int8", "int4")
TVM_TUNERS: tuple[str, ...] = ("metaschedule", "autotvm", "ansor")

_NAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?")
_ALIAS_RE = re.compile(r"[a-z0-9][a-z0-9_.-]*:[A-Za-z0-9][A-Za-z0-9_.-]*")

#: Field paths a descriptor may list under ``derived``: the roofline inputs.
DERIVABLE_FIELDS: tuple[str, ...] = tuple(f"peak_tops.{k}" for k in PEAK_KEYS) + ("memory.bandwidth_gbps",)


def freeze(v: Any) -> Any:
    """A YAML list as a tuple, so a checked descriptor is immutable and hashable."""
    return tuple(v) if isinstance(v, list) else v


def thaw(v: Any) -> Any:
    """A frozen tuple back as a list, for YAML, JSON and text."""
    return list(v) if isinstance(v, tuple) else v


def _fail(origin: str, path: str, msg: str) -> TargetError:
    return TargetError(f"{origin}: field '{path}': {msg}")


def _got(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})" if not isinstance(value, str) else repr(value)


Checker = Callable[[Any, str, str], Any]


def _string(value: Any, path: str, origin: str) -> str:
    if not isinstance(value, str) or not value.strip():
        hint = " (quote version numbers in YAML, e.g. '2.1')" if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
        raise _fail(origin, path, f"expected a non-empty string{hint}, got {_got(value)}")
    return value.strip()


def _number(minimum: float, strict: bool) -> Checker:
    def check(value: Any, path: str, origin: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(origin, path, f"expected a number, got {_got(value)}")
        if not math.isfinite(value):
            raise _fail(origin, path, f"expected a finite number, got {value!r}")
        if value < minimum or (strict and value == minimum):
            raise _fail(origin, path, f"expected a number {'>' if strict else '>='} {minimum:g}, got {value!r}")
        return float(value)

    return check


def _integer(minimum: int) -> Checker:
    def check(value: Any, path: str, origin: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(origin, path, f"expected an integer, got {_got(value)}")
        if value < minimum:
            raise _fail(origin, path, f"expected an integer >= {minimum}, got {value!r}")
        return value

    return check


def _enum(choices: tuple[str, ...]) -> Checker:
    def check(value: Any, path: str, origin: str) -> str:
        if value not in choices:
            raise _fail(origin, path, f"expected one of {', '.join(choices)}; got {_got(value)}")
        return value

    return check


def _boolean(value: Any, path: str, origin: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(origin, path, f"expected true or false, got {_got(value)}")
    return value


def _pattern(regex: re.Pattern[str], what: str) -> Checker:
    def check(value: Any, path: str, origin: str) -> str:
        value = _string(value, path, origin)
        if not regex.fullmatch(value):
            raise _fail(origin, path, f"expected {what}, got {value!r}")
        return value

    return check


def _string_list(item: Checker) -> Checker:
    def check(value: Any, path: str, origin: str) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise _fail(origin, path, f"expected a list, got {_got(value)}")
        items = tuple(item(v, f"{path}[{i}]", origin) for i, v in enumerate(value))
        for i, v in enumerate(items):
            if v in items[:i]:
                raise _fail(origin, f"{path}[{i}]", f"duplicate entry {v!r}")
        return items

    return check


def _peak_tops(value: Any, path: str, origin: str) -> Mapping[str, float | None]:
    if not isinstance(value, dict):
        raise _fail(origin, path, f"expected a mapping of precision to TOP/s, got {_got(value)}")
    out: dict[str, float | None] = {}
    for key, v in value.items():
        if key not in PEAK_KEYS:
            raise _fail(origin, f"{path}.{key}", f"unknown precision; expected one of {', '.join(PEAK_KEYS)}")
        out[key] = None if v is None else _number(0.0, strict=True)(v, f"{path}.{key}", origin)
    return MappingProxyType(out)


def _tvm_target(value: Any, path: str, origin: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _fail(origin, path, f"expected a mapping like {{kind: llvm, mcpu: znver3}}, got {_got(value)}")
    if "kind" not in value:
        raise _fail(origin, f"{path}.kind", "missing required field")
    _string(value["kind"], f"{path}.kind", origin)
    out: dict[str, Any] = {}
    for key, v in value.items():
        if not isinstance(key, str):
            raise _fail(origin, path, f"expected string keys, got {_got(key)}")
        scalars = (str, int, float, bool)
        if not isinstance(v, scalars) and not (isinstance(v, list) and all(isinstance(x, scalars) for x in v)):
            raise _fail(origin, f"{path}.{key}", f"expected a scalar or a list of scalars, got {_got(v)}")
        out[key] = freeze(v)
    return MappingProxyType(out)


# key -> (checker, required key, value may be null)
Spec = dict[str, tuple[Checker, bool, bool]]

_MEMORY_SPEC: Spec = {
    "type": (_string, False, True),
    "size_gb": (_number(0.0, strict=True), False, True),
    "bandwidth_gbps": (_number(0.0, strict=True), False, True),
    "bus_width_bits": (_integer(1), False, True),
}
_CACHE_SPEC: Spec = {
    "l1d_kib_per_unit": (_number(0.0, strict=False), False, True),
    "l2_kib_total": (_number(0.0, strict=False), False, True),
    "l3_kib_total": (_number(0.0, strict=False), False, True),
}
_TVM_SPEC: Spec = {
    "target": (_tvm_target, True, False),
    "tuned": (_boolean, True, False),
    "tuner": (_enum(TVM_TUNERS), False, True),
}


def _section(spec: Spec) -> Checker:
    def check(value: Any, path: str, origin: str) -> dict[str, Any]:
        return _check_mapping(value, spec, path, origin)

    return check


def _schema_version(value: Any, path: str, origin: str) -> int:
    value = _integer(1)(value, path, origin)
    if value != SCHEMA_VERSION:
        raise _fail(origin, path, f"unsupported schema version {value}; this tvm-ledg reads version {SCHEMA_VERSION}")
    return value


_TOP_SPEC: Spec = {
    "schema_version": (_schema_version, True, False),
    "name": (_pattern(_NAME_RE, "a lower-case name of [a-z0-9.-]"), True, False),
    "aliases": (_string_list(_pattern(_ALIAS_RE, "'<dataset>:<upstream name>'")), False, False),
    "device_class": (_enum(DEVICE_CLASSES), True, False),
    "vendor": (_string, False, True),
    "model": (_string, True, False),
    "soc": (_string, False, True),
    "microarchitecture": (_string, False, True),
    "compute_units": (_integer(1), False, True),
    "shading_units": (_integer(1), False, True),
    "hw_threads": (_integer(1), False, True),
    "core_config": (_string, False, True),
    "clock_ghz": (_number(0.0, strict=True), False, True),
    "base_clock_ghz": (_number(0.0, strict=True), False, True),
    "peak_tops": (_peak_tops, False, True),
    "memory": (_section(_MEMORY_SPEC), False, True),
    "cache": (_section(_CACHE_SPEC), False, True),
    "tdp_w": (_number(0.0, strict=True), False, True),
    "runtime": (_enum(RUNTIMES), True, True),
    "runtime_version": (_string, False, True),
    "runtime_backend": (_string, False, True),
    "precision": (_enum(PRECISIONS), True, True),
    "batch_size": (_integer(1), True, True),
    "threads": (_integer(1), False, True),
    "tvm": (_section(_TVM_SPEC), False, True),
    "notes": (_string, False, True),
    "sources": (_string_list(_string), False, False),
    "derived": (_string_list(_enum(DERIVABLE_FIELDS)), False, False),
}


def _check_mapping(data: Any, spec: Spec, path: str, origin: str) -> dict[str, Any]:
    where = path or "<top level>"
    if not isinstance(data, dict):
        raise _fail(origin, where, f"expected a mapping, got {_got(data)}")
    for key in data:
        if key not in spec:
            sub = f"{path}.{key}" if path else str(key)
            raise _fail(origin, sub, f"unknown field; allowed: {', '.join(spec)}")
    out: dict[str, Any] = {}
    for key, (check, required, nullable) in spec.items():
        sub = f"{path}.{key}" if path else key
        if key not in data:
            if required:
                raise _fail(origin, sub, "missing required field" + (" (write null if unknown)" if nullable else ""))
            continue
        value = data[key]
        if value is None:
            if not nullable:
                raise _fail(origin, sub, "must not be null")
            out[key] = None
        else:
            out[key] = check(value, sub, origin)
    return out


def check_descriptor(data: Any, origin: str) -> dict[str, Any]:
    """Every field of a descriptor mapping checked (types, ranges, vocabularies, required keys) and the rules
    between fields (the name is no alias; ``tvm`` iff runtime ``tvm``, its tuner and core count agree with the
    rest; derived fields have values; base clock <= clock); raises ``TargetError`` naming ``origin`` and the
    field."""
    d = _check_mapping(data, _TOP_SPEC, "", origin)
    name = d["name"]
    aliases = d.get("aliases") or ()
    if name in aliases:
        raise _fail(origin, "aliases", f"alias {name!r} repeats the name")
    runtime = d["runtime"]
    tvm_raw = d.get("tvm")
    if (runtime == "tvm") != (tvm_raw is not None):
        raise _fail(origin, "tvm", "required when runtime is tvm" if runtime == "tvm" else f"only allowed when runtime is tvm (runtime is {runtime!r})")
    if tvm_raw is not None:
        if not tvm_raw["tuned"] and tvm_raw.get("tuner") is not None:
            raise _fail(origin, "tvm.tuner", "must be null when tvm.tuned is false")
        cores = tvm_raw["target"].get("num-cores")
        if cores is not None and cores != d.get("threads"):
            raise _fail(origin, "tvm.target.num-cores", f"{cores!r} disagrees with threads={d.get('threads')!r}")
    for i, path in enumerate(d.get("derived") or ()):
        section, key = path.split(".")
        if (d.get(section) or {}).get(key) is None:
            raise _fail(origin, f"derived[{i}]", f"{path!r} is marked derived but has no value")
    base, boost = d.get("base_clock_ghz"), d.get("clock_ghz")
    if base is not None and boost is not None and base > boost:
        raise _fail(origin, "base_clock_ghz", f"{base:g} exceeds clock_ghz {boost:g} (clock_ghz is the maximum clock)")
    return d
