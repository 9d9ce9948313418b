"""LatencyPredictor end to end on a toy task: it learns, round-trips, and refuses bad checkpoints."""

import numpy as np
import pytest

import targets
from cost_model.graph import OpGraph, OpNode, TensorSpec
from cost_model.predictor import LatencyPredictor, TrainConfig
from targets.errors import CheckpointError

TARGETS = {name: targets.load(name) for name in ("gtx1080ti-pytorch-fp32-b1", "pixel3-tflite")}
SCALE = {"gtx1080ti-pytorch-fp32-b1": 0.05, "pixel3-tflite": 2.0}


def _chain(widths: list[int]) -> OpGraph:
    nodes = []
    for i, c in enumerate(widths):
        t_in, t_out = TensorSpec((1, c, 16, 16), "float32"), TensorSpec((1, c, 16, 16), "float32")
        macs = c * c * 9 * 256
        nodes.append(OpNode(i, "nn.conv2d", attrs={"strides": [1, 1]}, inputs=[t_in, TensorSpec((c, c, 3, 3), "float32")],
                            outputs=[t_out], flops=2 * macs, macs=macs, params=c * c * 9))
    return OpGraph(nodes=nodes, edges=[(i, i + 1) for i in range(len(widths) - 1)], output_nodes=[len(widths) - 1])


def _data(seed: int):
    rng = np.random.default_rng(seed)
    graphs, rows = {}, []
    for g in range(40):
        widths = [int(w) for w in rng.choice([8, 16, 32, 64], size=int(rng.integers(2, 6)))]
        key = f"g{seed}-{g}"
        graphs[key] = _chain(widths)
        for t, s in SCALE.items():
            rows.append((key, t, s * graphs[key].total_flops / 1e6))
    return graphs, rows


def test_fit_learns_and_round_trips(tmp_path):
    graphs, rows = _data(0)
    val_graphs, val_rows = _data(1)
    graphs.update(val_graphs)
    cfg = TrainConfig(epochs=25, batch_size=16, lr=3e-3, seed=0)
    model = LatencyPredictor(encoder={"kind": "builtin", "dim": 16, "vocab_size": 256},
                             model={"dim": 32, "layers": 2, "heads": 4, "dropout": 0.0}, train=cfg)
    model.fit(graphs, TARGETS, rows, val_rows)
    pairs = [(r[0], r[1]) for r in val_rows]
    truth = np.array([r[2] for r in val_rows])
    pred = model.predict(graphs, TARGETS, pairs)
    log_rmse = float(np.sqrt(np.mean((np.log(pred) - np.log(truth)) ** 2)))
    first = model.history_[0]["val_log_rmse"]
    print("val log-RMSE first epoch", first, "final", log_rmse)
    assert log_rmse < 0.5 * first, (first, log_rmse)
    assert log_rmse < 0.5  # within a factor ~1.6 on unseen graphs; targets differ by 40x
    model.save_pretrained(tmp_path / "ckpt")
    again = LatencyPredictor.from_pretrained(tmp_path / "ckpt")
    np.testing.assert_allclose(again.predict(graphs, TARGETS, pairs), pred, rtol=1e-5)


def test_unfitted_and_corrupted(tmp_path):
    with pytest.raises(CheckpointError, match="not fitted"):
        LatencyPredictor().predict({}, TARGETS, [])
    (tmp_path / "ckpt").mkdir()
    with pytest.raises(CheckpointError, match="missing"):
        LatencyPredictor.from_pretrained(tmp_path / "ckpt")
