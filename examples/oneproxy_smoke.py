"""Smoke experiment (not a benchmark): train on the OneProxy architectures already in a graph store.

Usage: python examples/oneproxy_smoke.py STORE [HELD_OUT_ALIAS] [EPOCHS]

Fill STORE first: write the OneProxy cell strings (``cost_model.data.load_device("oneproxy",
"true_a76").archs``) to a file and run ``tvm-ledg graphs @archs.txt --store STORE --workers 2``.
Architectures are split 65/10/25 (train/val/test) by architecture; one device is held out
entirely and predicted zero-shot from its descriptor. The cost-model benchmarks replace this
script; it only checks the pipeline end to end.
"""

import sys
import time

import torch

import targets
from cost_model.data import arch_split, load_all
from cost_model.graph_store import GraphStore
from cost_model.metrics import aggregate, latency_metrics
from cost_model.predictor import LatencyPredictor, TrainConfig


def main(store_dir: str, held_out: str = "oneproxy:true_640", epochs: int = 10) -> None:
    torch.set_num_threads(2)
    store = GraphStore(store_dir)
    tables = load_all(sources=["oneproxy"])
    archs = [a for a in tables[0].archs if a in store]
    graphs = {a: store[a] for a in archs}
    split = {k: [archs[i] for i in v] for k, v in arch_split(archs, seed=0, test_fraction=0.25, val_fraction=0.1).items()}
    descs = {t.target_alias: targets.load(t.target_alias) for t in tables}
    rows: dict[str, list[tuple[str, str, float]]] = {"train": [], "val": [], "test": [], "zero_shot": []}
    for table in tables:
        measured = {a: float(ms) for a, ms, ok in zip(table.archs, table.latency_ms, table.valid) if ok}
        for name in ("train", "val", "test"):
            for arch in split[name]:
                if arch not in measured:
                    continue
                if table.target_alias != held_out:
                    rows[name].append((arch, table.target_alias, measured[arch]))
                elif name == "test":
                    rows["zero_shot"].append((arch, table.target_alias, measured[arch]))
    print(f"{len(graphs)} graphs, rows: " + ", ".join(f"{k} {len(v)}" for k, v in rows.items()))

    model = LatencyPredictor(
        encoder={"kind": "builtin", "dim": 32},
        model={"dim": 32, "layers": 2, "heads": 4, "dropout": 0.0},
        train=TrainConfig(epochs=epochs, batch_size=64, lr=3e-3),
    )
    start = time.time()
    model.fit(graphs, descs, rows["train"], rows["val"])
    print(f"trained in {time.time() - start:.0f} s, last epoch {model.history_[-1]}")

    def evaluate(subset: list[tuple[str, str, float]]) -> dict[str, float]:
        pred = model.predict(graphs, descs, [(r[0], r[1]) for r in subset])
        return latency_metrics([r[2] for r in subset], pred)

    per_device = []
    for table in tables:
        subset = [r for r in rows["test"] if r[1] == table.target_alias]
        if subset:
            per_device.append(evaluate(subset))
            m = per_device[-1]
            print(f"{table.device:<16} MAPE {m['mape']:6.2f}%  Acc10 {m['acc10']:.3f}  Spearman {m['spearman']:.3f}")
    mean = aggregate(per_device)
    print(f"in-domain mean: MAPE {mean['mape']:.2f}%  Acc10 {mean['acc10']:.3f}  Spearman {mean['spearman']:.3f}")
    zs = evaluate(rows["zero_shot"])
    print(f"zero-shot {held_out}: MAPE {zs['mape']:.2f}%  Spearman {zs['spearman']:.3f}  log-RMSE {zs['log_rmse']:.3f}")


if __name__ == "__main__":
    main(sys.argv[1], *(sys.argv[2:3]), *(int(a) for a in sys.argv[3:4]))
