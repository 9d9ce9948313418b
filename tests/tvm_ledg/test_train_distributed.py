"""`tvm-ledg train` under `torchrun --nproc_per_node 2` (gloo on CPU): the same command, rank 0 writes."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cost_model.predictor import LatencyPredictor

REPO = Path(__file__).resolve().parents[2]
DATASET = REPO / "datasets" / "local-zen3.jsonl.gz"


def _subset(source: Path, out: Path, networks: int) -> None:
    """The first ``networks`` networks of a measured export, with their graphs and measurements."""
    with gzip.open(source, "rt") as f:
        records = [json.loads(line) for line in f]
    kept = {r["graph_hash"] for r in records if r["kind"] == "network"}
    kept = set(sorted(kept)[:networks])
    keep = [r for r in records if r["kind"] in ("meta", "target")
            or (r["kind"] == "graph" and r["hash"] in kept)
            or (r["kind"] in ("network", "measurement") and r["graph_hash"] in kept)]
    counts = {kind: sum(r["kind"] == kind for r in keep) for kind in ("graph", "measurement", "network", "target")}
    keep.append({"kind": "end", "counts": {"failure": 0, **counts}})
    with gzip.open(out, "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in keep)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None, reason="no torchrun")
def test_train_runs_unchanged_under_torchrun_with_two_processes(tmp_path):
    data = tmp_path / "zen3-small.jsonl.gz"
    _subset(DATASET, data, networks=24)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"sources": [], "measured": [str(data)], "split": {"seed": 0, "test_fraction": 0.2,
                                                                    "val_fraction": 0.2}},
        "encoder": {"kind": "builtin", "dim": 16, "vocab_size": 256},
        "model": {"dim": 16, "layers": 1, "heads": 2, "dropout": 0.0},
        "train": {"epochs": 2, "batch_size": 8},
    }))
    out = tmp_path / "ckpt"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    torchrun = Path(sys.executable).with_name("torchrun")
    done = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "tvm_ledg.cli",
                           "train", "--config", str(config), "--out", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained on") == 1, done.stdout  # one process reports
    assert not (tmp_path / "ckpt.resume").exists()
    model = LatencyPredictor.from_pretrained(out)
    assert [h["epoch"] for h in model.history_] == [0, 1]
