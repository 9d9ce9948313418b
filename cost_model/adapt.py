"""Few-shot adaptation of a trained ``LatencyPredictor`` to one target from k measurements.

Three candidates are compared, all on the k given samples only:

* ``zero-shot``: the model as trained (the descriptor alone);
* ``calibrated``: ``log y = a + b log ŷ`` fitted by least squares in log space,
  with ``b`` shrunk towards 1 (ridge) so that a handful of samples cannot flip
  the ranking; with fewer than 4 samples only ``a`` is fitted;
* ``offset+calibrated``: a vector added to the target's conditioning (the
  target token and every FiLM layer see it) is fine-tuned by gradient descent
  on the samples with an L2 pull towards 0, then calibrated as above. Unlike
  calibration it can change the ranking of architectures.

The candidate with the lowest k-fold cross-validated log-RMSE is chosen; if its
in-sample log-RMSE is above the zero-shot one, zero-shot is kept. Hence an
adaptation is never worse than zero-shot on the samples it was given (tested).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from cost_model.graph import OpGraph
from cost_model.loglinear import fit_loglinear
from cost_model.losses import latency_loss
from cost_model.predictor import Adaptation, LatencyPredictor
from targets.errors import DataError
from targets.schema import TargetDescriptor

__all__ = ["adapt", "fit_calibration"]

Sample = tuple[str, float]  # (graph key, measured latency in ms)


def fit_calibration(log_pred: np.ndarray, log_true: np.ndarray, ridge: float = 1.0) -> tuple[float, float]:
    """``(a, b)`` of ``log_true ≈ a + b·log_pred`` with the slope shrunk towards 1 (``fit_loglinear``)."""
    return fit_loglinear(log_pred, log_true, ridge)


def _log_rmse(log_pred: np.ndarray, log_true: np.ndarray) -> float:
    return float(np.sqrt(np.mean((log_pred - log_true) ** 2)))


def _fit_offset(predictor: LatencyPredictor, desc: TargetDescriptor, keys: Sequence[str], y: np.ndarray,
                graphs: Mapping[str, OpGraph], steps: int, lr: float, l2: float, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    model = predictor.model_
    offset = torch.zeros(model.config.dim, requires_grad=True)
    opt = torch.optim.Adam([offset], lr=lr)
    target = torch.tensor(y, dtype=torch.float32)
    was_training = model.training
    model.eval()  # no dropout: the k samples are all there is
    try:
        for _ in range(steps):
            out = predictor.forward(list(keys), [desc] * len(keys), graphs, offsets=offset.expand(len(keys), -1))
            loss = latency_loss(out, target, huber_delta=None, rank_weight=0.5).total + l2 * offset.pow(2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        model.train(was_training)
    return offset.detach()


@torch.no_grad()
def _log_predict(predictor: LatencyPredictor, desc: TargetDescriptor, keys: Sequence[str],
                 graphs: Mapping[str, OpGraph], offset: torch.Tensor | None) -> np.ndarray:
    predictor.model_.eval()
    offsets = torch.zeros(len(keys), predictor.model_.config.dim) if offset is None else offset.expand(len(keys), -1)
    return predictor.forward(list(keys), [desc] * len(keys), graphs, offsets=offsets).log_latency_ms.double().numpy()


def adapt(predictor: LatencyPredictor, desc: TargetDescriptor, samples: Sequence[Sample],
          graphs: Mapping[str, OpGraph], *, steps: int = 60, lr: float = 0.05, l2: float = 1e-2,
          folds: int = 5, seed: int = 0, offset: bool = True) -> Adaptation:
    """Adapt ``predictor`` to ``desc`` from measured ``samples``; stores and returns the ``Adaptation``.

    ``offset=False`` leaves out the fine-tuned candidate: calibration only, which costs one forward
    pass over the samples (used to calibrate the training targets on hundreds of samples)."""
    predictor._check_fitted()
    if not samples:
        raise DataError(f"{desc.name}: adaptation needs at least one measured (model, latency) pair")
    for key, ms in samples:
        if not (math.isfinite(ms) and ms > 0):
            raise DataError(f"{desc.name}: measured latency of {key!r} is {ms!r}; it must be finite and > 0 ms")
        if key not in graphs:
            raise DataError(f"{desc.name}: no graph for measured model {key!r}")
    keys = [k for k, _ in samples]
    log_y = np.log([ms for _, ms in samples])
    base = _log_predict(predictor, desc, keys, graphs, None)

    def offset_then_calibrate(idx: np.ndarray) -> tuple[torch.Tensor, tuple[float, float]]:
        sub = [keys[i] for i in idx]
        vec = _fit_offset(predictor, desc, sub, np.exp(log_y[idx]), graphs, steps, lr, l2, seed)
        return vec, fit_calibration(_log_predict(predictor, desc, sub, graphs, vec), log_y[idx])

    cv = {"zero-shot": _log_rmse(base, log_y)}
    k = len(samples)
    if k >= 2:
        order = np.random.default_rng(seed).permutation(k)
        splits = np.array_split(order, min(folds, k))
        calib_err, offset_err = [], []
        for held in splits:
            fit_idx = np.setdiff1d(order, held)
            a, b = fit_calibration(base[fit_idx], log_y[fit_idx])
            calib_err.append((a + b * base[held] - log_y[held]) ** 2)
            if offset and k >= 5:
                offset_vec, (a2, b2) = offset_then_calibrate(fit_idx)
                pred = a2 + b2 * _log_predict(predictor, desc, [keys[i] for i in held], graphs, offset_vec)
                offset_err.append((pred - log_y[held]) ** 2)
        cv["calibrated"] = float(np.sqrt(np.mean(np.concatenate(calib_err))))
        if offset_err:
            cv["offset+calibrated"] = float(np.sqrt(np.mean(np.concatenate(offset_err))))
    method = min(cv, key=cv.get)
    offset_vec, (a, b) = None, (0.0, 1.0)
    if method == "calibrated":
        a, b = fit_calibration(base, log_y)
    elif method == "offset+calibrated":
        offset_vec, (a, b) = offset_then_calibrate(np.arange(k))
        in_sample = a + b * _log_predict(predictor, desc, keys, graphs, offset_vec)
        if _log_rmse(in_sample, log_y) > cv["zero-shot"]:
            method, offset_vec, (a, b) = "calibrated", None, fit_calibration(base, log_y)
    if method == "calibrated" and _log_rmse(a + b * base, log_y) > cv["zero-shot"]:
        method, a, b = "zero-shot", 0.0, 1.0
    adaptation = Adaptation(desc.to_dict(), a, b, offset_vec, k, method)
    predictor.adaptations_[desc.content_hash()] = adaptation
    return adaptation
