"""Seeded model zoo: ``<family>:<seed>`` -> a random but valid network of a classic family.

NNLQP-style training data needs many *different* networks of the families
people deploy, not the few published configurations. A zoo spec names a family
and a seed; ``random.Random(f"{family}:{seed}")`` (string seeding hashes with
SHA-512, so it is stable across processes and Python versions, unlike
``hash()``) draws everything else: depth, widths, kernel sizes, expansion
ratios, input resolution, number of classes and the batch size. The same spec
therefore always gives the same network, graph and ONNX bytes.

Families (plain PyTorch; torchvision is not needed):

* ``resnet``: basic or bottleneck blocks, 2-4 stages of 1-3 blocks;
* ``vgg``: 3-5 stages of 1-3 3x3 convs (BatchNorm optional), max-pools, FC head;
* ``mobilenetv2``: inverted residuals, ReLU6, expansion {1, 3, 4, 6}, kernel {3, 5};
* ``mobilenetv3``: as v2 plus squeeze-excite (hard-sigmoid) and hard-swish;
* ``efficientnet``: MBConv + SE + SiLU, kernel {3, 5}, expansion {1, 4, 6};
* ``mnasnet``: MBConv with ReLU, SE on some stages;
* ``squeezenet``: fire modules (squeeze 1x1, expand 1x1 + 3x3, concat);
* ``googlenet``: inception modules with four branches;
* ``alexnet``: a large-kernel strided first conv, 5 convs, 3 FC layers;
* ``nb201``: a random NAS-Bench-201 cell built by :mod:`tvm_ledg.spaces.nb201`;
* ``vit``: patch-embedding conv, cls token or mean pooling, hand-written
  attention (matmul / softmax / LayerNorm / GELU);
* ``transformer``: the same encoder on a float ``(seq, dim)`` input.

CNN resolutions come from :data:`RESOLUTIONS`, mostly <= 96 (224 only with a
base width <= 16). FLOPs follow ``torch.utils.flop_counter`` (2 per
multiply-accumulate of conv / linear / matmul) but are counted from shapes
alone (the module tree built on the meta device), so a draw costs a few
milliseconds and no arithmetic. A draw over :data:`FLOP_CAP` is discarded and
the seed's generator draws again; the batch size is then halved until the whole
measured batch fits too. This keeps every network cheap enough to time untuned
on a CPU (per-family FLOP medians of 40-300 M).

The batch size is part of the configuration (:attr:`ZooArch.batch`, mostly 1)
but, as for every space, :func:`tvm_ledg.spaces.build` takes it as an
argument: build with ``build(spec, batch_size=arch.batch)`` to get the sampled
workload (``spaces.parse(spec).arch.batch``).

Modules: :mod:`.configs` (what a seed draws), :mod:`.samplers` (the draws, per
family), :mod:`.blocks` (layers shared by families), :mod:`.builders`
(configuration -> ``nn.Module``, per family), :mod:`.flops` (the shape-only FLOP
count) and :mod:`.api` (spec parsing, the draw under the cap, the entry points
re-exported here).
"""

from tvm_ledg.spaces.zoo.api import (
    FAMILIES,
    FLOP_CAP,
    NAME,
    ZooArch,
    build_network,
    input_shape,
    list_families,
    sample,
    sample_specs,
)
from tvm_ledg.spaces.zoo.configs import NetConfig
from tvm_ledg.spaces.zoo.samplers import RESOLUTIONS

__all__ = [
    "FAMILIES",
    "FLOP_CAP",
    "NAME",
    "RESOLUTIONS",
    "NetConfig",
    "ZooArch",
    "build_network",
    "input_shape",
    "list_families",
    "sample",
    "sample_specs",
]
