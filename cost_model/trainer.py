"""The one optimisation loop behind every trained model in tvm-ledg.

``LatencyPredictor.fit``, the learned baselines, ``LeDGCostModel``'s online
fine-tuning and few-shot adaptation differ only in what they train and how a
batch's loss is computed. They describe that in a ``TrainTask`` (parameters,
a batch-loss closure, optionally a validation score and the weights to keep)
and ``run_training`` does the rest, the same way for all of them:

- epochs over seeded permutations: epoch ``e`` shuffles with
  ``numpy.random.default_rng([seed, e])`` and seeds torch (dropout) with
  ``seed * 100_003 + e``, so the path does not depend on where a run started;
- per step: zero grads, backward, optional gradient-norm clipping, Adam or
  AdamW, optional one-cycle learning-rate schedule;
- after each epoch: a history entry, early stopping on the validation score
  (the best epoch's weights are restored at the end) and, with a
  ``TrainingState``, the whole state written atomically (safetensors + JSON, no
  pickle), so an interrupted run resumed from it reaches the same weights;
- data parallel under ``torchrun`` (``cost_model.distributed``): every process
  draws the same global batch, takes every ``world_size``-th row of it, and the
  trainable modules are wrapped in ``DistributedDataParallel``, which averages
  gradients over the processes. Each process's mean loss is scaled by
  ``world_size * local rows / global rows``, so the averaged gradient is the
  gradient of the mean over the global batch: for a loss that is a mean of
  per-row terms, N processes take the steps one process takes (up to float
  summation order). Terms that couple rows (``latency_loss``'s ranking pairs)
  see only pairs within a process's share. Validation runs on every process
  with identical weights, so early stopping decides identically everywhere;
  only rank 0 writes the training state.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from cost_model import distributed
from cost_model.checkpoint import load_checkpoint, save_checkpoint
from cost_model.early_stopping import EarlyStopping
from targets.errors import ArgumentError, CheckpointError, DataError

__all__ = ["LoopSettings", "TrainTask", "TrainingState", "run_training"]

log = logging.getLogger(__name__)

_OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


@dataclass(frozen=True)
class LoopSettings:
    """How to optimise. ``rows_per_epoch`` (None: all) draws that many rows of each epoch's
    permutation; ``patience`` counts epochs without a better validation score; ``clip_norm``
    None leaves gradients unclipped; ``one_cycle`` anneals the learning rate over all steps."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float = 0.0
    optimizer: str = "adamw"
    clip_norm: float | None = 1.0
    one_cycle: bool = False
    patience: int = 5
    seed: int = 0
    rows_per_epoch: int | None = None

    def __post_init__(self) -> None:
        if self.optimizer not in _OPTIMIZERS:
            raise ArgumentError(f"optimizer {self.optimizer!r}: expected one of {sorted(_OPTIMIZERS)}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ArgumentError(f"training setting {name} must be >= 1, got {getattr(self, name)}")


Batches = Callable[[np.random.Generator], Iterable[np.ndarray]]


@dataclass
class TrainTask:
    """What one training run optimises.

    ``batch_loss(rows)``: the mean loss over these row indices (a scalar tensor).
    ``modules``: switched to training mode each epoch and, under ``torchrun``, wrapped
    together in ``DistributedDataParallel``; ``params`` must be theirs. A task without
    modules (free tensors, as few-shot offsets) is trained by each process alone. ``evaluate()``: a validation score, lower is better
    (None: no validation, no early stopping). ``state`` / ``load_state``: the weights kept
    for the best epoch and written to a ``TrainingState``. ``batches(rng)``: the epoch's
    batches of row indices when they are not chunks of a permutation (e.g. grouped by graph);
    ``steps_per_epoch``: the number of batches ``batches`` always yields (known in advance, so a
    one-cycle schedule and the progress bar can use it).
    """

    params: Sequence[Tensor]
    batch_loss: Callable[[np.ndarray], Tensor]
    num_rows: int
    modules: Sequence[nn.Module] = ()
    evaluate: Callable[[], float] | None = None
    state: Callable[[], dict[str, Tensor]] | None = None
    load_state: Callable[[Mapping[str, Tensor]], None] | None = None
    batches: Batches | None = None
    steps_per_epoch: int | None = None
    history: list[dict[str, float]] = field(default_factory=list)


class _Modules(nn.Module):
    """The trained modules as one module, so DDP sees all their parameters; ``forward`` runs the
    loss closure, which uses those very parameters, inside DDP's forward/backward hooks."""

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        super().__init__()
        self.parts = nn.ModuleList(modules)

    def forward(self, loss: Callable[[np.ndarray], Tensor], rows: np.ndarray) -> Tensor:
        return loss(rows)


def run_training(task: TrainTask, settings: LoopSettings, *, state: "TrainingState | None" = None,
                 progress: bool = False, on_step: Callable[[int, int], None] | None = None,
                 describe: str = "epoch", log_level: int = logging.INFO) -> list[dict[str, float]]:
    """Optimise ``task`` as ``settings`` say; returns (and extends) ``task.history``.

    ``state``: resume from it when it exists, write it after every epoch. ``on_step(done, total)``
    is called after each optimizer step when the number of steps is known in advance. Each
    epoch's history entry is logged at ``log_level`` (short online runs pass DEBUG)."""
    params = [p for p in task.params if p.requires_grad]
    if not params:
        raise DataError("nothing to train: no parameter requires a gradient")
    per_epoch = min(task.num_rows, settings.rows_per_epoch or task.num_rows)
    steps_per_epoch = task.steps_per_epoch or math.ceil(per_epoch / settings.batch_size)
    steps_known = task.batches is None or task.steps_per_epoch is not None
    stepper = _Stepper.create(task, settings, params, steps_per_epoch if steps_known else None, on_step)
    stopper = EarlyStopping(settings.patience)
    start_epoch = 0
    if state is not None and state.exists():
        start_epoch = state.load(task, stepper.opt, stepper.sched, stopper)
        log.info("resuming after epoch %d from %s", start_epoch - 1, state.root)
    show = progress and distributed.is_main_process()
    stepper.done = start_epoch * steps_per_epoch
    for epoch in range(start_epoch, settings.epochs):
        if task.evaluate is not None and stopper.should_stop:
            break
        torch.manual_seed(settings.seed * 100_003 + epoch)
        for module in task.modules:
            module.train()
        rng = np.random.default_rng([settings.seed, epoch])
        batches = (task.batches(rng) if task.batches is not None
                   else _permutation_batches(rng, task.num_rows, per_epoch, settings.batch_size))
        bar = tqdm(batches, desc=f"{describe} {epoch + 1}/{settings.epochs}", disable=not show, leave=False,
                   total=steps_per_epoch if steps_known else None)
        loss_sum, seen = 0.0, 0
        for rows in bar:
            step_loss, shown = stepper.step(task, rows)
            loss_sum, seen = loss_sum + step_loss, seen + len(rows)
            bar.set_postfix(loss=f"{shown:.3f}")
        entry: dict[str, float] = {"epoch": epoch,
                                   "train_loss": _global_mean(loss_sum, seen, stepper.world, params[0].device)}
        if task.evaluate is not None:
            entry["val_log_rmse"] = task.evaluate()
            stopper.update(entry["val_log_rmse"], _state_of(task))
        task.history.append(entry)
        log.log(log_level, "%s %s", describe, entry)
        if show:
            tqdm.write(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in entry.items()))
        if state is not None and distributed.is_main_process():
            state.save(task, stepper.opt, stepper.sched, epoch + 1, stopper)
    if stopper.best_state is not None and task.load_state is not None:
        task.load_state(stopper.best_state)
    return task.history


