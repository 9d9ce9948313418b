"""Predict latencies of networks on targets with a trained checkpoint.

``predict_table(models, targets)`` is the search-loop API: thousands of MODELs
in, a ``PredictionTable`` of arrays out, streamed in chunks so that memory stays
flat. ``predict_latency(models, targets)`` returns one ``LatencyPrediction`` per
(model, target), optionally with the per-operator breakdown.

Graphs come from the cheapest source: space strings that the block templates
cover (``tvm_ledg.spaces.synth``) are assembled in memory, faster than reading
a stored graph back, and never written (``predict_table`` takes their model
inputs straight from per-block features); every other MODEL is lowered through
TVM once and kept in a ``GraphStore`` on disk. Featurized graphs are kept per
process under a key that fixes their content (the store key, or the graph's
content hash), the most recent few thousand of them. The default checkpoint
ships inside the package (``cost_model/checkpoints/ledg-default``); its
``README.md`` says how it was trained and on what.

Longer than 400 lines because both prediction paths (the batched table and the per-pair reference it
is tested against) and the measurement CSV reader of ``adapt`` share the graph sources and caches here.
"""

from __future__ import annotations

import csv
import io
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import cost_model
from cost_model.batch import GraphTensors
from cost_model.cache_dir import default_cache_root
from cost_model.graph import OpGraph, paused_gc
from cost_model.io import write_text_atomic
from cost_model.graph_store import GraphStore
from targets.errors import ArgumentError, CheckpointError, DataError, ModelImportError
from targets.schema import TargetDescriptor

__all__ = ["DEFAULT_CHECKPOINT", "LatencyPrediction", "PredictionTable", "load_predictor", "resolve_graphs",
           "predict_latency", "predict_table", "read_measurements"]

DEFAULT_CHECKPOINT = Path(cost_model.__file__).resolve().parent / "checkpoints" / "ledg-default"
FEATURE_CACHE_GRAPHS = 1024  # featurized graphs kept per predictor (~90 KB each for NB201: 4096 cost 0.3 GiB more)
CHUNK_MODELS = 1024  # models resolved, featurized and predicted together by predict_table


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


@dataclass(frozen=True)
class PredictionTable:
    """Predictions of every model on every target as arrays.

    ``latency_ms[i, j]`` is model ``models[i]`` on target ``targets[j]``;
    ``std_log`` (same shape) is the predicted spread in log space when the
    checkpoint has a variance head; ``adapted[j]`` says a stored adaptation
    changed target ``j``'s predictions.
    """

    models: list[str]
    targets: list[str]
    latency_ms: np.ndarray
    std_log: np.ndarray | None
    adapted: np.ndarray

    def __len__(self) -> int:
        return self.latency_ms.size

    def records(self) -> list[dict[str, Any]]:
        """One dict per (model, target), models outer: ``model, target, latency_ms, std_log, adapted``."""
        out = []
        for i, model in enumerate(self.models):
            for j, target in enumerate(self.targets):
                std = None if self.std_log is None else float(self.std_log[i, j])
                out.append({"model": model, "target": target, "latency_ms": float(self.latency_ms[i, j]),
                            "std_log": std, "adapted": bool(self.adapted[j])})
        return out

    def predictions(self) -> list[LatencyPrediction]:
        """The same rows as ``LatencyPrediction``s (without breakdown)."""
        return [LatencyPrediction(r["model"], r["target"], r["latency_ms"], r["std_log"], r["adapted"])
                for r in self.records()]

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """Write ``model,target,latency_ms,std_log`` (6 significant digits), atomically."""
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["model", "target", "latency_ms", "std_log"])
        for r in self.records():
            writer.writerow([r["model"], r["target"], f"{r['latency_ms']:.6g}",
                             "" if r["std_log"] is None else f"{r['std_log']:.4g}"])
        write_text_atomic(Path(path), buf.getvalue())

    def to_pandas(self) -> Any:
        """The records as a ``pandas.DataFrame`` (pandas is not a dependency: install it to use this)."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError("PredictionTable.to_pandas needs pandas (pip install pandas); "
                              "records() and to_csv() work without it") from exc
        return pd.DataFrame.from_records(self.records(), columns=["model", "target", "latency_ms", "std_log",
                                                                  "adapted"])


def default_graph_cache() -> Path:
    return default_cache_root() / "graphs"


class _RecentGraphs(OrderedDict):
    """A feature cache holding the ``limit`` most recently featurized graphs.

    The predictor is cached per process, and a search loop streams tens of
    thousands of graphs through it: keeping every one would grow without bound.
    """

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        while len(self) > self.limit:
            self.popitem(last=False)


_PREDICTORS: dict[tuple[Path, str], Any] = {}


def load_predictor(checkpoint: str | os.PathLike[str] | None = None, *, cached: bool = True, device: str = "cpu"):
    """A ``LatencyPredictor`` from a checkpoint directory (the shipped default when None), on ``device``
    ("cpu", "auto", "cuda", "cuda:N").

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
        return LatencyPredictor.from_pretrained(path, granularity="network", device=device)
    if (path, device) not in _PREDICTORS:
        _PREDICTORS[path, device] = LatencyPredictor.from_pretrained(
            path, granularity="network", feature_cache=_RecentGraphs(FEATURE_CACHE_GRAPHS), device=device)
    return _PREDICTORS[path, device]


