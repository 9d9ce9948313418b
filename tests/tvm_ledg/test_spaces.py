"""Architecture spaces: specs parse, networks match upstream sizes and published numbers.

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs
per multiply-accumulate of conv / linear), so ``MACs = total / 2``.
"""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from targets.errors import LedgError, ModelImportError
from tvm_ledg import spaces
from tvm_ledg.spaces import fbnet, nb201, ofa

REPO_ROOT = Path(__file__).resolve().parents[2]


def _data_root() -> Path:
    return Path(os.environ.get("TVM_LEDG_DATA_ROOT", REPO_ROOT.parent / "shared" / "data"))


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"public data not found: {path}")
    return path


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _macs(module: torch.nn.Module, shape: tuple[int, ...]) -> float:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(torch.zeros(shape))
    return counter.get_total_flops() / 2


# --------------------------------------------------------------------------- registry


def _ofa_spec(**overrides: object) -> str:
    config: dict[str, object] = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 128}
    config.update(overrides)
    return "ofa:" + json.dumps(config)


def test_list_spaces() -> None:
    assert spaces.list_spaces() == ["fbnet", "nb201", "ofa", "zoo"]
    assert all(spaces.describe_space(name) for name in spaces.list_spaces())


def test_build_returns_eval_module_with_batched_example() -> None:
    model = spaces.build("fbnet:" + ",".join(["8"] * 22), batch_size=3)
    assert model.space == "fbnet"
    assert not model.module.training
    assert model.batch_size == 3
    assert model.example_inputs[0].shape == (3, 3, 32, 32)
    with torch.no_grad():
        assert model.module(*model.example_inputs).shape == (3, 100)


def test_build_is_deterministic_and_keeps_global_rng() -> None:
    spec = "nb201:|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"
    state = torch.random.get_rng_state()
    a, b = spaces.build(spec), spaces.build(spec)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.example_inputs[0], b.example_inputs[0])
    for pa, pb in zip(a.module.parameters(), b.module.parameters()):
        assert torch.equal(pa, pb)


def test_canonical_names() -> None:
    assert spaces.parse(" FBNet: 0, 1,2,3,4,5,6,7,8,0,1,2,3,4,5,6,7,8,0,1,2,3 ").canonical == (
        "fbnet:0,1,2,3,4,5,6,7,8,0,1,2,3,4,5,6,7,8,0,1,2,3"
    )
    ofa_text = json.dumps({"wid": None, "r": 128, "d": [2] * 5, "e": [3] * 20, "ks": [3] * 20}, indent=2)
    assert spaces.build("ofa:" + ofa_text).name == (
        'ofa:{"d":[2,2,2,2,2],"e":[3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3],'
        '"ks":[3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3],"r":128}'
    )


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("nb201", "no '<space>:' prefix"),
        ("resnet:18", "unknown architecture space 'resnet'"),
        ("fbnet:" + ",".join(["0"] * 21), "expected 22 op indices, got 21"),
        ("fbnet:" + ",".join(["0"] * 23), "expected 22 op indices, got 23"),
        ("fbnet:" + ",".join(["0"] * 21 + ["9"]), "layer 21 has op index 9"),
        ("fbnet:" + ",".join(["0"] * 21 + ["-1"]), "layer 21 value '-1'"),
        ("fbnet:" + ",".join(["0"] * 20 + ["k3", "0"]), "layer 20 value 'k3'"),
        ("nb201:|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|", "expected 3 '+'-separated nodes"),
        ("nb201:|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown operation 'conv_5x5'"),
        ("nb201:|none~0|+|none~1|none~0|+|none~0|none~1|none~2|", "must be '<op>~0'"),
        ("nb201:|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 must have 2 input edge(s), got 1"),
        ("nb201:none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "node 1 'none~0|' must look like"),
        ('ofa:{"ks": [3, 3}', "not valid JSON"),
        ("ofa:[1, 2]", "expected a JSON object"),
        ('ofa:{"ks": [3], "e": [3], "d": [2]}', "missing ['r']"),
        ('ofa:{"ks":[3],"e":[3],"d":[2],"r":128,"w":1}', "unexpected ['w']"),
        (_ofa_spec(ks=[3] * 19), "'ks' needs 20 values, got 19"),
        (_ofa_spec(ks=[3] * 19 + [4]), "ks[19] = 4"),
        (_ofa_spec(e=[3] * 19 + ["6"]), "field 'e' has non-integer value '6'"),
        (_ofa_spec(d=[2, 2, 2, 2, 5]), "d[4] = 5"),
        (_ofa_spec(r=226), "field 'r' is 226"),
        (_ofa_spec(r=128.0), "field 'r' has non-integer"),
        (_ofa_spec(e=3), "field 'e' must be a list"),
        (_ofa_spec(wid=1.2), "'wid'"),
    ],
)
def test_invalid_specs_raise_model_import_error(spec: str, fragment: str) -> None:
    with pytest.raises(ModelImportError) as info:
        spaces.build(spec)
    assert isinstance(info.value, LedgError)
    assert fragment in str(info.value)


