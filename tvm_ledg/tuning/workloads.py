"""The tuning workload suite: single-kernel TIR workloads with shapes drawn from the zoo families.

The program-level cost model trains on MetaSchedule tuning records and is
benchmarked on tuning curves; both need the same fixed set of tuning tasks. Each
workload is one kernel as Relax would hand it to MetaSchedule after
``LegalizeOps`` + ``FuseOps`` (NCHW, fp32, batch 1, padding as a separate
stage, bias/ReLU epilogues fused into convolutions and dense layers), written
in TE and turned into a PrimFunc with ``te.create_prim_func``. Shapes are those
of layers the zoo families (:mod:`tvm_ledg.spaces.zoo`) actually draw:
ResNet/VGG 3x3 convolutions at 28x28, MobileNetV2 pointwise expansion and
depthwise stages at 48x48 with expansion 6, a ResNet stem max-pool, the global
average pool and classifier before a head, and ViT/transformer attention and MLP
layers with 64 tokens (+1 class token), dim 192, 4 heads.

``WORKLOADS`` (a :class:`~cost_model.registry.Registry`) maps each name to a
:class:`Workload`; ``get_workload(name)`` looks one up with an error that lists
the valid names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cost_model.registry import Registry
from tvm_ledg._tvm import PrimFunc, te

__all__ = ["Workload", "WORKLOADS", "get_workload", "list_workloads"]

_DTYPE = "float32"


@dataclass(frozen=True)
class Workload:
    """One tuning task: ``build()`` returns its unscheduled PrimFunc (a fresh one per call)."""

    name: str
    op: str  # dense, conv2d, depthwise_conv2d, pool2d, softmax, layer_norm, batch_matmul
    family: str  # the zoo family whose layer it is
    build: Callable[[], PrimFunc]


def _pad_nchw(data: te.Tensor, pad: int, value: float = 0.0) -> te.Tensor:
    """Spatial zero (or ``value``) padding as its own stage, as TOPI's legalized kernels have it."""
    if pad == 0:
        return data
    n, c, h, w = (int(d) for d in data.shape)

    def body(b, ch, y, x):
        inside = te.all(y >= pad, y < h + pad, x >= pad, x < w + pad)
        return te.if_then_else(inside, data[b, ch, y - pad, x - pad], te.const(value, _DTYPE))

    return te.compute((n, c, h + 2 * pad, w + 2 * pad), body, name="pad_temp")


def _conv2d_bias_relu(n: int, c_in: int, size: int, c_out: int, kernel: int, stride: int, pad: int) -> PrimFunc:
    data = te.placeholder((n, c_in, size, size), _DTYPE, name="data")
    weight = te.placeholder((c_out, c_in, kernel, kernel), _DTYPE, name="weight")
    bias = te.placeholder((1, c_out, 1, 1), _DTYPE, name="bias")
    padded = _pad_nchw(data, pad)
    out_size = (size + 2 * pad - kernel) // stride + 1
    rc = te.reduce_axis((0, c_in), name="rc")
    ry = te.reduce_axis((0, kernel), name="ry")
    rx = te.reduce_axis((0, kernel), name="rx")
    conv = te.compute(
        (n, c_out, out_size, out_size),
        lambda b, f, y, x: te.sum(padded[b, rc, y * stride + ry, x * stride + rx] * weight[f, rc, ry, rx],
                                  axis=[rc, ry, rx]),
        name="conv2d_nchw",
    )
    biased = te.compute(conv.shape, lambda b, f, y, x: conv[b, f, y, x] + bias[0, f, 0, 0], name="T_add")
    relu = te.compute(conv.shape, lambda b, f, y, x: te.max(biased[b, f, y, x], te.const(0.0, _DTYPE)), name="T_relu")
    return te.create_prim_func([data, weight, bias, relu])


def conv2d_resnet_3x3() -> PrimFunc:
    """ResNet basic-block 3x3 convolution, 64 -> 64 channels at 28x28, + bias + ReLU."""
    return _conv2d_bias_relu(1, 64, 28, 64, kernel=3, stride=1, pad=1)


def conv2d_resnet_3x3_s2() -> PrimFunc:
    """ResNet/VGG downsampling 3x3 convolution, stride 2, 64 -> 128 channels, 28x28 -> 14x14, + bias + ReLU."""
    return _conv2d_bias_relu(1, 64, 28, 128, kernel=3, stride=2, pad=1)


