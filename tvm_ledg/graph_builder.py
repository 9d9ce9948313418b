"""Lower many MODEL strings into a ``GraphStore``, in parallel and resumably.

Each worker process imports TVM once and lowers one network at a time; results
are written by the worker straight into the store (atomic per graph), so a
killed build keeps everything finished and a re-run only does what is missing.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Callable, Sequence

from cost_model.graph_store import GraphStore
from targets.errors import LedgError

__all__ = ["BuildReport", "build_graphs"]

log = logging.getLogger(__name__)


@dataclass
class BuildReport:
    built: int = 0
    skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)


def _lower_one(store_root: str, key: str, spec: str, fused: bool) -> str | None:
    """Worker body: lower ``spec`` into the store under ``key``; return an error message or None."""
    from tvm_ledg.networks import network_graph

    try:
        GraphStore(store_root).put(key, network_graph(spec, fused=fused))
    except LedgError as exc:
        return str(exc)
    return None


def build_graphs(
    specs: Sequence[str],
    store: GraphStore,
    *,
    workers: int = 1,
    fused: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> BuildReport:
    """Lower every spec not yet in ``store``; ``progress(done, total)`` is called after each one.

    Graphs are stored under ``networks.model_key``, the key ``predict`` reads: a space
    string as is, an ONNX file by its content, so an edited file is lowered again.
    """
    from tvm_ledg.networks import model_key

    report = BuildReport()
    todo: dict[str, str] = {}  # store key -> spec, the first spec of each key not stored yet
    for spec in dict.fromkeys(specs):
        try:
            key = model_key(spec)
        except LedgError as exc:  # an unreadable file fails alone, like a failed lowering
            report.failed[spec] = str(exc)
            continue
        if key in todo or key in store:
            report.skipped += 1
        else:
            todo[key] = spec
    if not todo:
        return report
    workers = max(1, min(workers, len(todo), os.cpu_count() or 1))
    if workers == 1:
        results = ((spec, _lower_one(str(store.root), key, spec, fused)) for key, spec in todo.items())
        _collect(results, report, len(todo), progress)
        return report
    pool = ProcessPoolExecutor(max_workers=workers)
    try:
        futures = {pool.submit(_lower_one, str(store.root), key, spec, fused): spec for key, spec in todo.items()}
        results = ((futures[f], f.result()) for f in as_completed(futures))
        _collect(results, report, len(todo), progress)
    finally:  # after Ctrl-C, only the networks in flight finish: the pool would otherwise lower every one left
        pool.shutdown(wait=True, cancel_futures=True)
    return report


def _collect(results, report: BuildReport, total: int, progress: Callable[[int, int], None] | None) -> None:
    for done, (spec, error) in enumerate(results, start=1):
        if error is None:
            report.built += 1
        else:
            report.failed[spec] = error
            log.warning("lowering %s failed: %s", spec, error)
        if progress is not None:
            progress(done, total)
