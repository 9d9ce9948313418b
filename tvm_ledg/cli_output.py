"""What the CLI prints and writes besides the library's own files: tables, model labels, progress bars, CSV.

Kept apart from the command drivers in :mod:`tvm_ledg.cli` so that a driver
reads as "call the library, then show the result", and so that the formatting
can be tested without parsing arguments.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from cost_model.graph import OpGraph
from cost_model.io import write_text_atomic

__all__ = [
    "MAX_PRINTED_ROWS",
    "MODEL_WIDTH",
    "format_graph_table",
    "model_labels",
    "prediction_labels",
    "print_predictions",
    "progress_bar",
    "write_predictions_csv",
]


def format_graph_table(graph: OpGraph, limit: int | None = None) -> str:
    """Human summary of an ``OpGraph``: one row per node, then the totals."""
    rows = [f"{'id':>4}  {'op':<28} {'output':<22} {'MFLOPs':>10} {'params':>9}  inputs"]
    nodes = graph.nodes if limit is None else graph.nodes[:limit]
    for node in nodes:
        out = "x".join(str(d) for d in node.outputs[0].shape) if node.outputs else "-"
        op = node.op if not node.members else f"{node.op}[{'+'.join(node.members)}]"
        parents = ",".join(str(p) for p in graph.parents(node.id)) or "-"
        rows.append(f"{node.id:>4}  {op[:28]:<28} {out[:22]:<22} {node.flops / 1e6:>10.3f} {node.params:>9}  {parents}")
    if limit is not None and graph.num_nodes > limit:
        rows.append(f"  ... {graph.num_nodes - limit} more nodes (use --limit 0 for all)")
    s = graph.summary()
    rows.append("")
    rows.append(
        f"{s['name']}: {s['nodes']} {'fused kernels' if graph.fused else 'operators'}, {s['edges']} edges, "
        f"depth {s['depth']}, {s['flops'] / 1e6:.2f} MFLOPs ({s['macs'] / 1e6:.2f} MMACs), "
        f"{s['params'] / 1e6:.4f} M params, hash {s['hash']}"
    )
    return "\n".join(rows)


MAX_PRINTED_ROWS = 50  # predict prints its table up to this many (model, target) rows, or with --show


def prediction_labels(results: Sequence[Any], wide: bool) -> dict[str, str]:
    """Each model's label in the table and the plot: its whole name with ``wide``, else :func:`model_labels`."""
    names = list(dict.fromkeys(r.model for r in results))
    return {name: name for name in names} if wide else model_labels(names, MODEL_WIDTH)


def print_predictions(results: Sequence[Any], *, wide: bool, top: int) -> None:
    """The predictions as a table on stdout: models numbered in the order given, operators under each row."""
    index = {name: i for i, name in enumerate(dict.fromkeys(r.model for r in results), start=1)}
    labels = prediction_labels(results, wide)
    model_w = max([5, *(len(label) for label in labels.values())])
    target_w = max([6, *(len(r.target) for r in results)])
    print(f"{'#':>4}  {'model':<{model_w}} {'target':<{target_w}} {'latency ms':>11} {'x/ std':>7}")
    for r in results:
        spread = "-" if r.std_log is None else f"{math.exp(r.std_log):.2f}"
        print(f"{index[r.model]:>4}  {labels[r.model]:<{model_w}} {r.target:<{target_w}} {r.latency_ms:>11.4f} "
              f"{spread:>7}" + ("  (adapted)" if r.adapted else ""))
        for node_id, op, ms in r.operators[:top]:
            print(f"      {node_id:>5} {op:<36} {ms:>11.4f} ms  {100 * ms / r.latency_ms:5.1f}%  "
                  f"{r.bounds.get(node_id, '')}".rstrip())


MODEL_WIDTH = 48  # model column of the predict table without --wide
_TOKEN = re.compile(r"[^|/,:]*[|/,:]?")  # a name's parts: NAS cell edges, path components, list items


def model_labels(names: Sequence[str], width: int) -> dict[str, str]:
    """A label of at most ``width`` characters for each name, keeping the parts that tell it from the others.

    Names that fit are kept whole. Models from one space share long runs (two
    NAS-Bench-201 cells may differ in one edge in the middle), so a longer name is
    cut into parts at ``|``, ``/``, ``,`` and ``:`` and keeps the fewest parts
    that tell it from every other name (chosen greedily), then more parts from
    the left while the label fits; ``...`` marks each run left out. A lone name
    keeps its end (a file name). Labels are meant to be read, not parsed: the
    table's ``#`` column and ``--wide`` identify models exactly.
    """
    distinct = list(dict.fromkeys(names))
    parts = {name: [t for t in _TOKEN.findall(name) if t] for name in distinct}
    labels: dict[str, str] = {}
    for name in distinct:
        if len(name) <= width:
            labels[name] = name
            continue
        if len(distinct) == 1:
            labels[name] = "..." + name[-(width - 3):]
            continue
        mine = parts[name]
        others = [parts[o] for o in distinct if o != name]
        keep: set[int] = set()
        while others:  # greedily, the part that tells this name from the most names not told apart yet
            told = [sum(i >= len(o) or o[i] != p for o in others) for i, p in enumerate(mine)]
            best = max(range(len(mine)), key=lambda i: (told[i], -i))
            if told[best] == 0 or len(_join_parts(mine, keep | {best})) > width:
                break  # told apart from all (or a prefix of another name), or no room for more
            keep.add(best)
            others = [o for o in others if best < len(o) and o[best] == mine[best]]
        for i in range(len(mine)):
            if i not in keep and len(_join_parts(mine, keep | {i})) <= width:
                keep.add(i)
        label = _join_parts(mine, keep)
        labels[name] = label if len(label) <= width else label[: width - 3] + "..."
    return labels


def _join_parts(parts: Sequence[str], keep: set[int]) -> str:
    out = [p if i in keep else "..." for i, p in enumerate(parts)]
    return "".join(p for i, p in enumerate(out) if not (p == "..." and i and out[i - 1] == "..."))


@contextlib.contextmanager
def progress_bar(desc: str, unit: str) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback drawing a tqdm bar on stderr (a terminal only), opened on first use."""
    from tqdm import tqdm

    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=desc, unit=unit, disable=None)
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield progress
    finally:
        if bar is not None:
            bar.close()


def write_predictions_csv(path: Path, results, breakdown: bool) -> None:
    """The predictions (or, with ``breakdown``, one row per operator) as CSV, written atomically."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    if breakdown:
        writer.writerow(["model", "target", "latency_ms", "node_id", "op", "op_ms"])
        for r in results:
            for node_id, op, ms in sorted(r.operators):
                writer.writerow([r.model, r.target, f"{r.latency_ms:.6g}", node_id, op, f"{ms:.6g}"])
    else:
        writer.writerow(["model", "target", "latency_ms", "std_log"])
        for r in results:
            writer.writerow([r.model, r.target, f"{r.latency_ms:.6g}", "" if r.std_log is None else f"{r.std_log:.4g}"])
    write_text_atomic(path, buf.getvalue())