@dataclass(frozen=True)
class _Model:
    """One MODEL to predict: ``name`` as reported, ``key`` naming its graph's content (store key or hash)."""

    name: str
    key: str
    spec: str | None = None  # a MODEL string; None for an in-memory graph
    graph: OpGraph | None = None
    synthesized: bool = False  # assembled from block templates, never lowered nor stored


def _expand(models: Any, batch_size: int | None) -> list[_Model]:
    """``models`` (one or a list) as ``_Model``s, ``@lists`` expanded and every MODEL string checked once."""
    from tvm_ledg.networks import expand_model_args, model_key

    if not isinstance(models, (list, tuple)):
        models = [models]
    out: list[_Model] = []
    for i, model in enumerate(models):
        if isinstance(model, (str, os.PathLike)):
            out += [_Model(spec, model_key(spec, batch_size), spec, synthesized=_synthesizable(spec, batch_size))
                    for spec in expand_model_args([str(model)])]
        elif isinstance(model, OpGraph):
            out.append(_Model(model.name or f"graph{i}", f"graph-sha256:{model.content_hash()}", graph=model))
        elif type(model).__name__ == "IRModule":
            from tvm_ledg.lowering import to_op_graph

            graph = to_op_graph(model, name=f"module{i}")
            out.append(_Model(graph.name, f"graph-sha256:{graph.content_hash()}", graph=graph))
        else:
            raise ModelImportError(f"cannot predict for a {type(model).__name__}: pass an ONNX path, a space "
                                   "string, an OpGraph or a Relax IRModule (torch modules: load_model() first)")
    return out


def _synthesizable(spec: str, batch_size: int | None) -> bool:
    """True when ``network_graph`` assembles ``spec``'s graph from block templates (no TVM, no store)."""
    from tvm_ledg.networks import is_space_spec
    from tvm_ledg.spaces.synth import SPACES

    return batch_size in (None, 1) and is_space_spec(spec) and spec.partition(":")[0] in SPACES


def _lower_missing(models: Sequence[_Model], *, graph_store: str | os.PathLike[str] | None,
                   batch_size: int | None, workers: int, progress: Callable[[int, int], None] | None) -> GraphStore:
    """Lower into the graph store every model it lacks that is not synthesized; the store.

    Lowering takes about a second per network, so ``progress(done, total)`` is
    called before the first graph is lowered and after each one (never when no
    graph needs lowering).
    """
    from tvm_ledg.networks import network_graph

    store = GraphStore(graph_store or default_graph_cache())
    todo = {m.key: m.spec for m in models
            if m.graph is None and not m.synthesized and m.key not in store}
    if not todo:
        return store
    if progress is not None:  # the total at once, before the first (slow) graph
        progress(0, len(todo))
    parallel = [key for key, spec in todo.items() if key == spec]  # space strings at their own batch size
    if len(parallel) > 1 and workers > 1:
        from tvm_ledg.graph_builder import build_graphs

        scaled = None if progress is None else (lambda done, _: progress(done, len(todo)))
        report = build_graphs(parallel, store, workers=workers, progress=scaled)
        if report.failed:
            spec, reason = next(iter(report.failed.items()))
            raise ModelImportError(f"{spec}: {reason}")
    serial = [(key, spec) for key, spec in todo.items() if key not in store]
    for done, (key, spec) in enumerate(serial, start=len(todo) - len(serial) + 1):
        store.put(key, network_graph(spec, batch_size=batch_size))
        if progress is not None:
            progress(done, len(todo))
    return store


