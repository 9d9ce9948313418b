"""Program-level training data: measured MetaSchedule schedules as (workload, target, program graph, run time).

``benchmarks/tuning_records.py`` tunes the workload suite with MetaSchedule and
exports every successful measurement as one :class:`ProgramRecord`: the program
DAG of the scheduled PrimFunc (``tvm_ledg.tuning.program_graph``) and the
measured run times. The file is gzip-compressed JSON lines, one record per
line and an end record with their count (a cut file is refused), so it is
committed compactly and read here without TVM (the program-level checkpoint
trains where TVM is not installed).

``training_rows`` turns records into ``LatencyPredictor.fit`` inputs: graphs
keyed by content hash and ``(graph key, target, mean latency ms)`` rows.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cost_model.graph import OpGraph
from cost_model.io import write_bytes_atomic
from targets.errors import DataError, GraphError

__all__ = ["ProgramRecord", "TUNING_RECORDS_FORMAT_VERSION", "write_tuning_records", "read_tuning_records",
           "training_rows"]

TUNING_RECORDS_FORMAT_VERSION = 1


@dataclass(frozen=True)
class ProgramRecord:
    """One measured schedule: ``run_secs`` are the runner's repeats (seconds, all > 0)."""

    workload: str
    target: str
    graph: OpGraph
    run_secs: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.run_secs or not all(math.isfinite(s) and s > 0 for s in self.run_secs):
            raise DataError(f"record of {self.workload!r} on {self.target!r}: run_secs must be finite and "
                            f"positive, got {list(self.run_secs)}")

    @property
    def mean_run_secs(self) -> float:
        return sum(self.run_secs) / len(self.run_secs)

    def to_json(self) -> dict[str, Any]:
        return {"format_version": TUNING_RECORDS_FORMAT_VERSION, "workload": self.workload, "target": self.target,
                "mean_run_secs": self.mean_run_secs, "run_secs": list(self.run_secs), "graph": self.graph.to_json()}

    @classmethod
    def from_json(cls, d: Mapping[str, Any], *, source: str = "<json>") -> "ProgramRecord":
        if d.get("format_version") != TUNING_RECORDS_FORMAT_VERSION:
            raise DataError(f"{source}: tuning-record format_version {d.get('format_version')!r}, "
                            f"this tvm-ledg reads {TUNING_RECORDS_FORMAT_VERSION}")
        try:
            return cls(workload=str(d["workload"]), target=str(d["target"]),
                       graph=OpGraph.from_json(d["graph"], source=source),
                       run_secs=tuple(float(s) for s in d["run_secs"]))
        except (KeyError, TypeError, ValueError, GraphError) as exc:
            raise DataError(f"{source}: malformed tuning record ({exc})") from exc


def write_tuning_records(path: str | os.PathLike[str], records: Iterable[ProgramRecord]) -> int:
    """Write ``records`` as gzip JSON lines closed by an end record with their count (so a file cut short is
    refused when read, not taken for a smaller one), atomically (a crash leaves the old file); returns the
    count."""
    buffer = io.BytesIO()
    count = 0
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9, mtime=0) as f:
        for record in records:
            f.write((json.dumps(record.to_json(), separators=(",", ":"), sort_keys=True) + "\n").encode())
            count += 1
        f.write((json.dumps({"kind": "end", "records": count}, separators=(",", ":")) + "\n").encode())
    write_bytes_atomic(Path(path), buffer.getvalue())
    return count


def read_tuning_records(path: str | os.PathLike[str]) -> list[ProgramRecord]:
    """All records of a file ``write_tuning_records`` wrote; errors name the file and line."""
    path = Path(path)
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError as exc:
        raise DataError(f"{path}: no such tuning-records file (benchmarks/tuning_records.py writes it)") from exc
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: not a gzip JSON-lines file ({exc})") from exc
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            payload = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}: invalid JSON ({exc})") from exc
        if isinstance(payload, dict) and payload.get("kind") == "end":
            if any(rest.strip() for rest in lines[number:]):
                raise DataError(f"{path}:{number}: lines after the end record")
            if payload.get("records") != len(records):
                raise DataError(f"{path}:{number}: the end record counts {payload.get('records')!r} records, the "
                                f"file holds {len(records)} (a damaged or edited file)")
            return records
        records.append(ProgramRecord.from_json(payload, source=f"{path}:{number}"))
    raise DataError(f"{path}: ends at line {len(lines)} without its end record: the file was cut short, or written "
                    "by a tvm-ledg whose tuning-record files had none (write it again: benchmarks/tuning_records.py)")


def training_rows(records: Sequence[ProgramRecord]) -> tuple[dict[str, OpGraph], list[tuple[str, str, float]]]:
    """Graphs by content hash and ``(graph key, target, mean latency ms)`` rows for ``LatencyPredictor.fit``."""
    graphs: dict[str, OpGraph] = {}
    rows = []
    for record in records:
        key = record.graph.content_hash()
        graphs[key] = record.graph
        rows.append((key, record.target, record.mean_run_secs * 1e3))
    return graphs, rows
