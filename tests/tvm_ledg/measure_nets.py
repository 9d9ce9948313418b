"""A tiny network in every form the measurement backends need (fast to export, compile and time)."""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from torch import nn

from tvm_ledg.measure.backends import INPUT_NAME, Network

TINY_NB201 = [  # three small NAS-Bench-201 cells (pooling / 1x1 convs: quick on every backend)
    "nb201:|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    "nb201:|skip_connect~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|skip_connect~1|none~2|",
    "nb201:|none~0|+|avg_pool_3x3~0|skip_connect~1|+|nor_conv_1x1~0|none~1|skip_connect~2|",
]


def tiny_network(seed: int = 0, size: int = 16, width: int = 8) -> Network:
    """conv-BN-ReLU, pool, linear on a 1x3xSIZExSIZE input, exported to ONNX like ``Network.from_spec`` does."""
    torch.manual_seed(seed)
    module = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                           nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 4)).eval()
    x = torch.randn(1, 3, size, size)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), buf, dynamo=False, opset_version=17, input_names=[INPUT_NAME])
    return Network("tiny", buf.getvalue(), {INPUT_NAME: x.numpy().astype(np.float32)}, module, "test")
