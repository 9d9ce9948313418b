"""The measurement store: an SQLite database of operator graphs, targets and measured latencies.

In the spirit of NNLQP's evolving database: every measured (network, target,
protocol) triple is one row with its statistics and the environment it was
taken in, so a dataset grows across sessions and machines and is never
measured twice. SQLite (stdlib) in WAL mode lets several collector processes
(one per device) write at once; every write is one transaction, so a killed
collector loses at most the measurement it was taking.

Tables: ``graphs`` (operator DAG JSON, zlib, by content hash), ``networks``
(spec -> graph hash, family, numerical check), ``targets`` (descriptor JSON by
content hash), ``measurements`` (unique on graph hash, target hash, protocol)
and ``failures`` (unique on spec, target hash, protocol). ``export_jsonl`` /
``import_jsonl`` move all of it as gzip-compressed JSON lines, closed by a record
count so that a cut file is refused, not half-imported. No TVM here:
the cost model reads the store directly (``training_rows``).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import secrets
import sqlite3
import time
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cost_model.graph import OpGraph
from cost_model.measurement_export import EXPORT_VERSION, FIELDS, Record, json_line, parse_export
from targets.errors import ArgumentError, DataError, OutputError
from targets.schema import TargetDescriptor

__all__ = ["EXPORT_VERSION", "Measurement", "MeasurementStore", "STORE_VERSION"]

STORE_VERSION = 1
# Version 2 added the export_version header field and the end record with counts; version 1 had neither.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS graphs (hash TEXT PRIMARY KEY, name TEXT, num_nodes INTEGER, flops INTEGER,
                                   json BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS networks (spec TEXT PRIMARY KEY, graph_hash TEXT NOT NULL REFERENCES graphs(hash),
                                     family TEXT, numerics_ok INTEGER, max_rel_err REAL, numerics_note TEXT);
CREATE TABLE IF NOT EXISTS targets (hash TEXT PRIMARY KEY, name TEXT NOT NULL, descriptor TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS measurements (
    graph_hash TEXT NOT NULL REFERENCES graphs(hash), target_hash TEXT NOT NULL REFERENCES targets(hash),
    protocol TEXT NOT NULL, spec TEXT NOT NULL, median_ms REAL NOT NULL, mean_ms REAL, std_ms REAL, min_ms REAL,
    cv REAL, runs INTEGER, number INTEGER, compile_s REAL, attempts INTEGER, environment TEXT, created REAL,
    UNIQUE (graph_hash, target_hash, protocol));
CREATE TABLE IF NOT EXISTS failures (
    spec TEXT NOT NULL, target_hash TEXT NOT NULL, protocol TEXT NOT NULL, stage TEXT, reason TEXT, created REAL,
    UNIQUE (spec, target_hash, protocol));
"""


@dataclass
class Measurement:
    """One measured (network, target, protocol): latency statistics in ms and where they were taken."""

    spec: str
    graph_hash: str
    target_hash: str
    protocol: str
    median_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    cv: float
    runs: int
    number: int = 1
    compile_s: float | None = None
    attempts: int = 1
    environment: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.time)


