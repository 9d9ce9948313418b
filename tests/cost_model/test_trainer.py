"""The shared training loop: exact resume, early stopping, and 2-process data parallel = 1 process."""

from __future__ import annotations

import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from cost_model import distributed
from cost_model.trainer import LoopSettings, TrainingState, TrainTask, run_training
from targets.errors import CheckpointError

X = torch.linspace(-1, 1, 9 * 3).reshape(9, 3)
Y = X @ torch.tensor([0.5, -1.0, 2.0]) + 0.3


def _toy(seed: int = 0, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 8), nn.Dropout(dropout), nn.Tanh(), nn.Linear(8, 1))


def _task(module: nn.Module, evaluate=None) -> TrainTask:
    def batch_loss(rows: np.ndarray) -> torch.Tensor:
        idx = torch.from_numpy(rows)
        return nn.functional.mse_loss(module(X[idx]).squeeze(-1), Y[idx])

    return TrainTask(params=list(module.parameters()), batch_loss=batch_loss, num_rows=len(X), modules=[module],
                     evaluate=evaluate, state=module.state_dict, load_state=module.load_state_dict)


def _val_score(module: nn.Module):
    def evaluate() -> float:
        module.eval()
        with torch.no_grad():
            return float(nn.functional.mse_loss(module(X).squeeze(-1), Y))

    return evaluate


SETTINGS = LoopSettings(epochs=6, batch_size=4, lr=0.05, weight_decay=1e-3, one_cycle=True, seed=7)


def test_interrupted_run_resumes_to_exactly_the_same_weights(tmp_path):
    straight = _toy(dropout=0.2)
    history = run_training(_task(straight, _val_score(straight)), SETTINGS)

    partial = _toy(dropout=0.2)
    score = _val_score(partial)
    calls = []

    def crash_in_third_validation() -> float:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return score()

    state = TrainingState(tmp_path / "state", "run-1")
    with pytest.raises(KeyboardInterrupt):
        run_training(_task(partial, crash_in_third_validation), SETTINGS, state=state)
    resumed = _toy(seed=1, dropout=0.2)  # other initial weights: all must come from the state
    resumed_history = run_training(_task(resumed, _val_score(resumed)), SETTINGS, state=state)
    assert resumed_history == history and [h["epoch"] for h in history] == list(range(6))
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    with pytest.raises(CheckpointError, match="another run"):
        run_training(_task(_toy()), SETTINGS, state=TrainingState(tmp_path / "state", "run-2"))


def test_early_stopping_stops_after_patience_and_keeps_the_best_epoch():
    module = _toy()
    scores = iter([3.0, 2.0, 1.0, 4.0, 5.0, 6.0])
    kept = {}

    def evaluate() -> float:
        score = next(scores)
        if score == 1.0:
            kept.update({k: v.clone() for k, v in module.state_dict().items()})
        return score

    settings = LoopSettings(epochs=6, batch_size=4, lr=0.05, patience=2)
    history = run_training(_task(module, evaluate), settings)
    assert [h["epoch"] for h in history] == [0, 1, 2, 3, 4]
    assert all(torch.equal(v, module.state_dict()[k]) for k, v in kept.items())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    """One of ``world`` processes: gloo group, the toy task, rank 0 saves the weights and history."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    module = _toy()
    history = run_training(_task(module), SETTINGS)
    if rank == 0:
        save_file({k: v.contiguous() for k, v in module.state_dict().items()}, out,
                  metadata={"loss": json.dumps([h["train_loss"] for h in history])})
    distributed.shutdown()  # meets the other process first: leaving alone can abort gloo


def test_two_processes_take_the_steps_one_process_takes(tmp_path):
    """9 rows in batches of 4: the last batch has one row, so one process contributes nothing to it."""
    single = _toy()
    history = run_training(_task(single), SETTINGS)
    out = tmp_path / "ddp.safetensors"
    mp.spawn(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    weights = load_file(out)
    for key, value in single.state_dict().items():
        torch.testing.assert_close(weights[key], value, rtol=0, atol=1e-6)
    with safe_open(out, "pt") as f:
        losses = json.loads(f.metadata()["loss"])
    np.testing.assert_allclose(losses, [h["train_loss"] for h in history], rtol=1e-6)
