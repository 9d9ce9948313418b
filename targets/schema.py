"""Target descriptors: what a latency measurement ran on, as validated, hashable data.

A target is one *device setting*: hardware + runtime + precision + batch size +
threads (+ the TVM target for TVM-compiled settings). Descriptors are written
as YAML (schema below), validated strictly, and turned into the two inputs the
cost model conditions on: a hardware prompt (:meth:`TargetDescriptor.to_text`)
and a normalized numeric vector with a missing-value mask
(:meth:`TargetDescriptor.to_features`). :meth:`TargetDescriptor.content_hash`
keys the measurement database.

Unknown specs are ``null``; a descriptor never carries a guessed value. Units
are in the field names (``clock_ghz``, ``bandwidth_gbps``, ``tdp_w``...).

Schema, version 1 (``*`` = key required; ``!`` = value must not be null)::

    schema_version*!  1
    name*!            lower-case slug: [a-z0-9.-], e.g. "gtx1080ti-pytorch-fp32-b1"
    aliases           list of "<dataset>:<upstream name>", e.g. ["help:1080ti_1"]
    device_class*!    one of DEVICE_CLASSES
    vendor, model*!, soc, microarchitecture     free text
    compute_units     CPU cores / GPU SMs or CUs / accelerator cores (int)
    shading_units     GPU CUDA cores / shader ALUs (int)
    hw_threads        CPU hardware threads (int)
    core_config       free text, e.g. "1x2.84 GHz A76 + 3x2.42 GHz A76 + 4x1.8 GHz A55"
    clock_ghz         maximum (boost/turbo) clock; base_clock_ghz: base clock
    peak_tops         {precision: tera-ops/s}; keys in PEAK_KEYS (FLOP/s for floats)
    memory            {type, size_gb, bandwidth_gbps, bus_width_bits}
    cache             {l1d_kib_per_unit, l2_kib_total, l3_kib_total}
    tdp_w             thermal design power
    runtime*          one of RUNTIMES or null; runtime_version (string),
                      runtime_backend (free text: "cuda", "gpu-delegate", ...)
    precision*        one of PRECISIONS or null
    batch_size*       int >= 1 or null
    threads           int >= 1 (intra-op threads the runtime was given)
    tvm               {target*: {kind*: ..., ...}, tuned*: bool, tuner: one of TVM_TUNERS}
                      required iff runtime == "tvm"
    notes             free text (caveats, provenance)
    sources           list of citations, one per line
    derived           field paths whose values are computed rather than read off a spec sheet
                      (``peak_tops.<key>``, ``memory.bandwidth_gbps``): cores x clock x operations
                      per cycle from ``targets/microarchitectures.yaml``, or memory transfer rate x
                      bus width; the notes say which inputs were used (``targets.peaks``)

Field checks live in :mod:`targets.validation`, the prompt's wording in
:mod:`targets.prompt`; this module holds the descriptor itself.

Peak compute and memory bandwidth feed the latency model's roofline bound; use
:meth:`TargetDescriptor.peak_flops_per_s` and
:meth:`TargetDescriptor.memory_bandwidth_bytes_per_s` rather than reading the fields.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import yaml

from targets.prompt import hardware_prompt
from targets.validation import (
    DERIVABLE_FIELDS,
    DEVICE_CLASSES,
    PEAK_KEYS,
    PRECISIONS,
    RUNTIMES,
    SCHEMA_VERSION,
    TVM_TUNERS,
    check_descriptor,
    thaw,
)

#: Floats with an exponent and no dot (``1.5e9``, ``2e9``, ``1e-3``): YAML 1.2 numbers that PyYAML's
#: YAML 1.1 rules read as strings. Datasheet figures are written that way, so target files read them
#: as numbers (``targets.registry``) and ``to_yaml`` quotes strings that look like them.
YAML_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")
YAML_EXPONENT_FLOAT_FIRST = list("-+0123456789.")


class _Dumper(yaml.SafeDumper):
    """SafeDumper that quotes strings the target-file loader would read as numbers."""


_Dumper.add_implicit_resolver("tag:yaml.org,2002:float", YAML_EXPONENT_FLOAT, YAML_EXPONENT_FLOAT_FIRST)

__all__ = [
    "SCHEMA_VERSION",
    "DEVICE_CLASSES",
    "PRECISIONS",
    "RUNTIMES",
    "PEAK_KEYS",
    "TVM_TUNERS",
    "FEATURE_NAMES",
    "DERIVABLE_FIELDS",
    "Memory",
    "Cache",
    "TvmConfig",
    "TargetDescriptor",
]

# Fields that document a descriptor but do not change what was measured; they are
# left out of content_hash() so fixing a typo in a note keeps database keys valid.
_UNHASHED_FIELDS = ("aliases", "notes", "sources", "derived")


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Memory:
    """Main (device) memory; ``size_gb`` as the vendor quotes it."""

    type: str | None = None
    size_gb: float | None = None
    bandwidth_gbps: float | None = None
    bus_width_bits: int | None = None


@dataclass(frozen=True)
class Cache:
    """Cache sizes: L1 data per compute unit, L2 and L3 summed over the chip."""

    l1d_kib_per_unit: float | None = None
    l2_kib_total: float | None = None
    l3_kib_total: float | None = None


@dataclass(frozen=True)
class TvmConfig:
    """How a TVM-compiled target was built: the ``tvm.target.Target`` dict and tuning."""

    target: Mapping[str, Any]
    tuned: bool
    tuner: str | None = None


@dataclass(frozen=True)
class TargetDescriptor:
    """One validated device setting. Build with :meth:`from_dict` (or ``targets.registry.load``)."""

    name: str
    device_class: str
    model: str
    runtime: str | None
    precision: str | None
    batch_size: int | None
    aliases: tuple[str, ...] = ()
    vendor: str | None = None
    soc: str | None = None
    microarchitecture: str | None = None
    compute_units: int | None = None
    shading_units: int | None = None
    hw_threads: int | None = None
    core_config: str | None = None
    clock_ghz: float | None = None
    base_clock_ghz: float | None = None
    peak_tops: Mapping[str, float | None] = field(default_factory=lambda: MappingProxyType({}))
    memory: Memory = field(default_factory=Memory)
    cache: Cache = field(default_factory=Cache)
    tdp_w: float | None = None
    runtime_version: str | None = None
    runtime_backend: str | None = None
    threads: int | None = None
    tvm: TvmConfig | None = None
    notes: str | None = None
    sources: tuple[str, ...] = ()
    derived: tuple[str, ...] = ()
    schema_version: int = SCHEMA_VERSION

    # -- construction / serialization ------------------------------------------------

    @classmethod
    def from_dict(cls, data: Any, origin: str = "<dict>") -> "TargetDescriptor":
        """Validate a parsed YAML/JSON mapping; errors name ``origin`` and the field."""
        return _parse(data, origin)

    def to_dict(self) -> dict[str, Any]:
        """Canonical plain-data form (every field, nulls included); round-trips via from_dict."""
        d: dict[str, Any] = {
            "schema_version": self.schema_version,
            "name": self.name,
            "aliases": list(self.aliases),
            "device_class": self.device_class,
            "vendor": self.vendor,
            "model": self.model,
            "soc": self.soc,
            "microarchitecture": self.microarchitecture,
            "compute_units": self.compute_units,
            "shading_units": self.shading_units,
            "hw_threads": self.hw_threads,
            "core_config": self.core_config,
            "clock_ghz": self.clock_ghz,
            "base_clock_ghz": self.base_clock_ghz,
            "peak_tops": {k: self.peak_tops[k] for k in PEAK_KEYS if k in self.peak_tops},
            "memory": dataclasses.asdict(self.memory),
            "cache": dataclasses.asdict(self.cache),
            "tdp_w": self.tdp_w,
            "runtime": self.runtime,
            "runtime_version": self.runtime_version,
            "runtime_backend": self.runtime_backend,
            "precision": self.precision,
            "batch_size": self.batch_size,
            "threads": self.threads,
            "tvm": None,
            "notes": self.notes,
            "sources": list(self.sources),
            "derived": list(self.derived),
        }
        if self.tvm is not None:
            d["tvm"] = {
                "target": {k: thaw(v) for k, v in sorted(self.tvm.target.items())},
                "tuned": self.tvm.tuned,
                "tuner": self.tvm.tuner,
            }
        return d

    def to_yaml(self) -> str:
        """YAML text of :meth:`to_dict`, loadable again by ``targets.registry.load``."""
        return yaml.dump(self.to_dict(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)

    def content_hash(self) -> str:
        """SHA-256 of the canonical JSON of everything that defines the setting.

        ``aliases``, ``notes``, ``sources`` and ``derived`` are excluded: they document
        the descriptor without changing what was measured. Computed once per descriptor (it is frozen):
        predictors look targets up by hash for every row they predict.
        """
        cached = self.__dict__.get("_content_hash")
        if cached is None:
            d = self.to_dict()
            for key in _UNHASHED_FIELDS:
                del d[key]
            blob = json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
            cached = hashlib.sha256(blob.encode("ascii")).hexdigest()
            object.__setattr__(self, "_content_hash", cached)
        return cached

    def __hash__(self) -> int:
        return hash(self.content_hash())

    # -- roofline inputs ---------------------------------------------------------------

    def peak_flops_per_s(self) -> float | None:
        """Peak operations per second at the descriptor's precision (fp32 when it is null); None if unknown.

        ``fp16`` reads ``peak_tops.fp16``, the vector (non-tensor-core) rate, never
        ``fp16_tensor``: no shipped setting states that its runtime used tensor cores, and for
        kernels that do not use them a tensor-core peak makes the compute bound an order of
        magnitude too optimistic. The learned efficiency absorbs the rest.
        """
        value = self.peak_tops.get(self.precision or "fp32")
        return None if value is None else value * 1e12

    def memory_bandwidth_bytes_per_s(self) -> float | None:
        """Main-memory bandwidth in bytes per second; None if unknown."""
        bw = self.memory.bandwidth_gbps
        return None if bw is None else bw * 1e9

    def refines(self, other: "TargetDescriptor") -> bool:
        """True when ``self`` is ``other`` with some of its unknown (null or absent) specs filled in.

        Every hashed field known in ``other`` must be equal in ``self``; documentation
        fields (notes, sources, aliases, derived) are ignored. Used to read measurements
        stored under an older, less complete descriptor of the same setting.
        """
        mine, theirs = _hashed_leaves(self), _hashed_leaves(other)
        return all(value is None or mine.get(path) == value for path, value in theirs.items())

    # -- model inputs ------------------------------------------------------------------

    def to_text(self) -> str:
        """Deterministic hardware prompt (LeDG-Former style); known specs only, nulls skipped.

        Example: ``desktop GPU NVIDIA GeForce GTX 1080 Ti, Pascal (GP102), 28 compute units,
        3584 shading units, 1.582 GHz, 11.34 TFLOP/s fp32, 11 GB GDDR5X at 484 GB/s,
        L2 2.75 MiB, TDP 250 W; PyTorch (cuda), fp32, batch 1``.
        """
        return hardware_prompt(self)

    def to_features(self) -> tuple[list[float], list[float]]:
        """``(values, mask)`` aligned with :data:`FEATURE_NAMES`; ``mask[i] == 1`` iff known.

        Normalization (documented so checkpoints stay interpretable):

        * numeric specs ``x`` with reference range ``[lo, hi]`` (see ``_LOG_FEATURES``):
          ``(log10(max(x, lo)) - log10(lo)) / (log10(hi) - log10(lo))``: 0 at ``lo``
          (and below, so 0 is allowed), 1 at ``hi``, growing past 1 above ``hi``;
        * ``peak_fp16`` uses the larger of ``peak_tops.fp16`` and ``peak_tops.fp16_tensor``;
        * one-hot groups (device class, precision, runtime family): mask 1 for the
          whole group when the field is known, else values and mask are all 0;
        * ``tvm_tuned``: 1.0 / 0.0, known only for TVM targets.

        Unknown values are 0.0 with mask 0.0.
        """
        values: list[float] = []
        mask: list[float] = []
        for _, getter, lo, hi in _LOG_FEATURES:
            x = getter(self)
            if x is None:
                values.append(0.0)
                mask.append(0.0)
            else:
                values.append((math.log10(max(float(x), lo)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)))
                mask.append(1.0)
        for vocab, value in (
            (DEVICE_CLASSES, self.device_class),
            (PRECISIONS, self.precision),
            (RUNTIMES, self.runtime),
        ):
            known = 1.0 if value is not None else 0.0
            values.extend(1.0 if v == value else 0.0 for v in vocab)
            mask.extend(known for _ in vocab)
        values.append(1.0 if self.tvm is not None and self.tvm.tuned else 0.0)
        mask.append(1.0 if self.tvm is not None else 0.0)
        return values, mask


def _hashed_leaves(desc: TargetDescriptor) -> dict[str, Any]:
    """``{"memory.bandwidth_gbps": 484.0, ...}``: the hashed fields flattened to dotted paths."""
    d = desc.to_dict()
    for key in _UNHASHED_FIELDS:
        del d[key]
    leaves: dict[str, Any] = {}

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict) and path != "tvm.target":
            for k, v in value.items():
                walk(v, f"{path}.{k}" if path else k)
        else:
            leaves[path] = value

    walk(d, "")
    return leaves


def _peak_fp16(d: TargetDescriptor) -> float | None:
    known = [v for v in (d.peak_tops.get("fp16"), d.peak_tops.get("fp16_tensor")) if v is not None]
    return max(known) if known else None


# (feature name, getter, lo, hi): log-scaled to [0, 1] over [lo, hi]; see to_features().
_LOG_FEATURES: tuple[tuple[str, Callable[[TargetDescriptor], float | None], float, float], ...] = (
    ("log_compute_units", lambda d: d.compute_units, 1.0, 256.0),
    ("log_shading_units", lambda d: d.shading_units, 1.0, 32768.0),
    ("log_hw_threads", lambda d: d.hw_threads, 1.0, 512.0),
    ("log_clock_ghz", lambda d: d.clock_ghz, 0.1, 6.0),
    ("log_peak_fp32_tops", lambda d: d.peak_tops.get("fp32"), 1e-3, 1e3),
    ("log_peak_fp16_tops", _peak_fp16, 1e-3, 1e3),
    ("log_peak_int8_tops", lambda d: d.peak_tops.get("int8"), 1e-3, 4e3),
    ("log_memory_size_gb", lambda d: d.memory.size_gb, 0.1, 2048.0),
    ("log_memory_bandwidth_gbps", lambda d: d.memory.bandwidth_gbps, 1.0, 1e4),
    ("log_l1d_kib_per_unit", lambda d: d.cache.l1d_kib_per_unit, 8.0, 512.0),
    ("log_l2_kib_total", lambda d: d.cache.l2_kib_total, 16.0, 131072.0),
    ("log_l3_kib_total", lambda d: d.cache.l3_kib_total, 256.0, 1048576.0),
    ("log_tdp_w", lambda d: d.tdp_w, 0.1, 1000.0),
    ("log_batch_size", lambda d: d.batch_size, 1.0, 1024.0),
    ("log_threads", lambda d: d.threads, 1.0, 256.0),
)

FEATURE_NAMES: tuple[str, ...] = (
    tuple(name for name, *_ in _LOG_FEATURES)
    + tuple(f"device_class={c}" for c in DEVICE_CLASSES)
    + tuple(f"precision={p}" for p in PRECISIONS)
    + tuple(f"runtime={r}" for r in RUNTIMES)
    + ("tvm_tuned",)
)


def _parse(data: Any, origin: str) -> TargetDescriptor:
    d = check_descriptor(data, origin)
    tvm_raw = d.get("tvm")
    tvm = None if tvm_raw is None else TvmConfig(target=tvm_raw["target"], tuned=tvm_raw["tuned"],
                                                 tuner=tvm_raw.get("tuner"))
    return TargetDescriptor(
        schema_version=d["schema_version"],
        name=d["name"],
        aliases=tuple(d.get("aliases") or ()),
        device_class=d["device_class"],
        vendor=d.get("vendor"),
        model=d["model"],
        soc=d.get("soc"),
        microarchitecture=d.get("microarchitecture"),
        compute_units=d.get("compute_units"),
        shading_units=d.get("shading_units"),
        hw_threads=d.get("hw_threads"),
        core_config=d.get("core_config"),
        clock_ghz=d.get("clock_ghz"),
        base_clock_ghz=d.get("base_clock_ghz"),
        peak_tops=d.get("peak_tops") or MappingProxyType({}),
        memory=Memory(**(d.get("memory") or {})),
        cache=Cache(**(d.get("cache") or {})),
        tdp_w=d.get("tdp_w"),
        runtime=d["runtime"],
        runtime_version=d.get("runtime_version"),
        runtime_backend=d.get("runtime_backend"),
        precision=d["precision"],
        batch_size=d["batch_size"],
        threads=d.get("threads"),
        tvm=tvm,
        notes=d.get("notes"),
        sources=tuple(d.get("sources") or ()),
        derived=tuple(d.get("derived") or ()),
    )