class MeasurementStore:
    """An SQLite measurement store at ``path`` (created on first use)."""

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly and not self.path.is_file():
            raise DataError(f"{self.path}: no measurement store here")
        if not readonly:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        uri = f"file:{self.path}?mode=ro" if readonly else f"file:{self.path}"
        try:
            self._db = sqlite3.connect(uri, uri=True, timeout=60.0, isolation_level=None)
            self._db.execute("PRAGMA busy_timeout = 60000")
            if not readonly:
                self._db.execute("PRAGMA journal_mode = WAL")
                with self._transaction():
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            self._db.execute(statement)
                    self._db.execute("INSERT OR IGNORE INTO meta VALUES ('store_version', ?)", (str(STORE_VERSION),))
            version = self._db.execute("SELECT value FROM meta WHERE key = 'store_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise DataError(f"{self.path}: not a readable measurement store ({exc})") from exc
        if version is None or int(version[0]) != STORE_VERSION:
            raise DataError(f"{self.path}: store version {version and version[0]!r}, this code reads {STORE_VERSION}")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "MeasurementStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _transaction(self) -> "_Transaction":
        return _Transaction(self._db)

    # ------------------------------------------------------------------ writing
    def add_graph(self, graph: OpGraph) -> str:
        """Store ``graph`` (idempotent) and return its content hash."""
        h = graph.content_hash()
        with self._transaction():
            self._insert_graph(h, graph, graph.to_json())
        return h

    def add_network(self, spec: str, graph_hash: str, family: str | None, numerics_ok: bool | None = None,
                    max_rel_err: float | None = None, numerics_note: str | None = None) -> None:
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO networks VALUES (?, ?, ?, ?, ?, ?)",
                             (spec, graph_hash, family, None if numerics_ok is None else int(numerics_ok),
                              max_rel_err, numerics_note))

    def add_target(self, desc: TargetDescriptor) -> str:
        """The hash measurements of ``desc`` are stored under.

        A descriptor that only fills in specs a stored one of the same name left unknown
        (``desc.refines(stored)``: a vendor peak added later) describes the same setting, so
        its measurements continue under the stored hash: collection resumes instead of
        measuring everything again, and training reads them with the refined descriptor.
        """
        h = desc.content_hash()
        for stored_hash, stored in self.targets().items():
            if stored_hash != h and stored.name == desc.name and desc.refines(stored):
                return stored_hash
        with self._transaction():
            self._db.execute("INSERT OR IGNORE INTO targets VALUES (?, ?, ?)",
                             (h, desc.name, json.dumps(desc.to_dict(), sort_keys=True)))
        return h

    def add_measurement(self, m: Measurement) -> bool:
        """Insert ``m``; False (and nothing written) when that (graph, target, protocol) is already there."""
        with self._transaction():
            cur = self._insert_measurement(m)
            if cur.rowcount:
                self._db.execute("DELETE FROM failures WHERE spec = ? AND target_hash = ? AND protocol = ?",
                                 (m.spec, m.target_hash, m.protocol))
        return bool(cur.rowcount)

    def add_failure(self, spec: str, target_hash: str, protocol: str, stage: str, reason: str) -> None:
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?, ?)",
                             (spec, target_hash, protocol, stage, reason[:4000], time.time()))

    # ------------------------------------------------------------------ reading
    def graph_hash_of(self, spec: str) -> str | None:
        row = self._db.execute("SELECT graph_hash FROM networks WHERE spec = ?", (spec,)).fetchone()
        return row[0] if row else None

    def graph(self, graph_hash: str) -> OpGraph:
        row = self._db.execute("SELECT json FROM graphs WHERE hash = ?", (graph_hash,)).fetchone()
        if row is None:
            raise DataError(f"{self.path}: no graph {graph_hash}")
        return OpGraph.from_json(json.loads(zlib.decompress(row[0])), source=f"{self.path}:{graph_hash}")

    def has_measurement(self, spec: str, target_hash: str, protocol: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM measurements m JOIN networks n ON m.graph_hash = n.graph_hash "
            "WHERE n.spec = ? AND m.target_hash = ? AND m.protocol = ?", (spec, target_hash, protocol)).fetchone()
        return row is not None

    def has_failure(self, spec: str, target_hash: str, protocol: str) -> bool:
        row = self._db.execute("SELECT 1 FROM failures WHERE spec = ? AND target_hash = ? AND protocol = ?",
                               (spec, target_hash, protocol)).fetchone()
        return row is not None

    def targets(self) -> dict[str, TargetDescriptor]:
        """Descriptor by content hash."""
        return {h: TargetDescriptor.from_dict(json.loads(d), origin=f"{self.path}:targets/{name}")
                for h, name, d in self._db.execute("SELECT hash, name, descriptor FROM targets")}

    def measurements(self) -> Iterator[Measurement]:
        cur = self._db.execute("SELECT spec, graph_hash, target_hash, protocol, median_ms, mean_ms, std_ms, min_ms, "
                               "cv, runs, number, compile_s, attempts, environment, created FROM measurements "
                               "ORDER BY created, spec")
        for r in cur:
            yield Measurement(*r[:13], environment=json.loads(r[13] or "{}"), created=r[14])

    def stats(self) -> dict[str, Any]:
        """Counts for ``tvm-ledg db stats``: totals, per target, per family, failures by stage."""
        q = self._db.execute
        per_target = {name: {"measurements": n, "median_cv": None} for name, n in q(
            "SELECT t.name, COUNT(*) FROM measurements m JOIN targets t ON m.target_hash = t.hash GROUP BY t.name")}
        for name, cvs in _group(q("SELECT t.name, m.cv FROM measurements m JOIN targets t ON m.target_hash = t.hash")):
            per_target[name]["median_cv"] = sorted(cvs)[len(cvs) // 2]
        return {
            "path": str(self.path),
            "graphs": q("SELECT COUNT(*) FROM graphs").fetchone()[0],
            "networks": q("SELECT COUNT(*) FROM networks").fetchone()[0],
            "numerics_flagged": q("SELECT COUNT(*) FROM networks WHERE numerics_ok = 0").fetchone()[0],
            "targets": q("SELECT COUNT(*) FROM targets").fetchone()[0],
            "measurements": q("SELECT COUNT(*) FROM measurements").fetchone()[0],
            "failures": dict(q("SELECT stage, COUNT(*) FROM failures GROUP BY stage").fetchall()),
            "per_target": per_target,
            "per_family": dict(q("SELECT COALESCE(n.family, '?'), COUNT(DISTINCT n.spec) FROM networks n "
                                 "JOIN measurements m ON m.graph_hash = n.graph_hash GROUP BY n.family").fetchall()),
        }

    def families(self) -> dict[str, str]:
        """Network family by graph hash (for per-family splits)."""
        return {g: f or "?" for g, f in self._db.execute("SELECT graph_hash, family FROM networks")}

    def training_rows(self, *, include_flagged: bool = False) -> tuple[dict[str, OpGraph],
                                                                       dict[str, TargetDescriptor],
                                                                       list[tuple[str, str, float]]]:
        """``(graphs by hash, descriptors by name, rows (graph hash, target name, median ms))``.

        Networks whose backends disagreed numerically are left out unless ``include_flagged``; when one
        graph was measured under several protocols, the lowest-CV measurement is used.
        """
        targets = {d.name: d for d in self.targets().values()}
        flagged = {h for (h,) in self._db.execute("SELECT graph_hash FROM networks WHERE numerics_ok = 0")}
        best: dict[tuple[str, str], tuple[float, float]] = {}
        for g, t, ms, cv in self._db.execute(
                "SELECT m.graph_hash, t.name, m.median_ms, m.cv FROM measurements m "
                "JOIN targets t ON m.target_hash = t.hash"):
            if include_flagged or g not in flagged:
                if (g, t) not in best or (cv or 0.0) < best[(g, t)][1]:
                    best[(g, t)] = (ms, cv or 0.0)
        graphs = {h: self.graph(h) for h in sorted({g for g, _ in best})}
        rows = sorted((g, t, ms) for (g, t), (ms, _) in best.items())
        return graphs, targets, rows

    # ------------------------------------------------------------------ moving data
    def export_jsonl(self, path: str | os.PathLike[str], *, replace: bool = False) -> dict[str, int]:
        """Everything as gzip JSON lines: a header, one ``{"kind": ..., ...}`` record per row, and an ``end``
        record with the count per kind, so that ``import_jsonl`` can tell a whole export from a cut one.

        The file is written under a temporary name and renamed into place, so ``path`` is never half-written;
        an existing ``path`` is an error unless ``replace``. The gzip header has no time stamp and names
        ``path`` (not the temporary file), so a committed export only changes with its data.
        """
        path = Path(path)
        if path.is_dir():
            raise ArgumentError(f"{path}: is a directory; export to a file (.jsonl.gz)")
        if path.exists() and not replace:
            raise ArgumentError(f"{path}: already exists (tvm-ledg db export --force replaces it)")
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        counts = dict.fromkeys(FIELDS, 0)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "xb") as raw:
                with (gzip.GzipFile(path.name, "wb", 9, raw, mtime=0) as gz,
                      io.TextIOWrapper(gz, encoding="utf-8") as f):
                    def put(kind: str, record: Mapping[str, Any]) -> None:
                        f.write(json_line({"kind": kind, **record}))
                        counts[kind] += 1

                    f.write(json.dumps({"kind": "meta", "store_version": STORE_VERSION,
                                        "export_version": EXPORT_VERSION}) + "\n")
                    for h, blob in self._db.execute("SELECT hash, json FROM graphs ORDER BY hash"):
                        put("graph", {"hash": h, "graph": json.loads(zlib.decompress(blob))})
                    for h, d in self._db.execute("SELECT hash, descriptor FROM targets ORDER BY hash"):
                        put("target", {"hash": h, "descriptor": json.loads(d)})
                    for r in self._db.execute("SELECT * FROM networks ORDER BY spec"):
                        put("network", dict(zip(FIELDS["network"], r)))
                    for m in self.measurements():
                        put("measurement", asdict(m))
                    for r in self._db.execute("SELECT * FROM failures ORDER BY spec, target_hash"):
                        put("failure", dict(zip(FIELDS["failure"], r)))
                    f.write(json_line({"kind": "end", "counts": counts}))
                raw.flush()
                os.fsync(raw.fileno())  # on disk before the rename makes it the export
            if replace:
                os.replace(tmp, path)
            else:
                _link_new(tmp, path)
        except OSError as exc:  # no room, no permission: the user's to fix, and nothing was written
            raise OutputError(f"{path}: cannot write the export ({exc})") from exc
        finally:
            tmp.unlink(missing_ok=True)
        return counts

    def import_jsonl(self, path: str | os.PathLike[str]) -> dict[str, int]:
        """Merge an export into this store (existing rows win); returns the rows added per kind.

        All or nothing: every record is checked first (fields, types and ranges; graph and target hashes
        against their content; every graph and target a record names is in the file or the store; the end
        record's counts against the records read), and only a file that passes is written, in one
        transaction. Errors name ``file:line`` and the field.
        """
        path = Path(path)
        try:
            with gzip.open(path, "rt", encoding="utf-8") as f:
                lines = f.read().splitlines()
        except (OSError, EOFError, ValueError) as exc:
            raise DataError(f"{path}: cannot read a gzip JSON-lines export ({exc})") from exc
        records = parse_export(lines, str(path), STORE_VERSION)
        self._check_references(records, str(path))
        added = dict.fromkeys(FIELDS, 0)
        with self._transaction():
            for record in records:
                added[record.kind] += self._import_record(record)
        return added

    def _check_references(self, records: list[Record], source: str) -> None:
        """Every graph and target hash a record names is defined in the export or already in this store."""
        graphs = {r.fields["hash"] for r in records if r.kind == "graph"}
        graphs |= {h for (h,) in self._db.execute("SELECT hash FROM graphs")}
        target_hashes = {r.fields["hash"] for r in records if r.kind == "target"}
        target_hashes |= {h for (h,) in self._db.execute("SELECT hash FROM targets")}
        for r in records:
            for name, known, what in (("graph_hash", graphs, "graph"), ("target_hash", target_hashes, "target")):
                if name in r.fields and r.fields[name] not in known:
                    raise DataError(f"{source}:{r.line}: {r.kind} field {name!r} names {what} {r.fields[name]}, "
                                    f"which is neither in the export nor in {self.path}")

    def _import_record(self, record: Record) -> int:
        """Insert one checked record (a row already there is kept); the caller holds the transaction."""
        x, kind, rec = self._db.execute, record.kind, record.fields
        if kind == "graph":
            assert record.graph is not None  # parsed by _check_fields
            return self._insert_graph(rec["hash"], record.graph, rec["graph"]).rowcount
        if kind == "target":
            return x("INSERT INTO targets VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                     (rec["hash"], rec["descriptor"]["name"], json.dumps(rec["descriptor"], sort_keys=True))
                     ).rowcount
        if kind == "network":
            ok = rec["numerics_ok"]
            return x("INSERT INTO networks VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                     (rec["spec"], rec["graph_hash"], rec["family"], None if ok is None else int(ok),
                      rec["max_rel_err"], rec["numerics_note"])).rowcount
        if kind == "measurement":
            return self._insert_measurement(Measurement(**rec)).rowcount
        return x("INSERT INTO failures VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                 tuple(rec[name] for name in FIELDS["failure"])).rowcount

    def _insert_graph(self, graph_hash: str, graph: OpGraph, graph_json: Any) -> sqlite3.Cursor:
        """One graph row (kept when present); the caller holds the transaction."""
        blob = zlib.compress(json.dumps(graph_json, separators=(",", ":")).encode(), 6)
        return self._db.execute("INSERT INTO graphs VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                                (graph_hash, graph.name, graph.num_nodes, graph.total_flops, blob))

    def _insert_measurement(self, m: Measurement) -> sqlite3.Cursor:
        """One measurement row (kept when its unique key is present); the caller holds the transaction.

        ``ON CONFLICT DO NOTHING`` rather than ``INSERT OR IGNORE``: only the unique key may skip a row, a
        NOT NULL violation is an error.
        """
        row = asdict(m) | {"environment": json.dumps(m.environment, sort_keys=True)}
        return self._db.execute(f"INSERT INTO measurements ({', '.join(row)}) VALUES "
                                f"({', '.join('?' * len(row))}) ON CONFLICT DO NOTHING", tuple(row.values()))


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error): one writer at a time, nothing half-written."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


def _link_new(tmp: Path, path: Path) -> None:
    """Put ``tmp`` at ``path`` unless something is there by now (a hard link fails on an existing name,
    where a rename would replace it); on a file system without hard links, check and rename."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise ArgumentError(f"{path}: already exists (tvm-ledg db export --force replaces it)") from None
    except OSError:
        if path.exists():
            raise ArgumentError(f"{path}: already exists (tvm-ledg db export --force replaces it)") from None
        os.replace(tmp, path)


def _group(rows: Any) -> Iterator[tuple[str, list[float]]]:
    out: dict[str, list[float]] = {}
    for key, value in rows:
        if value is not None:
            out.setdefault(key, []).append(float(value))
    yield from out.items()
