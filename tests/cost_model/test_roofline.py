"""Roofline head on hand-computed kernels: work, scaling to the target, the bound, labels, spec estimates."""

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import cost_model
from cost_model.batch import collate
from cost_model.featurize import FEATURE_NAMES, graph_tensors
from cost_model.graph import OpGraph, OpNode, TensorSpec
from cost_model.ledgformer import LeDGFormer, LeDGFormerConfig
from cost_model.predictor import LatencyPredictor, TrainConfig
from cost_model.roofline import (
    BOUND_LABELS,
    graph_input_batch,
    node_work,
    roofline_log_ms,
    roofline_targets,
    scaled_log_work,
    target_roofline,
)
from targets.schema import TargetDescriptor

X = TensorSpec((1, 64), "float32")
W = TensorSpec((64, 32), "float32")
Y = TensorSpec((1, 32), "float32")
V = TensorSpec((1, 1024), "float32")

# y = x @ W: 2 * 64 * 32 FLOPs; reads x (256 B) and W (8192 B), writes y (128 B).
MATMUL = OpNode(0, "relax.matmul", inputs=[X, W], outputs=[Y], flops=4096, macs=2048, params=2048,
                bytes_read=256 + 8192, bytes_written=128)
# v + v: 1024 FLOPs; reads 2 x 4096 B, writes 4096 B, no weights.
ADD = OpNode(1, "relax.add", inputs=[V, V], outputs=[V], flops=1024, bytes_read=8192, bytes_written=4096)


def _graph(batch: int = 1) -> OpGraph:
    return OpGraph([MATMUL, ADD], [], inputs=[TensorSpec((batch, 64), "float32")], name=f"mm+add b{batch}")


def _target(name: str = "toy", *, tops: dict | None = None, bandwidth: float | None = 1000.0, batch: int | None = 32,
            precision: str | None = "fp16") -> TargetDescriptor:
    return TargetDescriptor.from_dict({
        "schema_version": 1, "name": name, "device_class": "desktop-gpu", "model": "Toy GPU",
        "peak_tops": {"fp32": 0.5, "fp16": 1.0, "fp16_tensor": 4.0} if tops is None else tops,
        "memory": {"bandwidth_gbps": bandwidth}, "runtime": "pytorch", "precision": precision, "batch_size": batch,
    })


def test_node_work_splits_weights_from_activations():
    assert node_work(MATMUL) == (4096.0, 8192.0, 384.0, 4.0)
    assert node_work(ADD) == (1024.0, 0.0, 12288.0, 4.0)
    assert graph_input_batch(_graph(8)) == 8
    assert graph_input_batch(OpGraph([ADD.__class__(0, "relax.add")], [])) == 1


def test_graph_tensors_refuse_work_of_the_wrong_shape():
    from cost_model.batch import GraphTensors
    from targets.errors import GraphError

    with pytest.raises(GraphError, match="work has shape"):
        GraphTensors(["a", "b"], torch.zeros(2, 3), torch.zeros(2, 0), work=np.zeros((2, 3)))
    with pytest.raises(GraphError, match="work has shape"):
        GraphTensors(["a", "b"], torch.zeros(2, 3), torch.zeros(2, 0), work=np.zeros((2, 4), dtype=np.float32))


def test_target_numbers_follow_the_precision():
    fp16 = target_roofline(_target())  # the plain fp16 rate: no setting states that it used tensor cores
    assert (fp16.peak_flops, fp16.bandwidth, fp16.batch_size, fp16.elem_bytes) == (1e12, 1e12, 32, 2)
    fp32 = target_roofline(_target(precision=None, batch=None))  # null precision is read as fp32
    assert (fp32.peak_flops, fp32.batch_size, fp32.elem_bytes) == (0.5e12, None, None)
    assert target_roofline(_target(precision="int8")).peak_flops is None
    assert target_roofline(_target(bandwidth=None)).bandwidth is None


