"""Reading MetaSchedule's JSON tuning database back: program records and run times in measurement order.

A ``JSONDatabase`` work directory holds ``database_workload.json`` and
``database_tuning_record.json`` (one line per measured candidate, appended in
measurement order). ``database_records`` replays each successful record's trace
on its workload and returns the program DAG of the scheduled PrimFunc with the
measured run times (:class:`cost_model.tuning_records.ProgramRecord`), the
program-level training data. ``run_secs_in_order`` reads only the run times, in
the order they were measured: the tuning curve of that run. ``best_schedule``
keeps a run's fastest record as its two database lines (JSON-friendly, so a
report can store it), and ``schedule_record`` reads such lines back as a
tuning record, to time that schedule again later.

A candidate that failed to build or run is committed with no run times or with
MetaSchedule's sentinel (``1e10`` s); both count as failed here.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from cost_model.tuning_records import ProgramRecord
from targets.errors import DataError
from tvm_ledg._tvm import ms
from tvm_ledg.tuning.program import program_graph

__all__ = ["database_records", "run_secs_in_order", "mean_run_secs", "best_schedule", "schedule_record",
           "FAILED_RUN_SECS"]

RECORDS_FILE = "database_tuning_record.json"
WORKLOADS_FILE = "database_workload.json"

FAILED_RUN_SECS = 1e9
"""Run times at or above this many seconds are MetaSchedule's failure sentinel, not measurements."""


def mean_run_secs(run_secs: object) -> float | None:
    """Mean of measured run times; None for a failed candidate (none, non-finite, or the sentinel)."""
    if not run_secs:
        return None
    secs = [float(s) for s in run_secs]  # type: ignore[union-attr]
    mean = sum(secs) / len(secs)
    return mean if math.isfinite(mean) and 0 < mean < FAILED_RUN_SECS else None


def _database_file(work_dir: str | os.PathLike[str], name: str) -> Path:
    path = Path(work_dir) / name
    if not path.is_file():
        raise DataError(f"{path}: missing; {work_dir} is not a MetaSchedule JSON database work_dir")
    return path


def run_secs_in_order(work_dir: str | os.PathLike[str]) -> list[float | None]:
    """Mean run time (s) of every committed candidate in measurement order; None where it failed."""
    path = _database_file(work_dir, RECORDS_FILE)
    out = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(mean_run_secs(json.loads(line)[1][1]))
        except (json.JSONDecodeError, IndexError, KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{path}:{number}: not a MetaSchedule tuning record ({exc})") from exc
    return out


def database_records(work_dir: str | os.PathLike[str], workload: str, target: str) -> list[ProgramRecord]:
    """Every successful record of the database in ``work_dir`` as a program record of ``workload`` on ``target``.

    The database must hold exactly one workload (one ``tune_tir`` task). Records come fastest first.
    """
    _database_file(work_dir, RECORDS_FILE)
    tasks = [line for line in _database_file(work_dir, WORKLOADS_FILE).read_text().splitlines() if line.strip()]
    if len(tasks) != 1:
        raise DataError(f"{work_dir}: the database holds {len(tasks)} workloads; tune one workload per work_dir")
    database = ms.database.JSONDatabase(work_dir=str(work_dir))
    records = []
    for record in database.get_all_tuning_records():
        run_secs = [float(s) for s in record.run_secs] if record.run_secs is not None else []
        if mean_run_secs(run_secs) is None:
            continue
        func = record.as_measure_candidate().sch.mod["main"]
        records.append(ProgramRecord(workload=workload, target=target, graph=program_graph(func, name=workload),
                                     run_secs=tuple(run_secs)))
    return records


def best_schedule(work_dir: str | os.PathLike[str]) -> dict[str, str] | None:
    """The fastest measured record of a one-workload database as its two database lines (``workload``: the
    workload's line, ``record``: the record's); None when no candidate ran."""
    path = _database_file(work_dir, RECORDS_FILE)
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    timed = [(secs, line) for line, secs in zip(lines, run_secs_in_order(work_dir)) if secs is not None]
    if not timed:
        return None
    workload = _database_file(work_dir, WORKLOADS_FILE).read_text().splitlines()[0]
    return {"workload": workload, "record": min(timed)[1]}


def schedule_record(schedule: dict[str, str]) -> Any:
    """The ``ms.database.TuningRecord`` of a ``best_schedule`` result, read back as MetaSchedule reads a database."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / WORKLOADS_FILE).write_text(schedule["workload"] + "\n")
        (Path(tmp) / RECORDS_FILE).write_text(schedule["record"] + "\n")
        return ms.database.JSONDatabase(work_dir=tmp, allow_missing=False).get_all_tuning_records()[0]