@pytest.mark.parametrize("batch_size", [0, -1, 1.5, True])
def test_invalid_batch_size(batch_size: object) -> None:
    with pytest.raises(ModelImportError, match="batch_size"):
        spaces.build("fbnet:" + ",".join(["8"] * 22), batch_size=batch_size)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "spec",
    [
        "nb201:|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|avg_pool_3x3~2|",
        "fbnet:0,1,4,0,0,7,6,3,7,7,4,8,6,7,0,5,6,7,4,7,7,3",
        'ofa:{"ks":[3,5,7,3,5,7,3,5,7,3,5,7,3,5,7,3,5,7,3,5],"e":[3,4,6,3,4,6,3,4,6,3,4,6,3,4,6,3,4,6,3,4],'
        '"d":[2,3,4,2,3],"r":128}',
    ],
)
def test_torch_export_matches_eager(spec: str) -> None:
    """The lowering layer traces with torch.export: every space must export and agree with eager."""
    model = spaces.build(spec, batch_size=2)
    exported = torch.export.export(model.module, model.example_inputs)
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(*model.example_inputs), model.module(*model.example_inputs))


# --------------------------------------------------------------------------- NAS-Bench-201

# Published NAS-Bench-201 / NATS-Bench ``tss`` costs (params in 1e6, FLOPs in 1e6 as
# counted by upstream xautodl/utils/flop_benchmark.py: conv + linear MACs + linear bias).
#  * arch index 0, FLOPs 15.64737 (cifar10-valid) / 15.65322 (cifar100) / 3.91948 (ImageNet16-120):
#    https://github.com/D-X-Y/NATS-Bench/issues/24
#  * arch index 1, "cifar10 FLOP=113.95 M, Params=0.802 MB; cifar100 FLOP=113.96 M, Params=0.808 MB;
#    ImageNet16-120 FLOP= 28.50 M, Params=0.810 MB": https://github.com/D-X-Y/NATS-Bench/issues/18
#  * {'flops': 113.95137, 'params': 0.802426} on cifar10 (hp=12):
#    https://github.com/D-X-Y/NATS-Bench/issues/36
_ARCH0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
_ARCH1 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
_ISSUE36 = "|skip_connect~0|+|none~0|nor_conv_3x3~1|+|avg_pool_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
_NB201_PUBLISHED = [
    # cell, classes, resolution, params (1e6) or None, params tolerance, FLOPs (1e6), FLOPs tolerance
    (_ARCH0, 10, 32, None, 0, 15.64737, 6e-6),
    (_ARCH0, 100, 32, None, 0, 15.65322, 6e-6),
    (_ARCH0, 120, 16, None, 0, 3.91948, 6e-6),
    (_ARCH1, 10, 32, 0.802, 5e-4, 113.95, 5e-3),
    (_ARCH1, 100, 32, 0.808, 5e-4, 113.96, 5e-3),
    (_ARCH1, 120, 16, 0.810, 5e-4, 28.50, 5e-3),
    (_ISSUE36, 10, 32, 0.802426, 6e-7, 113.95137, 6e-6),
]


@pytest.mark.parametrize(("cell", "classes", "res", "params", "p_tol", "flops", "f_tol"), _NB201_PUBLISHED)
def test_nb201_matches_published_costs(
    cell: str, classes: int, res: int, params: float | None, p_tol: float, flops: float, f_tol: float
) -> None:
    module = nb201.build_network(nb201.NB201Cell.parse(cell), num_classes=classes).eval()
    upstream_flops = _macs(module, (1, 3, res, res)) + classes  # + classifier bias, as upstream counts
    assert upstream_flops / 1e6 == pytest.approx(flops, abs=f_tol)
    if params is not None:
        assert _params(module) / 1e6 == pytest.approx(params, abs=p_tol)