def conv2d_mobilenet_1x1() -> PrimFunc:
    """MobileNetV2 pointwise expansion (ratio 6), 24 -> 144 channels at 48x48, + bias + ReLU."""
    return _conv2d_bias_relu(1, 24, 48, 144, kernel=1, stride=1, pad=0)


def depthwise_conv2d_mobilenet() -> PrimFunc:
    """MobileNetV2 3x3 depthwise convolution, 144 channels at 48x48, + bias + ReLU."""
    channels, size = 144, 48
    data = te.placeholder((1, channels, size, size), _DTYPE, name="data")
    weight = te.placeholder((channels, 1, 3, 3), _DTYPE, name="weight")
    bias = te.placeholder((1, channels, 1, 1), _DTYPE, name="bias")
    padded = _pad_nchw(data, 1)
    ry = te.reduce_axis((0, 3), name="ry")
    rx = te.reduce_axis((0, 3), name="rx")
    conv = te.compute(
        (1, channels, size, size),
        lambda b, c, y, x: te.sum(padded[b, c, y + ry, x + rx] * weight[c, 0, ry, rx], axis=[ry, rx]),
        name="depthwise_conv2d_nchw",
    )
    biased = te.compute(conv.shape, lambda b, c, y, x: conv[b, c, y, x] + bias[0, c, 0, 0], name="T_add")
    relu = te.compute(conv.shape, lambda b, c, y, x: te.max(biased[b, c, y, x], te.const(0.0, _DTYPE)), name="T_relu")
    return te.create_prim_func([data, weight, bias, relu])


def max_pool2d_resnet_stem() -> PrimFunc:
    """ResNet stem 3x3 max-pool, stride 2, 64 channels, 48x48 -> 24x24."""
    data = te.placeholder((1, 64, 48, 48), _DTYPE, name="data")
    padded = _pad_nchw(data, 1, value=-3.4028234663852886e38)
    ry = te.reduce_axis((0, 3), name="ry")
    rx = te.reduce_axis((0, 3), name="rx")
    pool = te.compute((1, 64, 24, 24), lambda b, c, y, x: te.max(padded[b, c, y * 2 + ry, x * 2 + rx], axis=[ry, rx]),
                      name="pool_max")
    return te.create_prim_func([data, pool])


def global_avg_pool_resnet() -> PrimFunc:
    """Global average pool before a classifier head, 256 channels at 12x12."""
    channels, size = 256, 12
    data = te.placeholder((1, channels, size, size), _DTYPE, name="data")
    ry = te.reduce_axis((0, size), name="ry")
    rx = te.reduce_axis((0, size), name="rx")
    total = te.compute((1, channels, 1, 1), lambda b, c, _y, _x: te.sum(data[b, c, ry, rx], axis=[ry, rx]),
                       name="pool_sum")
    mean = te.compute(total.shape, lambda b, c, y, x: total[b, c, y, x] / te.const(size * size, _DTYPE),
                      name="pool_avg")
    return te.create_prim_func([data, mean])


def _dense_bias(rows: int, in_features: int, out_features: int) -> PrimFunc:
    """``x @ weight.T + bias`` (the layout of ``nn.Linear`` after legalization)."""
    x = te.placeholder((rows, in_features), _DTYPE, name="x")
    weight = te.placeholder((out_features, in_features), _DTYPE, name="weight")
    bias = te.placeholder((out_features,), _DTYPE, name="bias")
    k = te.reduce_axis((0, in_features), name="k")
    dense = te.compute((rows, out_features), lambda i, j: te.sum(x[i, k] * weight[j, k], axis=k), name="T_matmul_NT")
    out = te.compute(dense.shape, lambda i, j: dense[i, j] + bias[j], name="T_add")
    return te.create_prim_func([x, weight, bias, out])


def dense_transformer_mlp() -> PrimFunc:
    """Transformer MLP up-projection: 64 tokens, 192 -> 768 features (ratio 4), + bias."""
    return _dense_bias(64, 192, 768)


def dense_classifier_head() -> PrimFunc:
    """Classifier head of a CNN: one 512-d feature vector -> 1000 classes, + bias (a GEMV)."""
    return _dense_bias(1, 512, 1000)


