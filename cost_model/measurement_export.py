"""The measurement store's export format: gzip JSON lines, checked record by record before anything is imported.

An export is a ``meta`` header (store and export versions), one record per
table row (``{"kind": "graph" | "target" | "network" | "measurement" |
"failure", ...}``) and an ``end`` record counting the records of each kind, so
a cut or edited file is refused, not half-imported. :data:`FIELDS` says what
each field may hold; :func:`parse_export` checks a whole file (fields, types,
ranges, duplicates, graph and target hashes against their content, the end
record) and raises a ``DataError`` naming ``file:line`` and the field. Writing
and inserting stay in :mod:`cost_model.measurement_store`, which owns the
database.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cost_model.graph import OpGraph
from targets.errors import DataError
from targets.schema import TargetDescriptor

__all__ = ["EXPORT_VERSION", "FIELDS", "Record", "json_line", "parse_export"]

EXPORT_VERSION = 2


def json_line(record: Mapping[str, Any]) -> str:
    """A record as one compact line with sorted keys, so an export of the same rows has the same bytes."""
    return json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n"


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


_Rule = tuple[str, Callable[[Any], bool]]
_TEXT: _Rule = ("a non-empty string", lambda v: isinstance(v, str) and v != "")
_STRING: _Rule = ("a string", lambda v: isinstance(v, str))
_OBJECT: _Rule = ("a JSON object", lambda v: isinstance(v, dict))
_FINITE: _Rule = ("a finite number", _number)
_POSITIVE: _Rule = ("a finite number > 0", lambda v: _number(v) and v > 0)
_NON_NEGATIVE: _Rule = ("a finite number >= 0", lambda v: _number(v) and v >= 0)
_COUNT: _Rule = ("an integer >= 1", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1)
_FLAG: _Rule = ("true, false, 1 or 0", lambda v: v in (0, 1) and not isinstance(v, float))


def _or_null(rule: _Rule) -> _Rule:
    return (f"{rule[0]} or null", lambda v: v is None or rule[1](v))


# The fields of each record kind, in table-column order, and what each may hold.
FIELDS: dict[str, dict[str, _Rule]] = {
    "graph": {"hash": _TEXT, "graph": _OBJECT},
    "target": {"hash": _TEXT, "descriptor": _OBJECT},
    "network": {"spec": _TEXT, "graph_hash": _TEXT, "family": _or_null(_STRING), "numerics_ok": _or_null(_FLAG),
                "max_rel_err": _or_null(_NON_NEGATIVE), "numerics_note": _or_null(_STRING)},
    "measurement": {"spec": _TEXT, "graph_hash": _TEXT, "target_hash": _TEXT, "protocol": _TEXT,
                    "median_ms": _POSITIVE, "mean_ms": _POSITIVE, "std_ms": _NON_NEGATIVE, "min_ms": _POSITIVE,
                    "cv": _NON_NEGATIVE, "runs": _COUNT, "number": _COUNT, "compile_s": _or_null(_NON_NEGATIVE),
                    "attempts": _COUNT, "environment": _OBJECT, "created": _FINITE},
    "failure": {"spec": _TEXT, "target_hash": _TEXT, "protocol": _TEXT, "stage": _or_null(_STRING),
                "reason": _or_null(_STRING), "created": _or_null(_FINITE)},
}
# What makes a record unique in its table: a second one in the same export is an error, not a silent skip.
_KEYS = {"graph": ("hash",), "target": ("hash",), "network": ("spec",),
         "measurement": ("graph_hash", "target_hash", "protocol"), "failure": ("spec", "target_hash", "protocol")}


@dataclass
class Record:
    """One checked row record of an export: its line, kind, fields, and for a graph the parsed graph."""

    line: int
    kind: str
    fields: dict[str, Any]
    graph: OpGraph | None = None


def parse_export(lines: list[str], source: str, store_version: int) -> list[Record]:
    """Every row record of an export of a store at ``store_version``, each checked on its own; raises
    ``DataError`` naming ``source:line`` on the first problem, including a missing header or end record."""
    if not lines:
        raise DataError(f"{source}: empty file, not a tvm-ledg export")
    header = _json_object(lines[0], f"{source}:1")
    if header.get("kind") != "meta":
        raise DataError(f"{source}:1: not a tvm-ledg export (its first line is not the 'meta' header)")
    if header.get("store_version") != store_version:
        raise DataError(f"{source}:1: export of store version {header.get('store_version')!r}, this code reads "
                        f"{store_version}")
    if "export_version" not in header:
        raise DataError(f"{source}: written by an older tvm-ledg, without the end record that shows the file is "
                        "whole; export it again with this version (tvm-ledg db export)")
    if header["export_version"] != EXPORT_VERSION:
        raise DataError(f"{source}:1: export format {header['export_version']!r}, this code reads "
                        f"{EXPORT_VERSION}")
    records: list[Record] = []
    seen: dict[tuple[Any, ...], int] = {}
    counts = dict.fromkeys(FIELDS, 0)
    for n, line in enumerate(lines[1:], 2):
        where = f"{source}:{n}"
        rec = _json_object(line, where)
        kind = rec.pop("kind", None)
        if kind == "end":
            _check_end(rec, counts, where, trailing=len(lines) - n)
            return records
        if kind not in FIELDS:
            raise DataError(f"{where}: unknown record kind {kind!r} (expected one of {', '.join(FIELDS)})")
        graph = _check_fields(kind, rec, where)
        key = (kind, *(rec[k] for k in _KEYS[kind]))
        if key in seen:
            raise DataError(f"{where}: {kind} {', '.join(map(str, key[1:]))} appears twice (first on line "
                            f"{seen[key]})")
        seen[key] = n
        records.append(Record(n, kind, rec, graph))
        counts[kind] += 1
    raise DataError(f"{source}: ends at line {len(lines)} without its end record: the file was cut short "
                    "(copy or export it again)")


def _json_object(line: str, where: str) -> dict[str, Any]:
    try:
        rec = json.loads(line)
    except ValueError as exc:
        raise DataError(f"{where}: not a JSON line ({exc})") from exc
    if not isinstance(rec, dict):
        raise DataError(f"{where}: not a JSON object")
    return rec


def _check_end(rec: dict[str, Any], counts: dict[str, int], where: str, trailing: int) -> None:
    """The end record's counts equal the records read, and nothing follows it."""
    if trailing:
        raise DataError(f"{where}: {trailing} more lines after the end record")
    declared = rec.get("counts")
    if not isinstance(declared, dict) or set(declared) != set(counts):
        raise DataError(f"{where}: end record field 'counts' is {declared!r}, expected a count per kind "
                        f"({', '.join(counts)})")
    for kind, n in counts.items():
        if declared[kind] != n:
            raise DataError(f"{where}: the end record counts {declared[kind]!r} {kind} records, the file holds "
                            f"{n} (a damaged or edited file)")


