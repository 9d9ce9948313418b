"""Predict latencies of networks on targets with a trained checkpoint.

``predict_latency(models, targets)`` lowers each network once (cached on
disk in a ``GraphStore``, so a model already lowered costs a file read),
featurizes it once and predicts every (model, target) pair in batches. The
default checkpoint ships inside the package (``cost_model/checkpoints/ledg-default``);
its ``README.md`` says how it was trained and on what.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cost_model
from cost_model.cache_dir import default_cache_root
from cost_model.graph import OpGraph
from cost_model.graph_store import GraphStore
from targets.errors import CheckpointError, ModelImportError
from targets.schema import TargetDescriptor

__all__ = ["DEFAULT_CHECKPOINT", "LatencyPrediction", "load_predictor", "resolve_graphs", "predict_latency", "read_measurements"]

DEFAULT_CHECKPOINT = Path(cost_model.__file__).resolve().parent / "checkpoints" / "ledg-default"


@dataclass
class LatencyPrediction:
    """One (model, target) prediction; ``operators`` is ``[(node id, op, ms), ...]`` by decreasing ms;
    ``bounds`` maps those node ids to what limits them ("compute", "memory", "overhead") when the
    checkpoint has the roofline head."""

    model: str
    target: str
    latency_ms: float
    std_log: float | None = None
    adapted: bool = False  # a stored adaptation changed this prediction
    operators: list[tuple[int, str, float]] = field(default_factory=list)
    bounds: dict[int, str] = field(default_factory=dict)


def default_graph_cache() -> Path:
    return default_cache_root() / "graphs"


_PREDICTORS: dict[Path, Any] = {}


def load_predictor(checkpoint: str | os.PathLike[str] | None = None, *, cached: bool = True):
    """A ``LatencyPredictor`` from a checkpoint directory (the shipped default when None).

    Cached per process for repeated predictions; pass ``cached=False`` for a private
    copy that may be modified (adaptation).
    """
    from cost_model.predictor import LatencyPredictor

    path = Path(checkpoint) if checkpoint is not None else DEFAULT_CHECKPOINT
    if checkpoint is None and not path.is_dir():
        raise CheckpointError(f"{path}: the default checkpoint is missing from this installation; "
                              "pass --checkpoint DIR (train one with `tvm-ledg train`)")
    path = path.resolve()
    if not cached:
        return LatencyPredictor.from_pretrained(path, granularity="network")
    if path not in _PREDICTORS:
        _PREDICTORS[path] = LatencyPredictor.from_pretrained(path, granularity="network")
    return _PREDICTORS[path]


def resolve_graphs(models: Sequence[Any], *, graph_store: str | os.PathLike[str] | None = None,
                   batch_size: int | None = None, workers: int = 1,
                   progress: Callable[[int, int], None] | None = None) -> tuple[list[str], dict[str, OpGraph]]:
    """Names and operator graphs of ``models`` (MODEL strings, ``OpGraph``s or Relax modules).

    MODEL strings are lowered at most once per store: a missing graph is built (in
    ``workers`` processes when there are many) and kept for the next call.
    Lowering takes about a second per network, so ``progress(done, total)`` is
    called before the first graph is built and after each one (never when every
    graph is already stored).
    """
    from tvm_ledg.networks import expand_model_args, model_key

    names: list[str] = []
    graphs: dict[str, OpGraph] = {}
    pending: dict[str, str] = {}  # store key -> MODEL string
    for i, model in enumerate(models):
        if isinstance(model, OpGraph):
            name = model.name or f"graph{i}"
            graphs[name] = model
        elif isinstance(model, (str, os.PathLike)):
            for spec in expand_model_args([str(model)]):
                names.append(spec)
                pending[spec] = model_key(spec, batch_size)
            continue
        elif type(model).__name__ == "IRModule":
            from tvm_ledg.lowering import to_op_graph

            name = f"module{i}"
            graphs[name] = to_op_graph(model, name=name)
        else:
            raise ModelImportError(f"cannot predict for a {type(model).__name__}: pass an ONNX path, a space "
                                   "string, an OpGraph or a Relax IRModule (torch modules: load_model() first)")
        names.append(name)
    if pending:
        store = GraphStore(graph_store or default_graph_cache())
        todo = {key: spec for spec, key in pending.items() if key not in store}
        if todo and progress is not None:  # the total at once, before the first (slow) graph
            progress(0, len(todo))
        parallel = [key for key, spec in todo.items() if key == spec]  # space strings at their own batch size
        if len(parallel) > 1 and workers > 1:
            from tvm_ledg.graph_builder import build_graphs

            scaled = None if progress is None else (lambda done, _: progress(done, len(todo)))
            report = build_graphs(parallel, store, workers=workers, progress=scaled)
            if report.failed:
                spec, reason = next(iter(report.failed.items()))
                raise ModelImportError(f"{spec}: {reason}")
        from tvm_ledg.networks import network_graph

        serial = [(key, spec) for key, spec in todo.items() if key not in store]
        for done, (key, spec) in enumerate(serial, start=len(todo) - len(serial) + 1):
            store.put(key, network_graph(spec, batch_size=batch_size))
            if progress is not None:
                progress(done, len(todo))
        for spec, key in pending.items():
            graphs[spec] = store[key]
    return names, graphs


def _targets(targets: Iterable[str | os.PathLike[str] | TargetDescriptor] | str | os.PathLike[str] | TargetDescriptor
             ) -> dict[str, TargetDescriptor]:
    import targets as registry

    if isinstance(targets, (str, os.PathLike, TargetDescriptor)):
        targets = [targets]
    return {desc.name: desc for desc in registry.load_many(targets)}


def predict_latency(models: Any, targets: Any, *, checkpoint: str | os.PathLike[str] | None = None,
                    breakdown: bool = False, top_ops: int | None = None,
                    graph_store: str | os.PathLike[str] | None = None, batch_size: int | None = None,
                    workers: int = 1, progress: Callable[[int, int], None] | None = None) -> list[LatencyPrediction]:
    """Predicted latency of every model on every target (models outer, targets inner).

    Args:
        models: one or a list of: ONNX path, space string (``nb201:...``), ``@list`` file,
            ``OpGraph`` or Relax ``IRModule``.
        targets: one or a list of target names, aliases, YAML paths or ``TargetDescriptor``s.
        checkpoint: checkpoint directory (default: the shipped one).
        breakdown: also return per-operator latencies (all, or the ``top_ops`` largest).
        batch_size: override the models' batch size (ONNX and spaces).
        progress: ``progress(done, total)`` after each graph lowered (see ``resolve_graphs``).
    """
    from tvm_ledg.networks import expand_model_args

    if not isinstance(models, (list, tuple)):
        models = [models]
    # a mistyped MODEL fails before the checkpoint loads
    expand_model_args([str(m) for m in models if isinstance(m, (str, os.PathLike))])
    descs = _targets(targets)  # before any lowering: a bad target list fails at once
    predictor = load_predictor(checkpoint)
    names, graphs = resolve_graphs(models, graph_store=graph_store, batch_size=batch_size, workers=workers,
                                   progress=progress)
    pairs = [(name, t) for name in names for t in descs]
    result = predictor.predict_detailed(graphs, descs, pairs, breakdown=breakdown)
    out = []
    for i, (name, t) in enumerate(pairs):
        ops: list[tuple[int, str, float]] = []
        bounds: dict[int, str] = {}
        if breakdown:
            graph = graphs[name]
            ops = sorted(((n.id, n.op, float(ms)) for n, ms in zip(graph.nodes, result.per_op_ms[i])),
                         key=lambda x: -x[2])[:top_ops]
            if result.bound is not None:
                bounds = {node_id: str(result.bound[i][node_id]) for node_id, _, _ in ops}
        std = None if result.std_log is None else float(result.std_log[i])
        adapted = predictor.adaptation_for(descs[t]) is not None
        out.append(LatencyPrediction(name, t, float(result.latency_ms[i]), std, adapted, ops, bounds))
    return out


def read_measurements(path: str | os.PathLike[str]) -> list[tuple[str, float]]:
    """``(MODEL, latency_ms)`` rows of a CSV whose header is exactly ``model`` and ``latency_ms`` (any order).

    Strict on purpose: a decimal comma (``5,1``) splits a number into two fields, and an
    extra column would swallow its second half silently, so unknown columns and rows with
    more or fewer fields than the header are refused, naming ``file:line``. So are empty
    and repeated model names (which of two measurements is meant?). A UTF-8 byte-order mark
    (spreadsheet exports) is accepted.
    """
    import csv
    import math

    from targets.errors import DataError

    path = Path(path)
    columns = {"model", "latency_ms"}
    rows: list[tuple[str, float]] = []
    seen: dict[str, int] = {}
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [name.strip() for name in reader.fieldnames or []]
            reader.fieldnames = header
            missing, unknown = columns - set(header), sorted(set(header) - columns)
            if missing or unknown or len(header) != len(set(header)):
                problem = (f"missing column(s) {sorted(missing)}" if missing else
                           f"unknown column(s) {unknown}" if unknown else "a repeated column")
                raise DataError(f"{path}:1: {problem}; the header must be exactly model,latency_ms (found {header})")
            for row in reader:
                line = reader.line_num
                if None in row or None in row.values():
                    fields = len(header) + len(row.get(None) or []) - sum(v is None for v in row.values())
                    raise DataError(f"{path}:{line}: {fields} fields, the header has {len(header)}; write decimals "
                                    "with a point (5.1) and quote model names that hold commas")
                model, text = row["model"].strip(), row["latency_ms"].strip()
                if not model:
                    raise DataError(f"{path}:{line}: empty model name")
                if model in seen:
                    raise DataError(f"{path}:{line}: model {model!r} is measured again (first on line {seen[model]}); "
                                    "keep one latency per model")
                try:
                    ms = float(text)
                except ValueError:
                    ms = math.nan
                if not (math.isfinite(ms) and ms > 0):
                    raise DataError(f"{path}:{line}: latency_ms {row['latency_ms']!r} is not a positive number")
                seen[model] = line
                rows.append((model, ms))
    except OSError as exc:
        raise DataError(f"{path}: cannot read measurements ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV ({exc})") from exc
    if not rows:
        raise DataError(f"{path}: no measurements")
    return rows
