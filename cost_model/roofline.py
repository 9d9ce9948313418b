"""Roofline physics for the cost model: per-kernel work and bytes, target peaks, and their scaling.

A network that regresses latency directly from standardized hardware specs
extrapolates badly to hardware outside its training range (a new GPU's peak
is many standard deviations out). The roofline bound does not: a kernel with
``F`` FLOPs and ``B`` bytes of traffic cannot finish faster than
``t* = max(F / P, B / BW)`` on a target with peak compute ``P`` and memory
bandwidth ``BW``. The roofline head (``cost_model.layers.roofline_head``)
learns only what the bound leaves open, a bounded efficiency and a fixed
overhead per kernel, and this module supplies the physical inputs.

Graphs are lowered once, usually at batch 1, and in the dtype of the source
model (float32), while a target is a measurement setting with its own batch
size and precision. So work is stored per node as raw numbers of the graph
and scaled per target here: FLOPs and activation bytes grow with the batch,
weights are read once per inference whatever the batch, and every byte count
follows the element width of the target's precision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from cost_model.graph import OpGraph, OpNode, dtype_bytes
from targets.schema import TargetDescriptor

__all__ = [
    "WORK_COLUMNS",
    "BOUND_LABELS",
    "SPEC_FEATURE_NAMES",
    "node_work",
    "graph_input_batch",
    "TargetRoofline",
    "target_roofline",
    "RooflineTargets",
    "roofline_targets",
    "scaled_log_work",
    "roofline_log_ms",
]

WORK_COLUMNS: tuple[str, ...] = ("flops", "weight_bytes", "activation_bytes", "elem_bytes")
"""Columns of ``GraphTensors.work``: raw float64 numbers of the graph as lowered."""

BOUND_LABELS: tuple[str, ...] = ("compute", "memory", "overhead")
"""What limits a kernel: its FLOPs at peak, its bytes at full bandwidth, or its fixed overhead."""

SPEC_FEATURE_NAMES: tuple[str, ...] = (
    "log_peak_fp32_tops", "log_peak_fp16_tops", "log_peak_int8_tops", "log_memory_bandwidth_gbps",
)
"""Target features that *are* the roofline specs: an estimate of a missing spec must not read them."""

_PRECISION_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1}
_LOG_MS_PER_S = math.log(1e3)


def node_work(node: OpNode) -> tuple[float, float, float, float]:
    """``(flops, weight_bytes, activation_bytes, elem_bytes)`` of one operator, as in ``WORK_COLUMNS``.

    ``params`` counts the elements of constant inputs, so weights are
    ``params`` elements of the node's dtype; the rest of the traffic
    (inputs read plus outputs written) is activations. ``elem_bytes`` is that
    dtype's width, the reference a target precision is scaled against.
    """
    tensors = list(node.outputs) + list(node.inputs)
    elem = float(dtype_bytes(tensors[0].dtype)) if tensors else 4.0
    traffic = float(node.bytes_read + node.bytes_written)
    weight = min(float(node.params) * elem, traffic) if traffic > 0 else float(node.params) * elem
    return float(node.flops), weight, max(traffic - weight, 0.0), elem


def graph_input_batch(graph: OpGraph) -> int:
    """The batch a graph was lowered at: the leading dimension of its first input (1 when unknown)."""
    if graph.inputs and graph.inputs[0].shape and graph.inputs[0].shape[0] > 0:
        return int(graph.inputs[0].shape[0])
    return 1


@dataclass(frozen=True)
class TargetRoofline:
    """One target's roofline numbers in SI units; None where the descriptor does not say.

    ``peak_flops`` (FLOP/s or op/s at the target's precision), ``bandwidth`` (bytes/s),
    ``batch_size`` and ``elem_bytes`` (bytes per element at the target's precision).
    """

    peak_flops: float | None
    bandwidth: float | None
    batch_size: int | None
    elem_bytes: int | None


def target_roofline(desc: TargetDescriptor) -> TargetRoofline:
    """The descriptor's peak and bandwidth for the precision the target runs at.

    The precision rules (null reads as fp32; fp16 is the plain, not the tensor-core,
    rate) are the descriptor's own: ``TargetDescriptor.peak_flops_per_s``.
    """
    return TargetRoofline(
        peak_flops=desc.peak_flops_per_s(),
        bandwidth=desc.memory_bandwidth_bytes_per_s(),
        batch_size=desc.batch_size,
        elem_bytes=_PRECISION_BYTES.get(desc.precision) if desc.precision is not None else None,
    )


@dataclass
class RooflineTargets:
    """Per-row target numbers for a batch of B (graph, target) rows.

    Shapes:
        ``log_specs``: ``(B, 2)`` float64 natural logs of (FLOP/s, bytes/s), 0 where unknown;
        ``specs_known``: ``(B, 2)`` bool; ``batch_size``, ``elem_bytes``: ``(B,)`` float64, 0 where
        the descriptor does not say (then the graph's own batch and dtype are kept).
    """

    log_specs: Tensor
    specs_known: Tensor
    batch_size: Tensor
    elem_bytes: Tensor

    def to(self, device: torch.device) -> "RooflineTargets":
        """These numbers on ``device`` (CPU ones are returned as they are)."""
        if device.type == "cpu":
            return self
        return RooflineTargets(self.log_specs.to(device), self.specs_known.to(device), self.batch_size.to(device),
                               self.elem_bytes.to(device))


def roofline_targets(descs: Sequence[TargetDescriptor]) -> RooflineTargets:
    """Stack ``target_roofline`` of each row's descriptor into tensors (read once per distinct descriptor)."""
    distinct = {id(d): target_roofline(d) for d in descs}
    rows = [distinct[id(d)] for d in descs]
    specs = np.array([[r.peak_flops or 0.0, r.bandwidth or 0.0] for r in rows], dtype=np.float64).reshape(-1, 2)
    known = specs > 0
    return RooflineTargets(
        log_specs=torch.from_numpy(np.where(known, np.log(np.where(known, specs, 1.0)), 0.0)),
        specs_known=torch.from_numpy(known),
        batch_size=torch.tensor([float(r.batch_size or 0) for r in rows], dtype=torch.float64),
        elem_bytes=torch.tensor([float(r.elem_bytes or 0) for r in rows], dtype=torch.float64),
    )


def scaled_log_work(work: Tensor, input_batch: Tensor, row: Tensor, targets: RooflineTargets) -> tuple[Tensor, Tensor]:
    """Natural logs of each kernel's FLOPs and bytes at its row's target batch and precision.

    FLOPs and activation bytes scale with ``target batch / graph batch``;
    weight bytes do not. All bytes scale with ``target elem_bytes / node
    elem_bytes``. Work and bytes are floored at 1 so that nodes without work
    (loop nodes of program DAGs, shape-only ops) get a finite, negligible bound.

    Shapes:
        ``work``: ``(S, len(WORK_COLUMNS))`` float64; ``input_batch``: ``(B,)``; ``row``: ``(S,)``
        graph row of each node -> two ``(S,)`` float64 tensors.
    """
    known_batch = targets.batch_size > 0
    ratio = torch.where(known_batch, targets.batch_size / input_batch.clamp_min(1.0), torch.ones_like(input_batch))
    ratio = ratio[row]
    elem = targets.elem_bytes[row]
    node_elem = work[:, 3].clamp_min(1.0)
    width = torch.where(elem > 0, elem / node_elem, torch.ones_like(node_elem))
    flops = work[:, 0] * ratio
    nbytes = (work[:, 2] * ratio + work[:, 1]) * width
    return flops.clamp_min(1.0).log(), nbytes.clamp_min(1.0).log()


def roofline_log_ms(log_flops: Tensor, log_bytes: Tensor, log_peak: Tensor, log_bandwidth: Tensor) -> tuple[Tensor, Tensor]:
    """``(log t*_ms, compute_bound)``: ``t* = max(F / P, B / BW)`` in ms, in log space, and whether ``F / P`` wins."""
    compute = log_flops - log_peak
    memory = log_bytes - log_bandwidth
    return torch.maximum(compute, memory) + _LOG_MS_PER_S, compute >= memory