def _check_fields(kind: str, rec: dict[str, Any], where: str) -> OpGraph | None:
    """Every field of ``kind`` is present with a value of its type and range, nothing else is there, and
    graph and target hashes match their content (so an edited name or shape cannot relabel rows); returns
    a graph record's parsed graph."""
    rules = FIELDS[kind]
    for name in rec:
        if name not in rules:
            raise DataError(f"{where}: {kind} record has an unknown field {name!r}")
    for name, (expected, ok) in rules.items():
        if name not in rec:
            raise DataError(f"{where}: {kind} field {name!r} is missing")
        value = rec[name]
        if not ok(value):
            shown = "null" if value is None else repr(value)[:80]
            raise DataError(f"{where}: {kind} field {name!r} is {shown}, expected {expected}")
    if kind == "measurement" and rec["min_ms"] > rec["median_ms"]:
        raise DataError(f"{where}: measurement field 'min_ms' is {rec['min_ms']!r}, above 'median_ms' "
                        f"{rec['median_ms']!r}")
    try:
        if kind == "graph":
            graph = OpGraph.from_json(rec["graph"], source=where)
            if graph.content_hash() != rec["hash"]:
                raise DataError(f"{where}: graph field 'hash' {rec['hash']} does not match its content "
                                f"({graph.content_hash()})")
            return graph
        if kind == "target":
            desc = TargetDescriptor.from_dict(rec["descriptor"], origin=where)
            if desc.content_hash() != rec["hash"]:
                raise DataError(f"{where}: target field 'hash' {rec['hash']} does not match the descriptor of "
                                f"{desc.name!r} ({desc.content_hash()})")
    except (KeyError, TypeError, ValueError) as exc:  # GraphError and TargetError are ValueErrors
        text = str(exc)  # their messages start with ``where`` already
        field_name = "graph" if kind == "graph" else "descriptor"
        raise DataError(text if text.startswith(where) else f"{where}: {kind} field {field_name!r}: {text}") from exc
    return None