def batch_matmul_attention() -> PrimFunc:
    """ViT attention scores ``q @ k^T``: 4 heads, 65 tokens (64 patches + class token), head dim 48."""
    heads, tokens, head_dim = 4, 65, 48
    q = te.placeholder((heads, tokens, head_dim), _DTYPE, name="q")
    k = te.placeholder((heads, tokens, head_dim), _DTYPE, name="k")
    r = te.reduce_axis((0, head_dim), name="r")
    scores = te.compute((heads, tokens, tokens), lambda h, i, j: te.sum(q[h, i, r] * k[h, j, r], axis=r),
                        name="T_batch_matmul_NT")
    return te.create_prim_func([q, k, scores])


def softmax_attention() -> PrimFunc:
    """Softmax over the last axis of ViT attention scores (4 heads, 65 x 65), max-subtracted."""
    shape = (4, 65, 65)
    x = te.placeholder(shape, _DTYPE, name="x")
    j = te.reduce_axis((0, shape[2]), name="j")
    row_max = te.compute(shape[:2], lambda h, i: te.max(x[h, i, j], axis=j), name="T_softmax_maxelem")
    exp = te.compute(shape, lambda h, i, c: te.exp(x[h, i, c] - row_max[h, i]), name="T_softmax_exp")
    j2 = te.reduce_axis((0, shape[2]), name="j2")
    row_sum = te.compute(shape[:2], lambda h, i: te.sum(exp[h, i, j2], axis=j2), name="T_softmax_expsum")
    out = te.compute(shape, lambda h, i, c: exp[h, i, c] / row_sum[h, i], name="T_softmax_norm")
    return te.create_prim_func([x, out])


def layer_norm_transformer() -> PrimFunc:
    """Transformer LayerNorm over 192 features of 64 tokens, with scale and shift (eps 1e-5)."""
    tokens, dim = 64, 192
    x = te.placeholder((tokens, dim), _DTYPE, name="x")
    gamma = te.placeholder((dim,), _DTYPE, name="gamma")
    beta = te.placeholder((dim,), _DTYPE, name="beta")
    k = te.reduce_axis((0, dim), name="k")
    total = te.compute((tokens,), lambda i: te.sum(x[i, k], axis=k), name="T_sum")
    k2 = te.reduce_axis((0, dim), name="k2")
    squares = te.compute((tokens,), lambda i: te.sum(x[i, k2] * x[i, k2], axis=k2), name="T_sum_sq")
    inv_dim = te.const(1.0 / dim, _DTYPE)

    def norm(i, c):
        mean = total[i] * inv_dim
        var = squares[i] * inv_dim - mean * mean
        return (x[i, c] - mean) * te.rsqrt(var + te.const(1e-5, _DTYPE)) * gamma[c] + beta[c]

    out = te.compute((tokens, dim), norm, name="T_layer_norm")
    return te.create_prim_func([x, gamma, beta, out])


WORKLOADS: Registry[Workload] = Registry("tuning workload")
"""The suite, by name, in suite order (11 workloads, 7 operator kinds)."""
for _workload in (
    Workload("conv2d_resnet_3x3", "conv2d", "resnet", conv2d_resnet_3x3),
    Workload("conv2d_resnet_3x3_s2", "conv2d", "resnet", conv2d_resnet_3x3_s2),
    Workload("conv2d_mobilenet_1x1", "conv2d", "mobilenetv2", conv2d_mobilenet_1x1),
    Workload("depthwise_conv2d_mobilenet", "depthwise_conv2d", "mobilenetv2", depthwise_conv2d_mobilenet),
    Workload("max_pool2d_resnet_stem", "pool2d", "resnet", max_pool2d_resnet_stem),
    Workload("global_avg_pool_resnet", "pool2d", "resnet", global_avg_pool_resnet),
    Workload("dense_transformer_mlp", "dense", "transformer", dense_transformer_mlp),
    Workload("dense_classifier_head", "dense", "resnet", dense_classifier_head),
    Workload("batch_matmul_attention", "batch_matmul", "vit", batch_matmul_attention),
    Workload("softmax_attention", "softmax", "vit", softmax_attention),
    Workload("layer_norm_transformer", "layer_norm", "transformer", layer_norm_transformer),
):
    WORKLOADS.add(_workload.name, _workload)


def list_workloads() -> list[str]:
    """Names of the suite's workloads, in suite order."""
    return list(WORKLOADS)


def get_workload(name: str) -> Workload:
    """The workload called ``name``."""
    return WORKLOADS.lookup(name)