def test_nb201_none_edges_are_kept_as_zero_multiplies() -> None:
    """Upstream InferCell instantiates OPS['none'] (x.mul(0.)) for every none edge."""
    cell = nb201.NB201Cell.parse("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    module = nb201.build_network(cell).eval()
    zeros = [m for m in module.modules() if type(m).__name__ == "_Zero"]
    assert len(zeros) == 5 * 15  # 5 none edges in each of the 15 cells
    infer_cell = module.cells[0]
    x = torch.randn(2, 16, 32, 32)
    with torch.no_grad():
        out = infer_cell(x)
    assert out.shape == x.shape and torch.count_nonzero(out) == 0  # node 3 has only none inputs
    # none/skip/pool edges carry no parameters: same size as the all-skip variant
    skip = nb201.NB201Cell.parse(
        "|nor_conv_3x3~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|avg_pool_3x3~1|none~2|"
    )
    assert _params(module) == _params(nb201.build_network(skip))


def test_nb201_parse_round_trip() -> None:
    text = "|nor_conv_1x1~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
    cell = nb201.NB201Cell.parse(text)
    assert cell.to_text() == text
    assert cell.edges == (("nor_conv_1x1",), ("none", "avg_pool_3x3"), ("skip_connect", "nor_conv_3x3", "none"))


@pytest.mark.data
def test_nb201_every_benchmark_string_parses() -> None:
    path = _need(_data_root() / "HELP" / "data" / "nasbench201" / "str_arch2idx.pt")
    str2idx = torch.load(path)
    assert len(str2idx) == 15625
    assert sorted(str2idx.values()) == list(range(15625))
    for text in str2idx:
        assert spaces.parse("nb201:" + text).canonical == "nb201:" + text
    for text in sorted(str2idx)[:: 15625 // 6]:  # a spread-out sample
        model = spaces.build("nb201:" + text)
        with torch.no_grad():
            assert model.module(*model.example_inputs).shape == (1, 10)


# --------------------------------------------------------------------------- FBNet


def _fbnet_reference(ops: list[int], dataset: str) -> tuple[int, int]:
    """(params, MACs) of HW-NAS-Bench ``FBNet_Infer``, computed by hand from its definition."""
    kernel_exp_groups = [(3, 1, 1), (3, 1, 2), (3, 3, 1), (3, 6, 1), (5, 1, 1), (5, 1, 2), (5, 3, 1), (5, 6, 1)]
    if dataset == "cifar100":
        hw, stem_stride, strides, header, classes = 32, 1, [1, 1, 2, 2, 1, 2, 1], 1504, 100
    else:
        hw, stem_stride, strides, header, classes = 224, 2, [1, 2, 2, 2, 1, 2, 1], 1984, 1000
    params = 3 * 16 * 9 + 2 * 16
    hw //= stem_stride
    macs = hw * hw * 16 * 27
    c_in, layer = 16, 0
    for n_blocks, c_out, stage_stride in zip([1, 4, 4, 4, 4, 4, 1], [16, 24, 32, 64, 112, 184, 352], strides):
        for i in range(n_blocks):
            s = stage_stride if i == 0 else 1
            out_hw = hw // s
            if ops[layer] == 8:  # skip
                if s == 2 or c_in != c_out:
                    params += c_in * c_out + 2 * c_out
                    macs += out_hw * out_hw * c_in * c_out
            else:
                k, e, g = kernel_exp_groups[ops[layer]]
                mid = c_in * e
                params += c_in * mid // g + 2 * mid + mid * k * k + 2 * mid + mid * c_out // g + 2 * c_out
                macs += hw * hw * c_in * mid // g + out_hw * out_hw * (mid * k * k + mid * c_out // g)
            hw, c_in, layer = out_hw, c_out, layer + 1
    params += 352 * header + 2 * header + header * classes + classes
    macs += hw * hw * 352 * header + header * classes
    return params, macs


# FBNet-B as defined by facebookresearch/mobile-vision mobile_cv/arch/fbnet_v2/fbnet_modeldef_cls.py,
# mapped to HW-NAS-Bench op indices (ir_k3 e1 -> 0 k3_e1, ir_k5 e6 -> 7 k5_e6, skip -> 8, ...).
_FBNET_B = [0, 3, 4, 0, 0, 7, 6, 3, 7, 7, 7, 8, 6, 7, 0, 4, 6, 7, 4, 7, 7, 3]


@pytest.mark.parametrize(
    "ops",
    [
        [8] * 22,  # every layer skip: only the shape-changing 1x1 projections remain
        [7] * 22,  # every layer k5_e6: the largest network
        [1, 5] * 11,  # grouped + shuffled blocks everywhere
        _FBNET_B,
        random.Random(0).choices(range(9), k=22),
        random.Random(1).choices(range(9), k=22),
    ],
)
def test_fbnet_matches_hand_count_of_hw_nas_bench_definition(ops: list[int]) -> None:
    """No per-architecture FLOPs are published for HW-NAS-Bench's FBNet space; count independently."""
    arch = fbnet.FBNetArch(tuple(ops))
    module = fbnet.build_network(arch).eval()
    params, macs = _fbnet_reference(ops, "cifar100")
    assert _params(module) == params
    assert _macs(module, (1, *fbnet.input_shape(arch))) == macs


def test_fbnet_b_imagenet_near_published_flops() -> None:
    """FBNet-B: 295M FLOPs on ImageNet (Wu et al., CVPR 2019, arXiv:1812.03443, abstract).

    HW-NAS-Bench's block always has its 1x1 expansion conv (also for e=1) and
    the paper counted with FB's own tool, so expect agreement within 5%, not equality.
    """
    arch = fbnet.FBNetArch(tuple(_FBNET_B))
    module = fbnet.build_network(arch, dataset="imagenet").eval()
    macs = _macs(module, (1, *fbnet.input_shape(arch, dataset="imagenet")))
    assert macs == _fbnet_reference(_FBNET_B, "imagenet")[1]
    assert macs / 1e6 == pytest.approx(295, rel=0.05)


def test_fbnet_grouped_op_has_shuffle_and_grouped_pointwise() -> None:
    arch = fbnet.FBNetArch.from_names(["k5_e1_g2"] + ["skip"] * 21)
    block = fbnet.build_network(arch).cells[0]
    assert block.conv1.groups == 2 and block.conv3.groups == 2 and block.shuffle is not None
    assert block.conv2.kernel_size == (5, 5) and block.conv2.groups == 16
    assert arch.names[0] == "k5_e1_g2" and arch.to_text().startswith("5,8,")


# --------------------------------------------------------------------------- Once-for-All


def _make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def _ofa_reference(ks: list[int], e: list[int], d: list[int], r: int) -> tuple[int, int]:
    """(params, MACs) of an OFA-MBv3 w1.0 sub-network, by hand from upstream ofa_mbv3.py."""
    hw = math.ceil(r / 2)
    params = 3 * 16 * 9 + 2 * 16  # first conv + BN
    macs = hw * hw * 16 * 27
    params += 16 * 9 + 2 * 16 + 16 * 16 + 2 * 16  # first block: dw + BN, project + BN
    macs += hw * hw * (16 * 9 + 16 * 16)
    c_in = 16
    for stage, (width, stride, se) in enumerate(
        zip([24, 40, 80, 112, 160], [2, 2, 2, 1, 2], [False, True, False, True, True])
    ):
        for j in range(d[stage]):
            k, ratio = ks[4 * stage + j], e[4 * stage + j]
            s = stride if j == 0 else 1
            mid = _make_divisible(c_in * ratio)
            out_hw = math.ceil(hw / s)
            params += c_in * mid + 2 * mid + mid * k * k + 2 * mid + mid * width + 2 * width
            macs += hw * hw * c_in * mid + out_hw * out_hw * (mid * k * k + mid * width)
            if se:
                se_mid = _make_divisible(mid // 4)
                params += 2 * mid * se_mid + se_mid + mid
                macs += 2 * mid * se_mid
            hw, c_in = out_hw, width
    params += 160 * 960 + 2 * 960 + 960 * 1280 + 1280 * 1000 + 1000
    macs += hw * hw * 160 * 960 + 960 * 1280 + 1280 * 1000
    return params, macs


_OFA_MAX = {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": 224}
_OFA_MIN = {"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 128}
# OFA specialized sub-net note8_lat@31ms_top1@72.8_finetune@25 (w1.0 supernet) as listed in
# open-mmlab/mmrazor configs/nas/mmcls/onceforall/OFA_SUBNET_NOTE8_LAT31.yaml (layers 2..6 = our stages).
_OFA_NOTE8_LAT31 = {
    "ks": [5, 3, 3, 3, 5, 5, 3, 3, 3, 3, 5, 3, 3, 5, 7, 3, 3, 3, 5, 5],
    "e": [3, 3, 3, 3, 4, 3, 3, 3, 4, 4, 4, 4, 4, 3, 4, 3, 6, 3, 3, 3],
    "d": [2, 2, 3, 3, 4],
    "r": 152,
}
# HELP's OFA search result data/ofa/architecture_config/gpu_titan_rtx_64/latency_20.3ms_accuracy_76.0.json
_OFA_HELP_TITAN = {
    "ks": [5, 3, 7, 3, 3, 3, 3, 3, 7, 7, 5, 3, 5, 5, 3, 3, 3, 3, 3, 5],
    "e": [3, 3, 4, 6, 6, 6, 4, 3, 4, 4, 3, 6, 6, 4, 4, 4, 6, 6, 4, 3],
    "d": [2, 3, 3, 3, 3],
    "r": 176,
}


@pytest.mark.parametrize("config", [_OFA_MAX, _OFA_MIN, _OFA_NOTE8_LAT31, _OFA_HELP_TITAN])
def test_ofa_matches_hand_count_of_upstream_definition(config: dict) -> None:
    arch = ofa.OFAArch.from_config(config)
    module = ofa.build_network(arch).eval()
    params, macs = _ofa_reference(config["ks"], config["e"], config["d"], config["r"])
    assert _params(module) == params
    assert _macs(module, (1, *ofa.input_shape(arch))) == macs


def test_ofa_note8_subnet_matches_published_size() -> None:
    """mmrazor's OFA table: note8_lat@31ms subnet, Params 4.6 M, FLOPs 105.4 M at 152x152.

    Source: open-mmlab/mmrazor configs/nas/mmcls/onceforall/README.md (converted from the
    official once-for-all checkpoints). Their FLOPs also count BN/activation elementwise
    work, so our conv+linear MACs must be at most that and within 10% of it.
    """
    arch = ofa.OFAArch.from_config(_OFA_NOTE8_LAT31)
    module = ofa.build_network(arch).eval()
    assert _params(module) / 1e6 == pytest.approx(4.6, abs=0.05)
    macs = _macs(module, (1, *ofa.input_shape(arch))) / 1e6
    assert 0.9 * 105.4 <= macs <= 105.4


def test_ofa_structure_follows_upstream() -> None:
    arch = ofa.OFAArch.from_config(_OFA_HELP_TITAN)
    module = ofa.build_network(arch)
    blocks = module.blocks
    assert len(blocks) == 1 + sum(_OFA_HELP_TITAN["d"])
    assert blocks[0].inverted_bottleneck is None and blocks[0].residual  # 16 -> 16, e=1
    first_of_stage = [1, 3, 6, 9, 12]
    assert [blocks[i].residual for i in first_of_stage] == [False] * 5
    with_se = [any(type(m).__name__ == "_SE" for m in b.modules()) for b in blocks]
    assert with_se == [False] * 3 + [True] * 3 + [False] * 3 + [True] * 6  # SE on the 40/112/160 stages
    # block j of stage i uses ks[4i + j]: stage 2 (index 1), second block -> ks[5]
    assert blocks[4].depth_conv[0].kernel_size == (3, 3) and blocks[3].depth_conv[0].kernel_size == (3, 3)
    assert blocks[2].depth_conv[0].kernel_size == (3, 3) and blocks[1].depth_conv[0].kernel_size == (5, 5)
    assert blocks[6].depth_conv[0].kernel_size == (7, 7)  # stage 3 first block -> ks[8]


def test_ofa_accepts_help_json_and_numpy_ints() -> None:
    config = dict(_OFA_HELP_TITAN, wid=None, r=np.int64(176))
    arch = ofa.OFAArch.from_config(config)
    assert arch.r == 176 and type(arch.r) is int
    assert ofa.OFAArch.parse(arch.to_text()) == arch


def _load_ofa_archs(path: Path) -> list[dict]:
    # HELP stores numpy scalars (pickled as numpy.core.*); allow exactly those in the restricted loader.
    from numpy._core.multiarray import scalar

    allowed = [(scalar, "numpy.core.multiarray.scalar"), np.dtype, type(np.dtype("int64"))]
    with torch.serialization.safe_globals(allowed):
        return torch.load(path, weights_only=True)["arch"]


@pytest.mark.data
def test_ofa_every_help_arch_parses() -> None:
    archs = _load_ofa_archs(_need(_data_root() / "HELP" / "data" / "ofa" / "ofa_archs.pt"))
    assert len(archs) == 5000
    parsed = [ofa.OFAArch.from_config(config) for config in archs]
    for arch in parsed:
        assert spaces.parse("ofa:" + arch.to_text()).arch == arch
    for arch in parsed[:: 5000 // 3]:
        model = spaces.build("ofa:" + arch.to_text())
        assert model.example_inputs[0].shape == (1, 3, arch.r, arch.r)
        with torch.no_grad():
            assert model.module(*model.example_inputs).shape == (1, 1000)
