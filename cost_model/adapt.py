"""Few-shot adaptation of a trained ``LatencyPredictor`` to one target from k measurements.

Four candidates are compared, all on the k given samples only:

* ``zero-shot``: the model as trained (the descriptor alone);
* ``calibrated``: ``log y = a + b log ŷ`` fitted by least squares in log space,
  with ``b`` shrunk towards 1 (ridge) so that a handful of samples cannot flip
  the ranking; with fewer than 4 samples only ``a`` is fitted;
* ``offset+calibrated``: a vector added to the target's conditioning (the
  target token and every FiLM layer see it) is fine-tuned by gradient descent
  on the samples with an L2 pull towards 0, then calibrated as above. Unlike
  calibration it can change the ranking of architectures.
* ``reference``: the target is predicted as one of the training targets (the
  one whose calibrated predictions fit the samples best) and calibrated. The
  model knows its training targets far better than it extrapolates to a new
  one, so on hardware unlike any descriptor it has seen, a similar training
  target's ranking is often the better guess: a proxy device that needs no
  measurement table. The choice of training target is made inside each
  cross-validation fold, so its cross-validated error is honest. It needs k >= 5
  and a model trained with per-target offsets (``TrainConfig.target_offsets``),
  whose checkpoint names its training targets.

The candidate with the lowest k-fold cross-validated log-RMSE is chosen; if its
in-sample log-RMSE is above the zero-shot one, zero-shot is kept. One
measurement cannot be cross-validated; it sets the scale (``calibrated`` with
only ``a``), the honest best a single number allows. Hence an
adaptation is never worse than zero-shot on the samples it was given (tested).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cost_model.graph import OpGraph
from cost_model.ledgformer import LeDGOutput
from cost_model.loglinear import fit_loglinear
from cost_model.losses import latency_loss
from cost_model.predictor import Adaptation, LatencyPredictor
from cost_model.trainer import LoopSettings, TrainTask, run_training
from targets.errors import DataError
from targets.schema import TargetDescriptor

__all__ = ["adapt", "fit_calibration"]

Sample = tuple[str, float]  # (graph key, measured latency in ms)
Progress = Callable[[int, int], None]  # (steps done, steps in all)


def fit_calibration(log_pred: np.ndarray, log_true: np.ndarray, ridge: float = 1.0) -> tuple[float, float]:
    """``(a, b)`` of ``log_true ≈ a + b·log_pred`` with the slope shrunk towards 1 (``fit_loglinear``)."""
    return fit_loglinear(log_pred, log_true, ridge)


def _log_rmse(log_pred: np.ndarray, log_true: np.ndarray) -> float:
    return float(np.sqrt(np.mean((log_pred - log_true) ** 2)))


def _fit_offsets(predictor: LatencyPredictor, desc: TargetDescriptor, keys: Sequence[str], y: np.ndarray,
                 subsets: Sequence[np.ndarray], graphs: Mapping[str, OpGraph], steps: int, lr: float, l2: float,
                 seed: int, progress: Progress | None) -> torch.Tensor:
    """One offset per subset of the samples, ``(len(subsets), dim)``, fitted in one batch.

    Each offset sees only its own subset's loss and Adam is elementwise, so fitting them
    together gives the offsets separate fits would, for one forward and backward pass per
    step instead of one per subset (cross-validation folds cost almost nothing extra).
    Gradients flow to the offsets only: the model's weights are not touched. One step per
    epoch of the shared loop (``cost_model.trainer``), Adam, no clipping."""
    model = predictor.model_
    rows = np.concatenate(subsets)
    owner = torch.from_numpy(np.repeat(np.arange(len(subsets)), [len(s) for s in subsets]))
    bounds = np.cumsum([0, *(len(s) for s in subsets)])
    offsets = torch.zeros(len(subsets), model.config.dim, requires_grad=True)
    target = torch.tensor(y[rows], dtype=torch.float32, device=predictor.device_)
    row_keys = [keys[i] for i in rows]

    def full_batch_loss(idx: np.ndarray) -> torch.Tensor:
        """Every sample in every step (``idx`` is a permutation of all of them): k is small."""
        out = predictor.forward(row_keys, [desc] * len(rows), graphs, offsets=offsets[owner])
        loss = l2 * offsets.pow(2).sum()
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            part = LeDGOutput(out.latency_ms[lo:hi], out.log_latency_ms[lo:hi], out.per_op_ms,
                              None if out.log_var is None else out.log_var[lo:hi])
            loss = loss + latency_loss(part, target[lo:hi], huber_delta=None, rank_weight=0.5).total
        return loss

    was_training = model.training
    model.eval()  # no dropout: the k samples are all there is
    try:
        run_training(TrainTask(params=[offsets], batch_loss=full_batch_loss, num_rows=len(rows)),
                     LoopSettings(epochs=steps, batch_size=len(rows), lr=lr, optimizer="adam", clip_norm=None,
                                  seed=seed), on_step=progress, log_level=logging.DEBUG)
    finally:
        model.train(was_training)
    return offsets.detach()


@torch.no_grad()
def _log_predict_grid(predictor: LatencyPredictor, descs: Sequence[TargetDescriptor], keys: Sequence[str],
                      graphs: Mapping[str, OpGraph], offsets: torch.Tensor) -> np.ndarray:
    """``(len(descs), len(keys))`` log-latencies of every sample under each (descriptor, offset) pair, in
    one batch. The offsets are explicit, so no adaptation stored for a descriptor ever leaks in."""
    predictor.model_.eval()
    n = len(keys)
    out = predictor.forward(list(keys) * len(descs), [d for d in descs for _ in range(n)], graphs,
                            offsets=offsets.repeat_interleave(n, dim=0))
    return out.log_latency_ms.double().cpu().numpy().reshape(len(descs), n)


def _best_reference(as_ref: np.ndarray, log_y: np.ndarray, idx: np.ndarray) -> int:
    """The training target whose predictions, calibrated on the samples ``idx``, fit them best."""
    errors = []
    for pred in as_ref:
        a, b = fit_calibration(pred[idx], log_y[idx])
        errors.append(_log_rmse(a + b * pred[idx], log_y[idx]))
    return int(np.argmin(errors))


@dataclass
class _Candidate:
    """One way to adapt: its cross-validated log-RMSE and, fitted on all samples, the log predictions the
    calibration maps (plus the offset or reference target that produced them)."""

    cv: float
    log_pred: np.ndarray
    offset: torch.Tensor | None = None
    reference: TargetDescriptor | None = None

    def calibration(self, log_y: np.ndarray) -> tuple[float, float]:
        return fit_calibration(self.log_pred, log_y)

    def in_sample(self, log_y: np.ndarray) -> float:
        a, b = self.calibration(log_y)
        return _log_rmse(a + b * self.log_pred, log_y)


def _cv_error(predict: Callable[[int, np.ndarray], np.ndarray], log_y: np.ndarray,
              fit_sets: Sequence[np.ndarray], splits: Sequence[np.ndarray]) -> float:
    """Cross-validated log-RMSE of "predict, then calibrate": ``predict(fold, fit_idx)`` may use only the
    fold's fitting samples; the calibration is fitted on them and scored on the held-out ones."""
    errors = []
    for fold, (fit_idx, held) in enumerate(zip(fit_sets, splits)):
        pred = predict(fold, fit_idx)
        a, b = fit_calibration(pred[fit_idx], log_y[fit_idx])
        errors.append((a + b * pred[held] - log_y[held]) ** 2)
    return float(np.sqrt(np.mean(np.concatenate(errors))))


