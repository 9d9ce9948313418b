"""The tuning workload suite and reading MetaSchedule's JSON database (no compilation, no tuning)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from targets.errors import ArgumentError, DataError
from tvm_ledg._tvm import PrimFunc, estimate_tir_flops, ms
from tvm_ledg.spaces.zoo import FAMILIES
from tvm_ledg.tuning import WORKLOADS, get_workload, list_workloads, program_graph, run_secs_in_order
from tvm_ledg.tuning.records import FAILED_RUN_SECS, database_records, mean_run_secs

SHAPES = {  # parameters in order: inputs, then the output
    "conv2d_resnet_3x3": [(1, 64, 28, 28), (64, 64, 3, 3), (1, 64, 1, 1), (1, 64, 28, 28)],
    "conv2d_resnet_3x3_s2": [(1, 64, 28, 28), (128, 64, 3, 3), (1, 128, 1, 1), (1, 128, 14, 14)],
    "conv2d_mobilenet_1x1": [(1, 24, 48, 48), (144, 24, 1, 1), (1, 144, 1, 1), (1, 144, 48, 48)],
    "depthwise_conv2d_mobilenet": [(1, 144, 48, 48), (144, 1, 3, 3), (1, 144, 1, 1), (1, 144, 48, 48)],
    "max_pool2d_resnet_stem": [(1, 64, 48, 48), (1, 64, 24, 24)],
    "global_avg_pool_resnet": [(1, 256, 12, 12), (1, 256, 1, 1)],
    "dense_transformer_mlp": [(64, 192), (768, 192), (768,), (64, 768)],
    "dense_classifier_head": [(1, 512), (1000, 512), (1000,), (1, 1000)],
    "batch_matmul_attention": [(4, 65, 48), (4, 65, 48), (4, 65, 65)],
    "softmax_attention": [(4, 65, 65), (4, 65, 65)],
    "layer_norm_transformer": [(64, 192), (192,), (192,), (64, 192)],
}


def test_suite_covers_the_issues_operator_kinds_from_zoo_families():
    assert list_workloads() == list(SHAPES) and len(SHAPES) >= 8
    kinds = {w.op for w in WORKLOADS.values()}
    assert kinds == {"dense", "conv2d", "depthwise_conv2d", "pool2d", "softmax", "layer_norm", "batch_matmul"}
    assert all(w.family in FAMILIES and w.name == name for name, w in WORKLOADS.items())


@pytest.mark.parametrize("name", list(SHAPES))
def test_each_workload_builds_a_fresh_fp32_primfunc_with_the_expected_shapes(name):
    func = get_workload(name).build()
    assert isinstance(func, PrimFunc) and func is not get_workload(name).build()
    args = ms.arg_info.ArgInfo.from_prim_func(func)
    assert [tuple(int(d) for d in a.shape) for a in args] == SHAPES[name]
    assert {str(a.dtype) for a in args} == {"float32"}
    graph = program_graph(func, name=name)
    assert graph.num_nodes > 0 and graph.output_nodes


def test_flops_of_the_compute_heavy_workloads_match_their_layer_formulas():
    conv = 2 * 64 * 64 * 9 * 28 * 28
    assert estimate_tir_flops(get_workload("conv2d_resnet_3x3").build()) == conv + 2 * 64 * 28 * 28  # + bias, ReLU
    assert estimate_tir_flops(get_workload("dense_transformer_mlp").build()) == 2 * 64 * 192 * 768 + 64 * 768
    assert estimate_tir_flops(get_workload("batch_matmul_attention").build()) == 2 * 4 * 65 * 65 * 48


def test_unknown_workload_lists_the_suite():
    with pytest.raises(ArgumentError, match="unknown tuning workload 'gemm'; expected one of conv2d_resnet_3x3"):
        get_workload("gemm")


def test_mean_run_secs_treats_missing_and_sentinel_times_as_failed():
    assert mean_run_secs([1e-3, 3e-3]) == pytest.approx(2e-3)
    assert mean_run_secs(None) is None and mean_run_secs([]) is None
    assert mean_run_secs([1e10]) is None and FAILED_RUN_SECS <= 1e10
    assert mean_run_secs([float("nan")]) is None


def test_run_secs_in_order_reads_measurement_order_and_names_bad_lines(tmp_path: Path):
    lines = [[0, ["trace", [2e-3, 4e-3], "target", "args"]], [0, ["trace", [1e10], "target", "args"]],
             [0, ["trace", [1e-3], "target", "args"]]]
    (tmp_path / "database_tuning_record.json").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    assert run_secs_in_order(tmp_path) == [pytest.approx(3e-3), None, pytest.approx(1e-3)]
    (tmp_path / "database_tuning_record.json").write_text('[0, ["trace", [1e-3]]]\n{"x": 1}\n')
    with pytest.raises(DataError, match="database_tuning_record.json:2: not a MetaSchedule tuning record"):
        run_secs_in_order(tmp_path)
    with pytest.raises(DataError, match="is not a MetaSchedule JSON database work_dir"):
        run_secs_in_order(tmp_path / "nowhere")


def test_database_records_needs_one_workload_per_work_dir(tmp_path: Path):
    (tmp_path / "database_tuning_record.json").write_text("")
    (tmp_path / "database_workload.json").write_text('["a"]\n["b"]\n')
    with pytest.raises(DataError, match="holds 2 workloads; tune one workload per work_dir"):
        database_records(tmp_path, "mm", "t")