@dataclass
class _Stepper:
    """One optimizer step on this process's share of a batch: the optimizer, schedule, data-parallel
    split and step counter of a ``run_training`` call."""

    settings: LoopSettings
    params: list[Tensor]
    opt: torch.optim.Optimizer
    sched: Any
    step_fn: Callable[[Callable[[np.ndarray], Tensor], np.ndarray], Tensor]
    world: int
    rank: int
    total_steps: int | None  # None: not known in advance (no schedule, no on_step)
    on_step: Callable[[int, int], None] | None
    done: int = 0

    @classmethod
    def create(cls, task: TrainTask, settings: LoopSettings, params: list[Tensor], steps_per_epoch: int | None,
               on_step: Callable[[int, int], None] | None) -> "_Stepper":
        # free tensors without modules (few-shot offsets) are fitted by each process alone
        world, rank = (distributed.world_size(), distributed.rank()) if task.modules else (1, 0)
        step_fn: Callable[[Callable[[np.ndarray], Tensor], np.ndarray], Tensor] = _call
        if world > 1:
            step_fn = nn.parallel.DistributedDataParallel(_Modules(task.modules), find_unused_parameters=True)
        opt = _OPTIMIZERS[settings.optimizer](params, lr=settings.lr, weight_decay=settings.weight_decay)
        total = None if steps_per_epoch is None else settings.epochs * steps_per_epoch
        sched = None
        if settings.one_cycle:
            if total is None:
                raise DataError("a one-cycle schedule needs a step count known in advance (permutation batches "
                                "or TrainTask.steps_per_epoch)")
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=settings.lr, total_steps=max(total, 1))
        return cls(settings, params, opt, sched, step_fn, world, rank, total, on_step)

    def step(self, task: TrainTask, rows: np.ndarray) -> tuple[float, float]:
        """(this process's summed loss over its rows, the loss to show); every process steps together."""
        local = rows[self.rank::self.world]
        loss_sum = 0.0
        if len(local):
            loss = self.step_fn(task.batch_loss, local)
            loss_sum = float(loss.detach()) * len(local)
            scaled = loss * (len(local) * self.world / len(rows)) if self.world > 1 else loss
        else:  # a batch smaller than the world: this process contributes zero gradients
            scaled = self.step_fn(_zero_loss(self.params), local)
        self.opt.zero_grad()
        scaled.backward(inputs=self.params)
        if self.settings.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.params, self.settings.clip_norm)
        self.opt.step()
        if self.sched is not None:
            self.sched.step()
        self.done += 1
        if self.on_step is not None and self.total_steps is not None:
            self.on_step(self.done, self.total_steps)
        return loss_sum, float(scaled.detach())


