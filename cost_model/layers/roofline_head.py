"""Roofline-bounded output head: kernel time = roofline time / bounded efficiency + overhead.

Each kernel k has a physical lower bound ``t*_k = max(F_k / P, B_k / BW)``
(``cost_model.roofline``). The network only predicts what the bound leaves
open: an efficiency ``e_k`` in ``[floor, 1]`` (a sigmoid, so a prediction can
never beat the roofline; the floor lets tiny kernels be very inefficient
without an unbounded logit) and an overhead ``o_k >= 0`` (launch, dispatch,
framework). Both read the node state and the target conditioning. The
overhead is parametrized as ``exp`` of a linear output: it spans microseconds
(a GPU launch) to milliseconds (a mobile framework call), and a log
parametrization makes that span an additive shift of one bias.

Everything is computed in log space: ``log(t*/e + o) = logaddexp(log t* - log e, log o)``.

With ``factors = m > 0`` both logits also get a dot product of an m-vector of
the node and one of the target (``u_k · w_t``): how efficient a kind of kernel
is depends on the device (a depthwise convolution on a GPU vs a DSP), which a
sum of a node term and a target term cannot say. The target's efficiency also
gets a slope on the kernel's own roofline time (small kernels fill a wide
device poorly, as NeuSight's wave term says); the slope starts at zero.

Where a target's descriptor lacks P or BW (user targets, unpublished
specs), the head estimates them: a ridge regression of log P and log BW on
the target's other (standardized, masked) features, fitted on the training
targets that have them, plus a learned correction from the target
conditioning (zero at start) that training adjusts through the latency loss.
The caller logs a warning whenever an estimate is used.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cost_model.roofline import roofline_log_ms

__all__ = ["RooflineHead", "COMPUTE", "MEMORY", "OVERHEAD"]

log = logging.getLogger(__name__)

COMPUTE, MEMORY, OVERHEAD = 0, 1, 2  # indices into cost_model.roofline.BOUND_LABELS

# Prior for log P (FLOP/s) and log BW (bytes/s) when no training target states them: 1 TFLOP/s and
# 100 GB/s, a mid-range device. Used only with a warning; training corrects it through spec_correction.
_DEFAULT_LOG_SPECS = (math.log(1e12), math.log(1e11))
# An overhead is a physical time: between 1e-13 ms and about six days, so an extreme logit cannot overflow exp.
_LOG_OVERHEAD_RANGE = (-30.0, 20.0)


class RooflineHead(nn.Module):
    """Shapes:
        ``forward(h (S, d), cond (B, d), row (E,), log_flops (E,), log_bytes (E,), log_specs (B, 2),
        node_index (E,) or None)`` -> ``(node_log_ms (E,), bound (E,) long)``, ``bound`` indexing
        ``BOUND_LABELS``; E = S without ``node_index``.
    """

    def __init__(self, dim: int, num_target_features: int, efficiency_floor: float = 1e-3, factors: int = 0) -> None:
        super().__init__()
        if not 0.0 < efficiency_floor < 1.0:
            raise ValueError(f"efficiency_floor={efficiency_floor}: expected a value in (0, 1)")
        self.log_floor = math.log(efficiency_floor)
        self.log_span = math.log1p(-efficiency_floor)
        self.efficiency = nn.Linear(dim, 1)
        self.efficiency_target = nn.Linear(dim, 1, bias=False)
        self.overhead = nn.Linear(dim, 1)
        self.overhead_target = nn.Linear(dim, 1, bias=False)
        self.factors = factors
        if factors:
            self.node_factors = nn.Linear(dim, 2 * factors, bias=False)
            self.target_factors = nn.Linear(dim, 2 * factors, bias=False)
            self.size_slope = nn.Linear(dim, 1)
            nn.init.zeros_(self.size_slope.weight)
            nn.init.zeros_(self.size_slope.bias)
        self.spec_correction = nn.Linear(dim, 2)
        nn.init.zeros_(self.spec_correction.weight)
        nn.init.zeros_(self.spec_correction.bias)
        width = max(num_target_features, 0)
        self.register_buffer("spec_weight", torch.zeros(2 * width, 2))
        self.register_buffer("spec_bias", torch.tensor(_DEFAULT_LOG_SPECS))
        self.register_buffer("spec_inputs", torch.ones(width))

    @torch.no_grad()
    def init_overhead(self, log_ms: float) -> None:
        """Start every kernel's overhead at ``exp(log_ms)`` (efficiency starts at about one half)."""
        self.overhead.bias.fill_(log_ms)

    @torch.no_grad()
    def fit_spec_prior(self, values: Tensor | None, mask: Tensor | None, log_specs: Tensor, known: Tensor,
                       spec_columns: Tensor | None = None, ridge: float = 1.0) -> None:
        """Fit the ridge prior of ``log_specs`` on the other target features (one row per training target).

        ``values`` are standardized and masked features ``(T, F)`` (None when the model does not read
        target features: then only the mean is fitted); ``spec_columns`` ``(F,)`` bool marks the
        features that are the specs themselves, which the prior must not read.
        """
        if values is not None and spec_columns is not None:
            self.spec_inputs.copy_((~spec_columns).to(self.spec_inputs.dtype))
        x = self._prior_inputs(values, mask, log_specs.shape[0]).double()
        for j, name in enumerate(("peak compute", "memory bandwidth")):
            rows = known[:, j]
            if not bool(rows.any()):
                log.warning("no training target states its %s: the roofline head starts from a fixed prior "
                            "(%.3g per second) and learns a correction", name, math.exp(_DEFAULT_LOG_SPECS[j]))
                self.spec_weight[:, j] = 0.0
                self.spec_bias[j] = _DEFAULT_LOG_SPECS[j]
                continue
            xs, ys = x[rows], log_specs[rows, j].double()
            x_mean, y_mean = xs.mean(0), ys.mean()
            xc = xs - x_mean
            gram = xc.T @ xc + ridge * torch.eye(xc.shape[1], dtype=xc.dtype)
            w = torch.linalg.solve(gram, xc.T @ (ys - y_mean)) if xc.shape[1] else xc.new_zeros(0)
            self.spec_weight[:, j] = w.to(self.spec_weight.dtype)
            self.spec_bias[j] = float(y_mean - x_mean @ w)

    def _prior_inputs(self, values: Tensor | None, mask: Tensor | None, rows: int) -> Tensor:
        if values is None or self.spec_weight.shape[0] == 0:
            return self.spec_weight.new_zeros(rows, self.spec_weight.shape[0])
        keep = self.spec_inputs
        return torch.cat([values * keep, mask.to(values.dtype) * keep], dim=-1)

    def estimate_specs(self, values: Tensor | None, mask: Tensor | None, cond: Tensor) -> Tensor:
        """``(B, 2)`` estimated natural logs of (FLOP/s, bytes/s) for every row."""
        prior = self._prior_inputs(values, mask, cond.shape[0]) @ self.spec_weight + self.spec_bias
        return prior + self.spec_correction(cond)

    def forward(self, h: Tensor, cond: Tensor, row: Tensor, log_flops: Tensor, log_bytes: Tensor,
                log_specs: Tensor, node_index: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``node_index`` ``(E,)``: the node state of each of the E kernel rows (None: row i is node i);
        ``row``, ``log_flops``, ``log_bytes`` run over those E rows."""
        log_tstar, compute_bound = roofline_log_ms(log_flops, log_bytes, log_specs[row, 0], log_specs[row, 1])
        node_terms = torch.cat([self.efficiency(h), self.overhead(h)], dim=-1)  # (S, 2), gathered once below
        if self.factors:
            node_terms = torch.cat([node_terms, self.node_factors(h)], dim=-1)
        if node_index is not None:
            node_terms = node_terms[node_index]
        z_eff = node_terms[:, 0] + self.efficiency_target(cond).squeeze(-1)[row]
        log_overhead = node_terms[:, 1] + self.overhead_target(cond).squeeze(-1)[row]
        if self.factors:
            m = self.factors
            target_terms = self.target_factors(cond)[row]
            products = node_terms[:, 2:] * target_terms
            z_eff = z_eff + products[:, :m].sum(-1) + self.size_slope(cond).squeeze(-1)[row] * log_tstar
            log_overhead = log_overhead + products[:, m:].sum(-1)
        log_overhead = log_overhead.clamp(*_LOG_OVERHEAD_RANGE)
        log_eff = torch.logaddexp(torch.full_like(z_eff, self.log_floor), self.log_span + F.logsigmoid(z_eff))
        log_kernel = log_tstar - log_eff
        node_log = torch.logaddexp(log_kernel, log_overhead)
        bound = torch.where(log_overhead > log_kernel, OVERHEAD, torch.where(compute_bound, COMPUTE, MEMORY))
        return node_log, bound