def _graphs(models: Sequence[_Model], store: GraphStore, batch_size: int | None, *,
            featurized: bool = False) -> dict[str, OpGraph | GraphTensors]:
    """Graph of each model by key: in memory, synthesized, or read from ``store`` (see ``_lower_missing``).

    With ``featurized``, synthesized models come as their model inputs instead
    (``synth.synthesize_tensors``: the same tensors, from per-block features,
    without building the graph). The cyclic garbage collector is paused
    meanwhile: a chunk's graphs are hundreds of thousands of live containers
    (and no cycles), and collections triggered while they are built traverse
    all of them again and again, which made synthesizing a chunk about 4x slower.
    """
    from tvm_ledg import spaces
    from tvm_ledg.networks import network_graph
    from tvm_ledg.spaces.synth import synthesize_tensors

    graphs: dict[str, OpGraph | GraphTensors] = {}
    with paused_gc():
        for m in models:
            if m.key in graphs:
                continue
            if m.graph is not None:
                graphs[m.key] = m.graph
            elif m.synthesized and featurized:
                parsed = spaces.parse(m.spec)
                graphs[m.key] = synthesize_tensors(m.spec, parsed.arch, parsed.space)
            elif m.synthesized:
                graphs[m.key] = network_graph(m.spec)
            else:
                graphs[m.key] = store[m.key]
    return graphs


def resolve_graphs(models: Sequence[Any], *, graph_store: str | os.PathLike[str] | None = None,
                   batch_size: int | None = None, workers: int = 1,
                   progress: Callable[[int, int], None] | None = None) -> tuple[list[str], dict[str, OpGraph]]:
    """Names and operator graphs of ``models`` (MODEL strings, ``OpGraph``s or Relax modules).

    Space strings covered by the block templates are assembled in memory; other
    MODEL strings are lowered at most once per store (in ``workers`` processes
    when there are many) and kept for the next call; ``progress(done, total)``
    follows the lowering.
    """
    expanded = _expand(list(models), batch_size)
    store = _lower_missing(expanded, graph_store=graph_store, batch_size=batch_size, workers=workers,
                           progress=progress)
    by_key = _graphs(expanded, store, batch_size)
    return [m.name for m in expanded], {m.name: by_key[m.key] for m in expanded}


def _targets(targets: Iterable[str | os.PathLike[str] | TargetDescriptor] | str | os.PathLike[str] | TargetDescriptor
             ) -> dict[str, TargetDescriptor]:
    import targets as registry

    if isinstance(targets, (str, os.PathLike, TargetDescriptor)):
        targets = [targets]
    return {desc.name: desc for desc in registry.load_many(targets)}