def test_work_scales_with_the_target_batch_and_precision():
    tensors = graph_tensors(_graph())
    assert tensors.input_batch == 1 and tensors.work.dtype == np.float64
    batch = collate([tensors, graph_tensors(_graph(8))])
    specs = roofline_targets([_target(), _target(batch=None, precision=None)])
    log_flops, log_bytes = scaled_log_work(batch.work, batch.input_batch, batch.batch, specs)
    # row 0: batch 1 -> 32, fp32 -> fp16 (2 of 4 bytes); weights are read once, activations per sample
    # row 1: lowered at batch 8, target says neither batch nor precision: unchanged
    expected_flops = [4096 * 32, 1024 * 32, 4096, 1024]
    expected_bytes = [(384 * 32 + 8192) / 2, 12288 * 32 / 2, 8192 + 384, 12288]
    np.testing.assert_allclose(log_flops.exp().numpy(), expected_flops, rtol=1e-12)
    np.testing.assert_allclose(log_bytes.exp().numpy(), expected_bytes, rtol=1e-12)
    batch_256 = roofline_targets([_target(batch=256), _target(batch=256)])
    log_flops, _ = scaled_log_work(batch.work, batch.input_batch, batch.batch, batch_256)
    np.testing.assert_allclose(log_flops.exp().numpy()[2:], [4096 * 32, 1024 * 32], rtol=1e-12)  # 256 / 8


def test_roofline_time_and_which_roof_binds():
    # P = BW = 1e12: the matmul (12.8 FLOP/B) is compute-bound, the add (1/6 FLOP/B) memory-bound.
    log_flops = torch.tensor([math.log(4096 * 32), math.log(1024 * 32)], dtype=torch.float64)
    log_bytes = torch.tensor([math.log(10240.0), math.log(196608.0)], dtype=torch.float64)
    log_spec = torch.tensor(math.log(1e12), dtype=torch.float64)
    log_ms, compute = roofline_log_ms(log_flops, log_bytes, log_spec, log_spec)
    np.testing.assert_allclose(log_ms.exp().numpy(), [131072 / 1e12 * 1e3, 196608 / 1e12 * 1e3], rtol=1e-12)
    assert compute.tolist() == [True, False]


def _roofline_model(efficiency_bias: float, overhead_ms: float) -> LeDGFormer:
    """A roofline model whose efficiency and overhead are constants (node and target weights zeroed)."""
    torch.manual_seed(0)
    model = LeDGFormer(LeDGFormerConfig(text_dim=8, num_node_features=len(FEATURE_NAMES), num_target_features=1,
                                        dim=16, layers=1, heads=4, dropout=0.0, use_target_features=False)).eval()
    head = model.roofline
    with torch.no_grad():
        for layer in (head.efficiency, head.efficiency_target, head.overhead, head.overhead_target,
                      head.node_factors, head.size_slope):
            layer.weight.zero_()
        head.efficiency.bias.fill_(efficiency_bias)
        head.overhead.bias.fill_(math.log(overhead_ms))
    return model


def _run(model: LeDGFormer, descs: list[TargetDescriptor]):
    batch = collate([graph_tensors(_graph()) for _ in descs])
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        return model(batch, torch.randn(len(batch.texts), 8, generator=gen), torch.randn(len(descs), 8, generator=gen),
                     roofline=roofline_targets(descs))


# roofline times (ms) of the matmul and the add on _target(): see test_roofline_time_and_which_roof_binds
T_STAR_MS = [131072 / 1e12 * 1e3, 196608 / 1e12 * 1e3]


def test_with_full_efficiency_latency_is_roofline_plus_overheads():
    out = _run(_roofline_model(efficiency_bias=60.0, overhead_ms=2e-5), [_target()])
    np.testing.assert_allclose(out.per_op_ms.numpy(), np.array(T_STAR_MS) + 2e-5, rtol=1e-5)
    np.testing.assert_allclose(out.latency_ms.numpy(), [sum(T_STAR_MS) + 4e-5], rtol=1e-5)
    assert [BOUND_LABELS[i] for i in out.bound.tolist()] == ["compute", "memory"]


