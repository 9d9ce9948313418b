"""Prediction and training speed of a checkpoint on this machine (issue 3, benchmark 6).

Measures, for NAS-Bench-201 graphs from a graph store:

* warm batched predictions per second, from featurized graphs (the NAS inner
  loop: the same architectures scored on many targets) and from ``OpGraph``s
  (featurization included);
* time to first prediction from a cold process: ``tvm-ledg predict`` of one
  space string with an empty graph cache (TVM import + lowering + checkpoint
  load + prediction) and with the graph already cached;
* training time per 1,000 rows;
* peak resident memory of this process.

Usage::

    python benchmarks/speed.py --graph-store .cache/graphs --out docs/results/speed
"""

from __future__ import annotations

import argparse
import itertools
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import REPO, md_table, write_results

import targets
from cost_model.graph_store import GraphStore
from cost_model.predictor import LatencyPredictor, TrainConfig
from tvm_ledg.predict import DEFAULT_CHECKPOINT

SPEC = "nb201:|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def _nb201_graphs(store: GraphStore, n: int) -> dict:
    import gzip
    import json

    out = {}
    for path in sorted(store.root.glob("*/*.json.gz")):
        with gzip.open(path) as f:
            spec = json.loads(f.read())["spec"]
        if spec.startswith("nb201:"):
            out[spec] = store[spec]
        if len(out) == n:
            break
    return out


def _cold_predict(graph_store: Path | None, checkpoint: Path) -> float:
    cmd = [sys.executable, "-m", "tvm_ledg.cli", "predict", SPEC, "-t", "help:pixel3", "--checkpoint", str(checkpoint)]
    if graph_store is not None:
        cmd += ["--graph-store", str(graph_store)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=REPO)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graph-store", type=Path, required=True)
    ap.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    ap.add_argument("--out", type=Path, default=Path("docs/results/speed"))
    ap.add_argument("--graphs", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    graphs = _nb201_graphs(GraphStore(args.graph_store), args.graphs)
    keys = sorted(graphs)
    model = LatencyPredictor.from_pretrained(args.checkpoint)
    descs = {d: targets.load(d) for d in ("help:pixel3", "help:1080ti_1")}
    descs = {d.name: d for d in descs.values()}
    names = sorted(descs)
    rows = []

    t0 = time.perf_counter()
    model.predict(graphs, descs, [(k, names[0]) for k in keys])
    cold_featurize = time.perf_counter() - t0
    rows.append(["predict from OpGraphs (featurize + predict), batch 256", len(keys), len(keys) / cold_featurize])
    for batch in (64, 256, 1024):
        pairs = [(k, t) for k, t in itertools.product(keys, names)]
        model.predict(graphs, descs, pairs[:batch], batch_size=batch)  # warm-up
        t0 = time.perf_counter()
        model.predict(graphs, descs, pairs, batch_size=batch)
        rate = len(pairs) / (time.perf_counter() - t0)
        rows.append([f"warm predict, featurized graphs, batch {batch}", len(pairs), rate])
    nodes = float(np.mean([graphs[k].num_nodes for k in keys]))

    train_rows = [(k, names[i % 2], 1.0 + i % 7) for i, k in enumerate(keys)]
    trainer = LatencyPredictor(encoder=model.encoder, model={k: v for k, v in model.model_.config.to_dict().items()
                                                                  if k not in ("text_dim", "num_node_features",
                                                                               "num_target_features")},
                               train=TrainConfig(epochs=1, batch_size=64), feature_cache=model.feature_cache)
    t0 = time.perf_counter()
    trainer.fit(graphs, descs, train_rows)
    train_rate = len(train_rows) / (time.perf_counter() - t0)
    rows.append(["training (forward + backward + step), batch 64", len(train_rows), train_rate])

    with tempfile.TemporaryDirectory() as empty:
        cold_lower = _cold_predict(Path(empty), args.checkpoint)
        warm_cache = _cold_predict(Path(empty), args.checkpoint)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    body = [
        f"Checkpoint `{args.checkpoint.relative_to(REPO) if args.checkpoint.is_relative_to(REPO) else args.checkpoint}`"
        f" ({model.model_.config.layers} layers, width {model.model_.config.dim}); {len(keys)} NAS-Bench-201 graphs, "
        f"{nodes:.0f} operators each on average.",
        "",
        md_table(["what", "rows", "per second"], rows),
        "",
        md_table(["cold process", "seconds"], [
            ["`tvm-ledg predict` one space string, empty graph cache (TVM import + lowering + load + predict)",
             cold_lower],
            ["`tvm-ledg predict` one space string, graph cached", warm_cache],
        ]),
        "",
        f"Peak resident memory of the benchmark process: {peak_mb:.0f} MiB.",
    ]
    write_results(args.out, "Speed", "\n".join(body),
                  {"rates": {r[0]: r[2] for r in rows}, "cold_predict_s": cold_lower, "cached_predict_s": warm_cache,
                   "peak_rss_mib": peak_mb, "mean_nodes": nodes, "graphs": len(keys)}, started)
    print("\n".join(body))


if __name__ == "__main__":
    main()