def _call(loss: Callable[[np.ndarray], Tensor], rows: np.ndarray) -> Tensor:
    return loss(rows)


def _zero_loss(params: Sequence[Tensor]) -> Callable[[np.ndarray], Tensor]:
    """A loss of exactly 0 that touches every parameter, so DDP's gradient all-reduce still runs."""
    return lambda rows: sum((p * 0).sum() for p in params)


def _permutation_batches(rng: np.random.Generator, num_rows: int, per_epoch: int, batch_size: int) -> Iterator[np.ndarray]:
    order = rng.permutation(num_rows)[:per_epoch]
    for start in range(0, per_epoch, batch_size):
        yield order[start:start + batch_size]


def _global_mean(loss_sum: float, seen: int, world: int, device: torch.device) -> float:
    """The epoch's mean training loss over every process's rows, summed on ``device`` (NCCL reduces CUDA
    tensors only)."""
    if world > 1:
        total = torch.tensor([loss_sum], dtype=torch.float64, device=device)
        torch.distributed.all_reduce(total)
        loss_sum = float(total)
    return loss_sum / max(seen, 1)


def _state_of(task: TrainTask) -> dict[str, Tensor]:
    if task.state is None:
        raise DataError("early stopping needs TrainTask.state (the weights to keep)")
    return task.state()


class TrainingState:
    """Per-epoch training state in ``root`` (a checkpoint directory of kind ``training-state``),
    replaced atomically; ``fingerprint`` names the run, so state of other data or settings is refused."""

    def __init__(self, root: str | os.PathLike[str], fingerprint: str) -> None:
        self.root = Path(root)
        self.fingerprint = fingerprint

    def exists(self) -> bool:
        return (self.root / "config.json").is_file()

    def save(self, task: TrainTask, opt: torch.optim.Optimizer, sched: Any, next_epoch: int,
             stopper: EarlyStopping) -> None:
        tensors = {f"cur.{k}": v for k, v in _state_of(task).items()}
        if stopper.best_state is not None:
            tensors.update({f"best.{k}": v for k, v in stopper.best_state.items()})
        opt_state = opt.state_dict()
        for pid, slots in opt_state["state"].items():
            for name, value in slots.items():
                tensors[f"opt.{pid}.{name}"] = torch.as_tensor(value).cpu()  # loads onto the params' device
        meta = {"fingerprint": self.fingerprint, "next_epoch": next_epoch,
                "best": stopper.best if math.isfinite(stopper.best) else None, "bad_epochs": stopper.bad_epochs,
                "has_best": stopper.best_state is not None, "history": task.history,
                "param_groups": opt_state["param_groups"],
                "scheduler": sched.state_dict() if sched is not None else None}
        save_checkpoint(self.root, tensors, {"kind": "training-state", "model": {}, "encoder": {}, "schemas": {},
                                             "resume": meta})

    def load(self, task: TrainTask, opt: torch.optim.Optimizer, sched: Any, stopper: EarlyStopping) -> int:
        """Restore the weights, optimizer, scheduler, history and ``stopper``; returns the next epoch to run."""
        tensors, config = load_checkpoint(self.root)
        meta = config.get("resume", {})
        if meta.get("fingerprint") != self.fingerprint:
            raise CheckpointError(f"{self.root}: resume state belongs to another run (different data or settings); "
                                  "delete it or choose another output directory")
        if task.load_state is None:
            raise DataError("resuming needs TrainTask.load_state")
        task.load_state({k[4:]: v for k, v in tensors.items() if k.startswith("cur.")})
        slots: dict[int, dict[str, Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("opt."):
                _, pid, name = key.split(".", 2)
                slots.setdefault(int(pid), {})[name] = value
        opt.load_state_dict({"state": slots, "param_groups": meta["param_groups"]})
        if sched is not None:
            sched.load_state_dict(meta["scheduler"])
        task.history[:] = list(meta["history"])
        stopper.best_state = ({k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
                              if meta["has_best"] else None)
        stopper.best = math.inf if meta["best"] is None else float(meta["best"])
        stopper.bad_epochs = int(meta["bad_epochs"])
        return int(meta["next_epoch"])