def test_prediction_never_beats_the_roofline():
    torch.manual_seed(3)
    model = LeDGFormer(LeDGFormerConfig(text_dim=8, num_node_features=len(FEATURE_NAMES), num_target_features=1,
                                        dim=16, layers=1, heads=4, use_target_features=False)).eval()
    for p in model.roofline.parameters():  # arbitrary heads, efficiencies far from 1
        torch.nn.init.normal_(p, std=3.0)
    out = _run(model, [_target(), _target()])
    # up to float32 rounding of the log-space round trip (about |log t*| x 1.2e-7)
    assert bool((out.per_op_ms >= torch.tensor(T_STAR_MS * 2, dtype=torch.float32) * (1 - 1e-5)).all())
    assert bool((out.latency_ms >= sum(T_STAR_MS) * (1 - 1e-5)).all())
    assert torch.allclose(out.per_op_ms.reshape(2, 2).sum(1), out.latency_ms, rtol=1e-6)


def test_low_efficiency_or_large_overhead_change_the_labels():
    # efficiency at its floor (1e-3): kernel times x 1000, still above a 1e-4 ms overhead
    out = _run(_roofline_model(efficiency_bias=-60.0, overhead_ms=1e-4), [_target()])
    np.testing.assert_allclose(out.per_op_ms.numpy(), np.array(T_STAR_MS) * 1e3 + 1e-4, rtol=1e-4)
    assert [BOUND_LABELS[i] for i in out.bound.tolist()] == ["compute", "memory"]
    out = _run(_roofline_model(efficiency_bias=60.0, overhead_ms=1e-3), [_target()])
    assert [BOUND_LABELS[i] for i in out.bound.tolist()] == ["overhead", "overhead"]


def test_missing_specs_use_the_estimate_and_stated_specs_do_not():
    model = _roofline_model(efficiency_bias=60.0, overhead_ms=1e-9)
    with torch.no_grad():
        model.roofline.spec_correction.bias.copy_(torch.tensor([1.0, -1.0]))
    stated = _run(model, [_target()]).per_op_ms
    estimated = _run(model, [_target(tops={}, bandwidth=None)]).per_op_ms
    np.testing.assert_allclose(stated.numpy(), T_STAR_MS, rtol=1e-4)
    # estimate: the prior (no training targets fitted: 1e12 FLOP/s, 1e11 B/s) corrected by (e, 1/e)
    peak, bandwidth = 1e12 * math.e, 1e11 / math.e
    expected = [max(4096 * 32 / peak, 10240 / bandwidth) * 1e3, max(1024 * 32 / peak, 196608 / bandwidth) * 1e3]
    np.testing.assert_allclose(estimated.numpy(), expected, rtol=1e-4)


def test_spec_prior_is_fitted_on_targets_that_state_them_and_ignores_the_spec_columns():
    from cost_model.layers.roofline_head import RooflineHead

    head = RooflineHead(dim=4, num_target_features=2)
    clock = torch.tensor([[-1.0], [0.0], [1.0], [0.5]])
    spec_col = torch.tensor([[5.0], [-5.0], [2.0], [0.0]])  # the spec itself: must not be read
    values, mask = torch.cat([clock, spec_col], 1), torch.ones(4, 2)
    log_specs = torch.stack([25.0 + clock[:, 0], torch.full((4,), 22.0)], 1)
    known = torch.tensor([[True, True], [True, True], [True, True], [False, False]])
    head.fit_spec_prior(values, mask, log_specs, known, spec_columns=torch.tensor([False, True]))
    estimate = head.estimate_specs(values, mask, torch.zeros(4, 4)).detach()
    # ridge (lambda 1) on 3 centred points with slope 1: slope 2 / (2 + 1)
    np.testing.assert_allclose(estimate[:, 0].numpy(), 25.0 + 2 / 3 * clock[:, 0].numpy(), rtol=1e-5)
    np.testing.assert_allclose(estimate[:, 1].numpy(), 22.0, rtol=1e-6)
    moved = values.clone()
    moved[:, 1] += 100.0
    assert torch.equal(head.estimate_specs(moved, mask, torch.zeros(4, 4)).detach(), estimate)