def predict_latency(models: Any, targets: Any, *, checkpoint: str | os.PathLike[str] | None = None,
                    breakdown: bool = False, top_ops: int | None = None,
                    graph_store: str | os.PathLike[str] | None = None, batch_size: int | None = None,
                    workers: int = 1, progress: Callable[[int, int], None] | None = None,
                    device: str = "cpu") -> list[LatencyPrediction]:
    """Predicted latency of every model on every target (models outer, targets inner).

    Args:
        models: one or a list of: ONNX path, space string (``nb201:...``), ``@list`` file,
            ``OpGraph`` or Relax ``IRModule``.
        targets: one or a list of target names, aliases, YAML paths or ``TargetDescriptor``s.
        checkpoint: checkpoint directory (default: the shipped one).
        breakdown: also return per-operator latencies (all, or the ``top_ops`` largest).
        batch_size: override the models' batch size (ONNX and spaces).
        progress: ``progress(done, total)`` after each graph lowered (see ``resolve_graphs``).
        device: where the model runs ("cpu", "auto", "cuda", "cuda:N").

    For thousands of models without the breakdown, ``predict_table`` is faster and returns arrays.
    """
    expanded = _expand(models, batch_size)  # a mistyped MODEL fails before the checkpoint loads
    descs = _targets(targets)  # before any lowering: a bad target list fails at once
    predictor = load_predictor(checkpoint, device=device)
    store = _lower_missing(expanded, graph_store=graph_store, batch_size=batch_size, workers=workers,
                           progress=progress)
    graphs = _graphs(expanded, store, batch_size)
    pairs = [(m.key, t) for m in expanded for t in descs]
    result = predictor.predict_detailed(graphs, descs, pairs, breakdown=breakdown)
    adapted = {t: predictor.adaptation_for(desc) is not None for t, desc in descs.items()}
    out = []
    for i, (m, t) in enumerate((m, t) for m in expanded for t in descs):
        ops: list[tuple[int, str, float]] = []
        bounds: dict[int, str] = {}
        if breakdown:
            ops = sorted(((n.id, n.op, float(ms)) for n, ms in zip(graphs[m.key].nodes, result.per_op_ms[i])),
                         key=lambda x: -x[2])[:top_ops]
            if result.bound is not None:
                bounds = {node_id: str(result.bound[i][node_id]) for node_id, _, _ in ops}
        std = None if result.std_log is None else float(result.std_log[i])
        out.append(LatencyPrediction(m.name, t, float(result.latency_ms[i]), std, adapted[t], ops, bounds))
    return out


def predict_table(models: Any, targets: Any, *, checkpoint: str | os.PathLike[str] | None = None,
                  graph_store: str | os.PathLike[str] | None = None, batch_size: int | None = None,
                  workers: int = 1, chunk_models: int = CHUNK_MODELS,
                  progress: Callable[[int, int], None] | None = None,
                  lowering_progress: Callable[[int, int], None] | None = None,
                  device: str = "cpu") -> PredictionTable:
    """Predicted latency of every model on every target, as arrays (the search-loop API).

    Takes the same ``models`` and ``targets`` as ``predict_latency`` and gives the
    same numbers. Models that need TVM are lowered first (``lowering_progress``
    as ``predict_latency``'s ``progress``); then models are resolved, featurized
    and predicted ``chunk_models`` at a time, so memory does not grow with their
    number, and ``progress(done, total)`` counts models predicted after each
    chunk. ``device`` as ``predict_latency``'s. Nothing is printed.
    """
    if chunk_models < 1:
        raise ArgumentError(f"chunk_models must be at least 1, got {chunk_models}")
    expanded = _expand(models, batch_size)
    descs = _targets(targets)
    predictor = load_predictor(checkpoint, device=device)
    store = _lower_missing(expanded, graph_store=graph_store, batch_size=batch_size, workers=workers,
                           progress=lowering_progress)
    names = list(descs)
    latency = np.empty((len(expanded), len(names)))
    std: np.ndarray | None = None
    for start in range(0, len(expanded), chunk_models):
        chunk = expanded[start:start + chunk_models]
        graphs = _graphs(chunk, store, batch_size, featurized=True)
        result = predictor.predict_detailed(graphs, descs, [(m.key, t) for m in chunk for t in names])
        latency[start:start + len(chunk)] = result.latency_ms.reshape(len(chunk), len(names))
        if result.std_log is not None:
            if std is None:
                std = np.empty_like(latency)
            std[start:start + len(chunk)] = result.std_log.reshape(len(chunk), len(names))
        if progress is not None:
            progress(start + len(chunk), len(expanded))
    adapted = np.array([predictor.adaptation_for(descs[t]) is not None for t in names], dtype=bool)
    return PredictionTable([m.name for m in expanded], names, latency, std, adapted)


def read_measurements(path: str | os.PathLike[str]) -> list[tuple[str, float]]:
    """``(MODEL, latency_ms)`` rows of a CSV whose header is exactly ``model`` and ``latency_ms`` (any order).

    Strict on purpose: a decimal comma (``5,1``) splits a number into two fields, and an
    extra column would swallow its second half silently, so unknown columns and rows with
    more or fewer fields than the header are refused, naming ``file:line``. So are empty
    and repeated model names (which of two measurements is meant?). A UTF-8 byte-order mark
    (spreadsheet exports) is accepted.
    """
    import math

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
