"""How additive is latency over kernels? A per-device non-negative fit on kernel-kind counts.

Latency is a sum of kernel times, and kernels of the same kind (operator,
attributes, input and output shapes) take about the same time on a device.
So a network's latency should be close to ``sum_k count_k(network) * tau_k``
with one non-negative time ``tau_k`` per kernel kind and device. This script
fits exactly that, per device, by non-negative least squares on relative error
(``scipy.optimize.nnls`` on rows divided by the measured latency), and reports
how far it gets on the NAS-Bench-201 split the in-domain goal uses (train on the
first ``--train`` of ``numpy.random.default_rng(0).permutation(15625)``, test on
``[1200:6200]``; OneProxy devices: the same permutation restricted to their
1,999 architectures).

Why it matters: it bounds what any per-kernel model (the roofline head sums
kernel times) can reach when it knows each kind's time on the device, and it
is the physical form of the per-device additive baseline (linear space, not
log space). NAS-Bench-201 has 38 kernel kinds, so the fit has 38 numbers per
device. Once-for-All is left out: its 5,000 networks hold about 3,700 kinds,
more than the training rows.

Usage::

    python -m benchmarks.kernel_additivity --out docs/results/kernel_additivity
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from benchmarks.common import md_table, parser, start, write_results
from cost_model.data import load_all
from cost_model.featurize import kind_key
from cost_model.graph import OpGraph
from cost_model.metrics import latency_metrics
from tvm_ledg.networks import network_graph


def kind_counts(graphs: list[OpGraph]) -> tuple[np.ndarray, list[str]]:
    """``(networks, kinds)`` counts of each kernel kind, and the kinds' operator names."""
    kinds: dict[tuple, int] = {}
    ops: list[str] = []
    rows: list[dict[int, int]] = []
    for graph in graphs:
        counts: dict[int, int] = {}
        for node in graph.nodes:
            key = kind_key(node)
            if key not in kinds:
                kinds[key] = len(kinds)
                ops.append(node.op)
            counts[kinds[key]] = counts.get(kinds[key], 0) + 1
        rows.append(counts)
    out = np.zeros((len(graphs), len(kinds)))
    for i, counts in enumerate(rows):
        for k, c in counts.items():
            out[i, k] = c
    return out, ops


def fit_kernel_times(counts: np.ndarray, latency_ms: np.ndarray) -> np.ndarray:
    """Non-negative time per kernel kind minimising the squared relative error."""
    times, _ = nnls(counts / latency_ms[:, None], np.ones(len(latency_ms)))
    return times


def main() -> None:
    ap = parser(__doc__, Path("docs/results/kernel_additivity"))
    ap.add_argument("--train", type=int, default=1000, help="training architectures per device")
    ap.add_argument("--root", default=None, help="public data root (default: $TVM_LEDG_DATA_ROOT, ../shared/data)")
    args, started = start(ap)
    tables = [t for t in load_all(root=args.root) if t.source in ("help-nb201", "oneproxy")]
    cells = list(next(t for t in tables if t.source == "help-nb201").archs)
    counts, ops = kind_counts([network_graph(cell) for cell in cells])
    position = {cell: i for i, cell in enumerate(cells)}
    perm = np.random.default_rng(0).permutation(len(cells))
    results = []
    for table in tables:
        latency = np.full(len(cells), np.nan)
        for arch, ms, ok in zip(table.archs, table.latency_ms, table.valid):
            if ok and ms > 0:
                latency[position[arch]] = ms
        order = perm[~np.isnan(latency[perm])]  # the permutation restricted to measured cells
        cut = {"train": order[:args.train], "test": order[1200:6200]} if table.source == "help-nb201" else \
            {"train": order[:args.train], "test": order[args.train:]}
        times = fit_kernel_times(counts[cut["train"]], latency[cut["train"]])
        pred = counts[cut["test"]] @ times
        truth = latency[cut["test"]]
        metrics = latency_metrics(truth, pred)
        results.append({"device": table.target_alias, "train": len(cut["train"]), "test": len(cut["test"]),
                        "kinds_used": int((times > 0).sum()), **metrics})
    rows = [[r["device"], r["train"], r["test"], r["kinds_used"], f"{r['spearman']:.3f}", f"{r['mape']:.1f}",
             f"{r['median_ape']:.1f}", f"{r['acc10']:.2f}"] for r in results]
    body = "\n".join([
        f"{len(ops)} kernel kinds over the {len(cells):,} NAS-Bench-201 networks (unfused operators, batch 1). "
        "Per device: non-negative time per kind fitted on the training networks, tested on the others.",
        "",
        md_table(["device", "train", "test", "kinds with time > 0", "Spearman", "MAPE %", "median APE %", "Acc10"],
                 rows),
        "",
        f"Mean Spearman {np.mean([r['spearman'] for r in results]):.3f}; median over devices of the median APE "
        f"{np.median([r['median_ape'] for r in results]):.1f} %.",
        "",
        "help:pixel3 is the exception because of its data: about 2 % of its networks are listed far below "
        "1 ms (down to 0.003 ms, see the data README), which no sum of kernel times fits.",
    ])
    write_results(args.out, "Kernel additivity: per-device non-negative kernel times", body,
                  {"settings": {"train": args.train}, "kinds": len(ops), "results": results}, started)


if __name__ == "__main__":
    main()