def _tiny_predictor(descs: dict[str, TargetDescriptor], **options: str) -> tuple[LatencyPredictor, dict[str, OpGraph]]:
    graphs = {f"g{b}": _graph(b) for b in (1, 2, 4)}
    rows = [(k, t, 1.0 + i) for i, k in enumerate(graphs) for t in descs]
    model = {"dim": 8, "layers": 1, "heads": 2, **options}
    predictor = LatencyPredictor(encoder={"kind": "builtin", "dim": 8}, model=model, train=TrainConfig(epochs=1))
    return predictor.fit(graphs, descs, rows), graphs


def test_predict_detailed_labels_each_operator_and_warns_once_about_estimates(caplog):
    descs = {"toy": _target(), "bare": _target("bare", tops={}, bandwidth=None)}
    with caplog.at_level(logging.WARNING, logger="cost_model.predictor"):
        predictor, graphs = _tiny_predictor(descs)
        result = predictor.predict_detailed(graphs, descs, [("g1", "toy"), ("g2", "bare")], breakdown=True)
    assert predictor.model_.config.head == "roofline"
    assert [len(b) for b in result.bound] == [2, 2]
    assert all(label in BOUND_LABELS for b in result.bound for label in b)
    np.testing.assert_allclose([ops.sum() for ops in result.per_op_ms], result.latency_ms, rtol=1e-6)
    warned = [r.getMessage() for r in caplog.records if "learned estimate" in r.getMessage()]
    assert sorted(m.split(":")[0] for m in warned) == ["target bare", "target bare"]  # peak and bandwidth, once
    assert predictor.predict_detailed(graphs, descs, [("g1", "toy")]).bound is None  # no breakdown asked


def test_free_head_has_no_labels_old_configs_load_as_free_and_the_shipped_checkpoint_labels():
    free = LeDGFormerConfig(text_dim=8, num_node_features=3, num_target_features=1, head="free")
    old = {k: v for k, v in free.to_dict().items() if k != "head"}
    assert LeDGFormerConfig.from_dict(old).head == "free"
    assert LeDGFormerConfig(text_dim=8, num_node_features=3, num_target_features=1).head == "roofline"
    with pytest.raises(ValueError, match="head='linear'"):
        LeDGFormerConfig(text_dim=8, num_node_features=3, num_target_features=1, head="linear")
    predictor, graphs = _tiny_predictor({"toy": _target()}, head="free", fusion="film")
    result = predictor.predict_detailed(graphs, {"toy": _target()}, [("g1", "toy")], breakdown=True)
    assert result.bound is None and len(result.per_op_ms[0]) == 2
    shipped = Path(cost_model.__file__).resolve().parent / "checkpoints" / "ledg-default"
    if shipped.is_dir():
        predictor = LatencyPredictor.from_pretrained(shipped)
        assert predictor.model_.config.head == "roofline"
        descs = {"toy": _target()}
        result = predictor.predict_detailed({"g": _graph()}, descs, [("g", "toy")], breakdown=True)
        assert len(result.bound[0]) == len(result.per_op_ms[0]) == 2
        assert set(result.bound[0]) <= {"compute", "memory", "overhead"}


def test_networks_default_to_the_roofline_head_and_programs_to_the_free_head():
    heads = {}
    for granularity in ("network", "program"):
        predictor = LatencyPredictor(encoder={"kind": "builtin", "dim": 8}, model={"dim": 8, "layers": 1, "heads": 2},
                                     granularity=granularity)
        predictor._build()
        heads[granularity] = predictor.model_.config.head
    assert heads == {"network": "roofline", "program": "free"}
