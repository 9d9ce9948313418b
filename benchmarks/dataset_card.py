"""What a measurement store (or its export) holds and what it cost to collect: the dataset card.

Reads a store or a ``tvm-ledg db export`` file and reports:

* networks per family (with FLOPs and operator counts of their graphs), how
  many are measured on every target, numerically flagged networks, failures;
* per target: measurements, latency range, median within-run CV, how often the
  host gate dropped samples and the worst host slowdown its checks saw, and
  the time spent waiting for a quiet machine;
* collection time: measurements grouped into sittings (a gap of more than
  ``--gap-minutes`` between two measurements ends one), with their wall time,
  so "how long it took" is read off the data rather than remembered.

Nothing is measured; it runs in seconds. Usage::

    python -m benchmarks.dataset_card --data datasets/local-zen3.jsonl.gz --out docs/results/dataset
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import REPO, md_table, open_store, parser, start, write_results


def main() -> None:
    ap = parser(__doc__, REPO / "docs" / "results" / "dataset")
    ap.add_argument("--data", type=Path, required=True, help="measurement store (.sqlite) or export (.jsonl.gz)")
    ap.add_argument("--gap-minutes", type=float, default=20.0, help="a longer pause ends a sitting")
    args, started = start(ap)
    with tempfile.TemporaryDirectory() as tmp, open_store(args.data, Path(tmp)) as store:
        stats = store.stats()
        names = {h: d.name for h, d in store.targets().items()}
        measurements = list(store.measurements())
        families = store.families()
        graphs = {h: store.graph(h) for h in {m.graph_hash for m in measurements}}
    card = summarize(measurements, names, families, graphs, stats, args.gap_minutes * 60)
    write_results(args.out, f"Dataset card: {args.data.name}", render(card, args), {"card": card}, started)
    print(render(card, args))


def summarize(measurements: list[Any], names: dict[str, str], families: dict[str, str], graphs: dict[str, Any],
              stats: dict[str, Any], gap_s: float) -> dict[str, Any]:
    """The card's numbers (JSON-ready) from the store's measurements, graphs and stats."""
    targets = sorted({names[m.target_hash] for m in measurements})
    by_graph: dict[str, set[str]] = defaultdict(set)
    for m in measurements:
        by_graph[m.graph_hash].add(names[m.target_hash])
    per_family: dict[str, list[str]] = defaultdict(list)
    for g in by_graph:
        per_family[families.get(g, "?")].append(g)
    family_rows = {}
    for family, hashes in sorted(per_family.items()):
        flops = np.array([graphs[g].total_flops for g in hashes], dtype=float) / 1e6
        nodes = np.array([graphs[g].num_nodes for g in hashes])
        family_rows[family] = {"networks": len(hashes), "complete": sum(len(by_graph[g]) == len(targets) for g in hashes),
                               "mflops_median": float(np.median(flops)), "mflops_min": float(flops.min()),
                               "mflops_max": float(flops.max()), "nodes_median": float(np.median(nodes))}
    target_rows = {}
    for t in targets:
        ms = [m for m in measurements if names[m.target_hash] == t]
        lat = np.array([m.median_ms for m in ms])
        env = [m.environment for m in ms]
        slowdowns = [e["host_slowdown"] for e in env if e.get("host_slowdown") is not None]
        target_rows[t] = {
            "measurements": len(ms), "ms_p5": float(np.percentile(lat, 5)), "ms_median": float(np.median(lat)),
            "ms_p95": float(np.percentile(lat, 95)), "cv_median": float(np.median([m.cv for m in ms])),
            "samples_median": float(np.median([m.runs for m in ms])),
            "host_checked": len(slowdowns),
            "with_dropped_samples": sum(1 for e in env if (e.get("dropped_samples") or 0) > 0),
            "worst_host_slowdown_p95": float(np.percentile(slowdowns, 95)) if slowdowns else None,
            "waited_hours": sum(e.get("waited_s") or 0.0 for e in env) / 3600,
        }
    return {"networks": len(by_graph), "targets": targets, "measurements": len(measurements),
            "complete_networks": sum(len(v) == len(targets) for v in by_graph.values()),
            "numerics_flagged": stats["numerics_flagged"], "failures": stats["failures"],
            "per_family": family_rows, "per_target": target_rows,
            "sittings": sittings(sorted(m.created for m in measurements), gap_s)}


def sittings(created: list[float], gap_s: float) -> list[dict[str, Any]]:
    """Runs of measurements without a pause longer than ``gap_s``: start (UTC), hours, measurements."""
    out: list[dict[str, Any]] = []
    start = prev = None
    count = 0
    for t in created:
        if start is not None and t - prev > gap_s:
            out.append(_sitting(start, prev, count))
            start, count = None, 0
        if start is None:
            start = t
        prev, count = t, count + 1
    if start is not None:
        out.append(_sitting(start, prev, count))
    return out


def _sitting(start: float, end: float, count: int) -> dict[str, Any]:
    utc = datetime.datetime.fromtimestamp(start, datetime.timezone.utc)
    return {"start": utc.strftime("%Y-%m-%d %H:%M"), "hours": (end - start) / 3600, "measurements": count}


def render(card: dict[str, Any], args: argparse.Namespace) -> str:
    hours = sum(s["hours"] for s in card["sittings"])
    lines = [
        f"{card['networks']} networks ({card['complete_networks']} measured on all {len(card['targets'])} targets), "
        f"{card['measurements']} measurements; {card['numerics_flagged']} networks flagged by the numerical "
        f"cross-check; failures by stage: {card['failures'] or 'none'}.",
        "",
        "## Networks per family", "",
        md_table(["family", "networks", "on every target", "MFLOPs median", "MFLOPs min", "MFLOPs max",
                  "operators (median)"],
                 [[f, r["networks"], r["complete"], r["mflops_median"], r["mflops_min"], r["mflops_max"],
                   r["nodes_median"]] for f, r in card["per_family"].items()]),
        "",
        "## Per target", "",
        "Latency: the measurement's median. Dropped samples: the host gate left some out (the measurement "
        "kept its other samples). Worst host slowdown: per measurement the highest slowdown its host checks "
        "saw, 95th percentile over measurements; samples next to a check above the gate (1.35x; 1.25x for "
        "the first networks) were dropped. Waited: time spent waiting for a quiet machine within a measurement.",
        "",
        md_table(["target", "measurements", "ms p5", "ms median", "ms p95", "CV median", "samples median",
                  "with dropped samples", "worst host slowdown p95", "waited h"],
                 [[t, r["measurements"], r["ms_p5"], r["ms_median"], r["ms_p95"], r["cv_median"],
                   r["samples_median"], f"{r['with_dropped_samples']}/{r['host_checked']}",
                   "-" if r["worst_host_slowdown_p95"] is None else r["worst_host_slowdown_p95"],
                   r["waited_hours"]] for t, r in card["per_target"].items()]),
        "",
        f"## Collection time: {hours:.1f} h of collector wall time in {len(card['sittings'])} sittings", "",
        f"A pause of more than {args.gap_minutes:.0f} minutes between two measurements ends a sitting "
        "(the collector was stopped, or waited that long for a quiet host).",
        "",
        md_table(["start (UTC)", "hours", "measurements"],
                 [[s["start"], s["hours"], s["measurements"]] for s in card["sittings"]]),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
