"""Peak compute and memory bandwidth where no spec sheet gives them, and what a descriptor lacks.

The latency model bounds each kernel by a roofline, ``max(work / peak, bytes / bandwidth)``,
so every target needs a peak for its precision and a memory bandwidth. Vendors publish
them for GPUs and accelerators; for CPUs and phone SoCs they are derived here:

* peak (TOP/s) = sum over core clusters of cores x clock (GHz) x operations per cycle per
  core, the last from the cited table ``targets/microarchitectures.yaml`` (heterogeneous
  phone SoCs: one cluster per ``core_config`` group);
* bandwidth (GB/s) = transfer rate (MT/s) x bus width (bits) / 8 / 1000, e.g.
  LPDDR4X-4266 on a 64-bit bus = 34.13 GB/s.

Descriptors store such values and list their paths under ``derived``, so a reader can tell
them from spec-sheet numbers. :func:`roofline_gaps` says what a descriptor still lacks.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import yaml

from targets.errors import TargetError
from targets.schema import TargetDescriptor

__all__ = [
    "MICROARCHITECTURE_TABLE",
    "Microarchitecture",
    "Cluster",
    "load_microarchitectures",
    "derived_peak_tops",
    "dram_bandwidth_gbps",
    "roofline_gaps",
]

MICROARCHITECTURE_TABLE = Path(__file__).resolve().parent / "microarchitectures.yaml"
_TABLE_PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class Microarchitecture:
    """One row of the table: peak operations per cycle per core, per precision (None = no cited figure)."""

    name: str
    description: str
    ops_per_cycle: Mapping[str, float | None]
    sources: tuple[str, ...]


@dataclass(frozen=True)
class Cluster:
    """``cores`` cores of one microarchitecture running at ``clock_ghz``."""

    microarchitecture: str
    cores: int
    clock_ghz: float


@functools.lru_cache(maxsize=4)
def load_microarchitectures(path: Path = MICROARCHITECTURE_TABLE) -> Mapping[str, Microarchitecture]:
    """The validated table; errors name the file and the row."""
    origin = str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TargetError(f"{origin}: cannot read the microarchitecture table: {exc}") from None
    rows = data.get("microarchitectures") if isinstance(data, dict) else None
    if data.get("schema_version") != 1 or not isinstance(rows, dict) or not rows:
        raise TargetError(f"{origin}: expected schema_version: 1 and a non-empty 'microarchitectures' mapping")
    table: dict[str, Microarchitecture] = {}
    for name, row in rows.items():
        where = f"{origin}: microarchitectures.{name}"
        ops = row.get("ops_per_cycle") if isinstance(row, dict) else None
        if not isinstance(ops, dict) or set(ops) != set(_TABLE_PRECISIONS):
            raise TargetError(f"{where}.ops_per_cycle: expected keys {', '.join(_TABLE_PRECISIONS)}")
        for key, value in ops.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise TargetError(f"{where}.ops_per_cycle.{key}: expected a positive number or null, got {value!r}")
        sources = row.get("sources")
        if not isinstance(sources, list) or not sources or not all(isinstance(s, str) and s for s in sources):
            raise TargetError(f"{where}.sources: every row needs at least one citation")
        table[name] = Microarchitecture(name, str(row.get("description") or ""),
                                        MappingProxyType({k: None if v is None else float(v) for k, v in ops.items()}),
                                        tuple(sources))
    return MappingProxyType(table)


def derived_peak_tops(clusters: Iterable[Cluster], precision: str,
                      table: Mapping[str, Microarchitecture] | None = None) -> float:
    """Sum over clusters of cores x clock x ops/cycle, in TOP/s (TFLOP/s for floats)."""
    table = load_microarchitectures() if table is None else table
    total = 0.0
    for cluster in clusters:
        row = table.get(cluster.microarchitecture)
        if row is None:
            raise TargetError(f"unknown microarchitecture {cluster.microarchitecture!r}; "
                              f"known: {', '.join(sorted(table))}")
        ops = row.ops_per_cycle.get(precision)
        if ops is None:
            raise TargetError(f"microarchitecture {row.name!r} has no cited {precision} operations per cycle")
        if cluster.cores < 1 or not cluster.clock_ghz > 0:
            raise TargetError(f"cluster {cluster}: cores must be >= 1 and clock_ghz > 0")
        total += cluster.cores * cluster.clock_ghz * 1e9 * ops
    if total == 0.0:
        raise TargetError("no clusters given")
    return total / 1e12


def dram_bandwidth_gbps(transfer_mt_s: float, bus_width_bits: int) -> float:
    """Peak DRAM bandwidth in GB/s from the transfer rate (MT/s) and the total bus width (bits)."""
    if not (math.isfinite(transfer_mt_s) and transfer_mt_s > 0) or bus_width_bits < 1:
        raise TargetError(f"transfer rate {transfer_mt_s!r} MT/s and bus width {bus_width_bits!r} bits must be positive")
    return transfer_mt_s * bus_width_bits / 8 / 1000


def roofline_gaps(desc: TargetDescriptor) -> list[str]:
    """What ``desc`` lacks for the latency model's roofline bound, one sentence each (empty when complete)."""
    precision = desc.precision or "fp32"
    fallback = "the latency model falls back on a learned estimate for this target"
    gaps = []
    if desc.peak_flops_per_s() is None:
        gaps.append(f"{desc.name}: no peak_tops.{precision} (peak compute at the target's "
                    f"{'precision' if desc.precision else 'assumed fp32 precision'}); {fallback}. Fill it from the "
                    "vendor's spec sheet, or derive it as cores x clock x operations per cycle "
                    "(targets/microarchitectures.yaml, targets.peaks.derived_peak_tops) and list "
                    f"'peak_tops.{precision}' under derived:")
    if desc.memory_bandwidth_bytes_per_s() is None:
        gaps.append(f"{desc.name}: no memory.bandwidth_gbps; {fallback}. Fill it from the spec sheet, or derive "
                    "it as transfer rate x bus width (targets.peaks.dram_bandwidth_gbps, e.g. LPDDR4X-4266 on "
                    "64 bits = 34.13 GB/s) and list 'memory.bandwidth_gbps' under derived:")
    return gaps
