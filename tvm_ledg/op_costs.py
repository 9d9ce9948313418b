"""Analytic FLOP and MAC counts of Relax operators from their shapes and attributes.

Pure Python (no TVM import) so the convention is readable in one place:

- **MAC operators**: convolutions, transposed convolutions, ``matmul`` and
  ``nn.attention``. ``macs`` counts multiply-accumulates, ``flops = 2 * macs``
  (the bias ``add`` is its own Relax operator). conv: ``out_numel * Cin/groups *
  prod(kernel)``, i.e. ``2*N*Cout*Hout*Wout*Cin/groups*kh*kw`` FLOPs. Transposed
  conv counts the useful MACs (``in_numel * Cout/groups * prod(kernel)``); TVM's
  ``estimate_tir_flops`` counts the zero-stuffed convolution it legalizes to.
- **Elementwise** (unary, binary, activations, ``clip``, ``where``, casts):
  1 FLOP per output element, transcendental or not (TVM's TIR counter counts
  ``exp``/``sqrt``/``erf``/``sigmoid`` calls as 0 and ``clip`` as 2).
- **Reductions** (``sum``, ``max``, ...): 1 per input element; ``mean`` adds 1
  per output element (the division); ``variance``/``std`` 3 per input element.
- **Pooling**: window reads, ``out_numel * prod(pool_size)`` (+1 per output for
  average pooling); adaptive pooling 1 per input element (+1 per output for avg).
- **Composite**: ``softmax``/``log_softmax`` 5 per element (max, subtract, exp,
  sum, divide); ``layer_norm``/``group_norm``/``instance_norm`` 8 per element
  (two reductions, centering, square, scale by 1/std, affine); ``rms_norm`` 4;
  inference ``batch_norm`` 2 (scale and shift); bilinear ``resize2d`` 4 per
  output element, bicubic 16, nearest 0.
- **Data movement** (reshape, transpose, concat, slicing, gather, pad...): 0.
- **Unknown operators**: output numel if the output has the shape of one of the
  inputs (elementwise-like), else 0; ``estimate`` returns ``known=False`` so the
  caller can log it.

These agree with ``tvm.s_tir.analysis.estimate_tir_flops`` on the legalized
PrimFunc for conv2d, matmul, binary elementwise, relu, max pooling, global
average pooling, sum and mean (tested in ``tests/tvm_ledg/test_lowering.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from cost_model.graph import TensorSpec

__all__ = ["OpCost", "estimate"]


@dataclass(frozen=True)
class OpCost:
    flops: int
    macs: int = 0
    known: bool = True


Attrs = dict[str, Any]
Specs = list[TensorSpec]

_DATA_MOVEMENT = {
    "reshape", "permute_dims", "concat", "split", "take", "strided_slice", "dynamic_strided_slice",
    "broadcast_to", "expand_dims", "squeeze", "flatten", "flip", "tile", "repeat", "gather_elements",
    "gather_nd", "scatter_elements", "scatter_nd", "layout_transform", "nn.pad", "zeros", "ones", "full",
    "zeros_like", "ones_like", "full_like", "arange", "tril", "triu", "one_hot", "collapse_sum_to",
    "collapse_sum_like", "nn.pixel_shuffle", "index_tensor", "index_put", "slice_scatter", "meshgrid",
    "stack", "hint_on_device", "to_vdevice", "wrap_param", "copy", "image.grid_sample",
}

_ELEMENTWISE = {
    # unary
    "abs", "acos", "acosh", "asin", "asinh", "atan", "atanh", "ceil", "cos", "cosh", "erf", "exp", "floor",
    "log", "negative", "round", "rsqrt", "sigmoid", "sign", "sin", "sinh", "sqrt", "square", "tan", "tanh",
    "trunc", "isfinite", "isinf", "isnan", "logical_not", "bitwise_not", "clip", "astype", "reciprocal",
    "nn.relu", "nn.relu6", "nn.gelu", "nn.gelu_tanh", "nn.silu", "nn.selu", "nn.leakyrelu", "nn.prelu",
    "nn.softplus", "nn.elu", "nn.celu", "nn.hardswish", "nn.hardsigmoid", "nn.dropout",
    # binary / ternary
    "add", "subtract", "multiply", "divide", "floor_divide", "power", "maximum", "minimum", "mod",
    "floor_mod", "equal", "not_equal", "greater", "greater_equal", "less", "less_equal", "logical_and",
    "logical_or", "logical_xor", "bitwise_and", "bitwise_or", "bitwise_xor", "left_shift", "right_shift",
    "atan2", "where", "log_add_exp",
}

_REDUCTIONS = {"sum", "max", "min", "prod", "argmax", "argmin", "cumsum", "cumprod", "nn.logsumexp"}

_PER_ELEMENT = {
    "nn.softmax": 5,
    "nn.log_softmax": 5,
    "nn.layer_norm": 8,
    "nn.group_norm": 8,
    "nn.instance_norm": 8,
    "nn.rms_norm": 4,
    "nn.batch_norm": 2,
}


def estimate(op: str, attrs: Attrs, inputs: Specs, outputs: Specs) -> OpCost:
    """FLOPs and MACs of one operator call (``op`` without the ``relax.`` prefix)."""
    out_numel = sum(t.numel for t in outputs)
    special = _SPECIAL.get(op)
    if special is not None:
        return special(attrs, inputs, outputs)
    if op in _DATA_MOVEMENT:
        return OpCost(0)
    if op in _ELEMENTWISE:
        return OpCost(out_numel)
    if op in _REDUCTIONS:
        return OpCost(_first_numel(inputs))
    if op in _PER_ELEMENT:
        return OpCost(_PER_ELEMENT[op] * (outputs[0].numel if outputs else 0))
    elementwise_like = bool(outputs) and any(t.shape == outputs[0].shape for t in inputs)
    return OpCost(outputs[0].numel if elementwise_like else 0, known=False)


def _first_numel(specs: Specs) -> int:
    return specs[0].numel if specs else 0


def _conv(attrs: Attrs, inputs: Specs, outputs: Specs) -> OpCost:
    """Direct convolution (any dimensionality, layout and groups)."""
    if len(inputs) < 2 or not outputs:
        return OpCost(0, known=False)
    weight = inputs[1]
    layout = str(attrs.get("kernel_layout", ""))
    out_channels = _dim(weight, layout, "O")
    if out_channels is None:
        out_channels = _dim(outputs[0], str(attrs.get("out_layout") or attrs.get("data_layout", "")), "C")
    if not out_channels:
        return OpCost(0, known=False)
    macs = outputs[0].numel * (weight.numel // out_channels)
    return OpCost(2 * macs, macs)


def _conv_transpose(attrs: Attrs, inputs: Specs, outputs: Specs) -> OpCost:
    """Transposed convolution: every input element scatters into Cout/groups * prod(kernel) outputs."""
    if len(inputs) < 2:
        return OpCost(0, known=False)
    weight = inputs[1]
    in_channels = _dim(weight, str(attrs.get("kernel_layout", "")), "I")
    if not in_channels:
        return OpCost(0, known=False)
    macs = inputs[0].numel * (weight.numel // in_channels)
    return OpCost(2 * macs, macs)


def _dim(spec: TensorSpec, layout: str, axis: str) -> int | None:
    """Size of ``axis`` (e.g. ``"O"``) in ``spec`` laid out as ``layout`` (e.g. ``"OIHW"``)."""
    if len(layout) != len(spec.shape) or axis not in layout:
        return None
    return int(spec.shape[layout.index(axis)])


def _matmul(attrs: Attrs, inputs: Specs, outputs: Specs) -> OpCost:
    """(..., M, K) x (..., K, N): out_numel * K MACs (batch dims broadcast)."""
    if len(inputs) < 2 or not outputs or not inputs[0].shape:
        return OpCost(0, known=False)
    macs = outputs[0].numel * int(inputs[0].shape[-1])
    return OpCost(2 * macs, macs)


def _attention(attrs: Attrs, inputs: Specs, outputs: Specs) -> OpCost:
    """``nn.attention``: q (B, S, H, D), k (B, Skv, H, D), v (B, Skv, H, Dv) -> QK^T, softmax, PV."""
    if len(inputs) < 3 or any(len(t.shape) != 4 for t in inputs[:3]):
        return OpCost(0, known=False)
    b, s, h, d = inputs[0].shape
    s_kv, d_v = inputs[1].shape[1], inputs[2].shape[3]
    scores = b * h * s * s_kv
    macs = scores * d + scores * d_v
    return OpCost(2 * macs + 5 * scores, macs)


def _mean(attrs: Attrs, inputs: Specs, outputs: Specs) -> OpCost:
    return OpCost(_first_numel(inputs) + _first_numel(outputs))


def _variance(attrs: Attrs, inputs: Specs, outputs: Specs) -> OpCost:
    return OpCost(3 * _first_numel(inputs) + _first_numel(outputs))


def _pool(average: bool) -> Callable[[Attrs, Specs, Specs], OpCost]:
    def cost(attrs: Attrs, inputs: Specs, outputs: Specs) -> OpCost:
        window = math.prod(int(k) for k in attrs.get("pool_size", []) or [1])
        out = _first_numel(outputs)
        return OpCost(out * window + (out if average else 0))

    return cost


def _adaptive_pool(average: bool) -> Callable[[Attrs, Specs, Specs], OpCost]:
    def cost(attrs: Attrs, inputs: Specs, outputs: Specs) -> OpCost:
        return OpCost(_first_numel(inputs) + (_first_numel(outputs) if average else 0))

    return cost


def _resize(attrs: Attrs, inputs: Specs, outputs: Specs) -> OpCost:
    taps = {"nearest_neighbor": 0, "linear": 4, "cubic": 16}.get(str(attrs.get("method", "")), 4)
    return OpCost(taps * _first_numel(outputs))


_SPECIAL: dict[str, Callable[[Attrs, Specs, Specs], OpCost]] = {
    "matmul": _matmul,
    "nn.attention": _attention,
    "nn.attention_bias": _attention,
    "nn.conv1d_transpose": _conv_transpose,
    "nn.conv2d_transpose": _conv_transpose,
    "nn.conv3d_transpose": _conv_transpose,
    "nn.conv1d": _conv,
    "nn.conv2d": _conv,
    "nn.conv3d": _conv,
    "mean": _mean,
    "variance": _variance,
    "std": lambda a, i, o: OpCost(_variance(a, i, o).flops + _first_numel(o)),
    "image.resize2d": _resize,
    "image.resize3d": _resize,
    **{f"nn.max_pool{d}d": _pool(False) for d in (1, 2, 3)},
    **{f"nn.avg_pool{d}d": _pool(True) for d in (1, 2, 3)},
    **{f"nn.lp_pool{d}d": _pool(False) for d in (1, 2, 3)},
    **{f"nn.adaptive_max_pool{d}d": _adaptive_pool(False) for d in (1, 2, 3)},
    **{f"nn.adaptive_avg_pool{d}d": _adaptive_pool(True) for d in (1, 2, 3)},
}