def _check_samples(desc: TargetDescriptor, samples: Sequence[Sample], graphs: Mapping[str, OpGraph]) -> None:
    if not samples:
        raise DataError(f"{desc.name}: adaptation needs at least one measured (model, latency) pair")
    for key, ms in samples:
        if not (math.isfinite(ms) and ms > 0):
            raise DataError(f"{desc.name}: measured latency of {key!r} is {ms!r}; it must be finite and > 0 ms")
        if key not in graphs:
            raise DataError(f"{desc.name}: no graph for measured model {key!r}")


def adapt(predictor: LatencyPredictor, desc: TargetDescriptor, samples: Sequence[Sample],
          graphs: Mapping[str, OpGraph], *, steps: int = 60, lr: float = 0.05, l2: float = 1e-2,
          folds: int = 5, seed: int = 0, offset: bool = True, reference: bool = True,
          progress: Progress | None = None) -> Adaptation:
    """Adapt ``predictor`` to ``desc`` from measured ``samples``; stores and returns the ``Adaptation``.

    ``offset=False`` leaves out the fine-tuned and reference candidates: calibration only, which costs
    one forward pass over the samples (used to calibrate the training targets on hundreds of samples).
    ``reference=False`` leaves out only predicting the target as a training target (module docstring).
    ``progress(done, total)`` is called after each offset fine-tuning step."""
    predictor._check_fitted()
    _check_samples(desc, samples, graphs)
    keys = [k for k, _ in samples]
    log_y = np.log([ms for _, ms in samples])
    k = len(samples)
    base = _log_predict_grid(predictor, [desc], keys, graphs, torch.zeros(1, predictor.model_.config.dim))[0]
    zero = _log_rmse(base, log_y)
    candidates = {"zero-shot": _Candidate(zero, base)}
    if k == 1:  # nothing to cross-validate with: the one measurement sets the scale, which it fits exactly
        candidates["calibrated"] = _Candidate(0.0, base)
    else:
        order = np.random.default_rng(seed).permutation(k)
        splits = np.array_split(order, min(folds, k))
        fit_sets = [np.setdiff1d(order, held) for held in splits]
        candidates["calibrated"] = _Candidate(_cv_error(lambda f, fit: base, log_y, fit_sets, splits), base)
        if offset and k >= 5:  # the folds' offsets and the final one (all samples), fitted together
            offsets = _fit_offsets(predictor, desc, keys, np.exp(log_y), [*fit_sets, np.arange(k)], graphs,
                                   steps, lr, l2, seed, progress)
            with_offset = _log_predict_grid(predictor, [desc] * len(offsets), keys, graphs, offsets)
            candidates["offset+calibrated"] = _Candidate(
                _cv_error(lambda f, fit: with_offset[f], log_y, fit_sets, splits), with_offset[-1], offsets[-1])
        references = [r for r in predictor.reference_targets().values()
                      if r.content_hash() != desc.content_hash()] if offset and reference and k >= 5 else []
        if references:
            # as each training target: its descriptor and learned row, never an adaptation of its own
            as_ref = _log_predict_grid(predictor, references, keys, graphs,
                                       torch.zeros(len(references), predictor.model_.config.dim))
            best = _best_reference(as_ref, log_y, np.arange(k))
            candidates["reference"] = _Candidate(
                _cv_error(lambda f, fit: as_ref[_best_reference(as_ref, log_y, fit)], log_y, fit_sets, splits),
                as_ref[best], reference=references[best])
    method = min(candidates, key=lambda m: candidates[m].cv)
    # a fit must not be worse than the model as trained on the very samples it was fitted on
    if method in ("offset+calibrated", "reference") and candidates[method].in_sample(log_y) > zero:
        method = "calibrated"
    if method == "calibrated" and candidates[method].in_sample(log_y) > zero:
        method = "zero-shot"
    chosen = candidates[method]
    a, b = (0.0, 1.0) if method == "zero-shot" else chosen.calibration(log_y)
    adaptation = Adaptation(desc.to_dict(), a, b, chosen.offset, k, method, chosen.reference)
    predictor.adaptations_[desc.content_hash()] = adaptation
    return adaptation
