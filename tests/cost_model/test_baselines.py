"""Baselines on synthetic NB201-keyed graphs whose latency follows a known law per device."""

import dataclasses
import json
import re
import zlib

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

import targets
from cost_model.baselines import (
    BASELINES,
    FlopsBaseline,
    GraphSAGEBaseline,
    OneHotMLP,
    ProxyDeviceBaseline,
    list_baselines,
    make_baseline,
)
from cost_model.data.specs import NB201_OPS
from cost_model.graph import OpGraph, OpNode, TensorSpec
from targets.errors import ArgumentError, CheckpointError, DataError

GPU, GPU2, GPU3 = "gtx1080ti-pytorch-fp32-b1", "rtx2080ti-pytorch-fp32-b1", "titanxp-pytorch-fp32-b1"
PHONE, PHONE2 = "pixel3-tflite", "pixel4-tflite-cpu"
TARGETS = {n: targets.load(n) for n in (GPU, GPU2, GPU3, PHONE, PHONE2)}
# ms = factor * MFLOPs + overhead * nodes: GPUs are fast per FLOP but pay per kernel launch
LAW = {GPU: (0.002, 0.05), GPU2: (0.0015, 0.04), GPU3: (0.0025, 0.05), PHONE: (0.08, 0.01), PHONE2: (0.05, 0.01)}
SMALL = {"mlp": {"hidden": 32, "epochs": 40, "lr": 3e-3, "batch_size": 32, "patience": 40},
         "graphsage": {"dim": 16, "layers": 2, "epochs": 25, "lr": 5e-3, "batch_size": 32, "patience": 10}}


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _node(i: int, op: str, c: int) -> OpNode:
    t = TensorSpec((1, c, 32, 32), "float32")
    if op in ("nor_conv_3x3", "nor_conv_1x1", "stem"):
        k = 1 if op == "nor_conv_1x1" else 3
        w = TensorSpec((c, c, k, k), "float32")
        macs = c * c * k * k * 32 * 32
        return OpNode(i, "nn.conv2d", attrs={"strides": [1, 1]}, inputs=[t, w], outputs=[t], flops=2 * macs,
                      macs=macs, params=c * c * k * k, bytes_read=t.nbytes + w.nbytes, bytes_written=t.nbytes)
    if op == "avg_pool_3x3":
        return OpNode(i, "nn.avg_pool2d", attrs={"pool_size": [3, 3]}, inputs=[t], outputs=[t],
                      flops=9 * t.numel, bytes_read=t.nbytes, bytes_written=t.nbytes)
    return OpNode(i, "add", inputs=[t, t], outputs=[t], flops=t.numel, bytes_read=2 * t.nbytes, bytes_written=t.nbytes)


def _graph(cell_ops: tuple[str, ...], cells: int = 3, c: int = 16) -> OpGraph:
    """A stem then, per cell, one node per non-``none`` edge (skips become adds), chained."""
    ops = ["stem"] + [op for _ in range(cells) for op in cell_ops if op != "none"]
    nodes = [_node(i, op, c) for i, op in enumerate(ops)]
    return OpGraph(nodes=nodes, edges=[(i, i + 1) for i in range(len(nodes) - 1)], output_nodes=[len(nodes) - 1])


def _cell(ops: tuple[str, ...]) -> str:
    return "nb201:|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)


def _archs(n: int, seed: int) -> dict[str, OpGraph]:
    rng = np.random.default_rng(seed)
    out: dict[str, OpGraph] = {}
    while len(out) < n:
        ops = tuple(NB201_OPS[i] for i in rng.integers(0, len(NB201_OPS), 6))
        out[_cell(ops)] = _graph(ops)
    return out


def _law(graph: OpGraph, target: str) -> float:
    factor, overhead = LAW[target]
    return factor * graph.total_flops / 1e6 + overhead * graph.num_nodes


def _rows(graphs, keys, names, law=_law):
    return [(k, t, law(graphs[k], t)) for k in keys for t in names]


GRAPHS = _archs(160, seed=0)
KEYS = sorted(GRAPHS)
TRAIN_KEYS, TEST_KEYS = KEYS[:110], KEYS[110:]
SEEN = [GPU, GPU2, PHONE]


def _log_rmse(pred, truth) -> float:
    return float(np.sqrt(np.mean((np.log(pred) - np.log(truth)) ** 2)))


# ---------------------------------------------------------------------- FLOPs


@pytest.mark.parametrize("feature", ["flops", "params"])
def test_flops_baseline_recovers_a_power_law_on_seen_targets(feature):
    law = {GPU: 3e-6, PHONE: 2e-4}

    def power(g, t):
        return law[t] * (g.total_flops if feature == "flops" else g.total_params) ** 0.9

    rows = _rows(GRAPHS, TRAIN_KEYS, law, power)
    model = FlopsBaseline(feature=feature).fit(GRAPHS, TARGETS, rows)
    for t in law:
        test = _rows(GRAPHS, TEST_KEYS, [t], power)
        pred = model.predict(GRAPHS, TARGETS, [(k, t) for k, _, _ in test])
        truth = np.array([r[2] for r in test])
        np.testing.assert_allclose(pred, truth, rtol=1e-6)
        assert model.coef_[t][1] == pytest.approx(0.9)


def _per_flop(g, t):
    return LAW[t][0] * (g.total_flops / 1e6) ** 0.9


def test_flops_baseline_zero_shot_ranks_by_flops_and_scales_by_descriptor():
    rows = _rows(GRAPHS, TRAIN_KEYS, [GPU, GPU2, PHONE, PHONE2], _per_flop)
    model = FlopsBaseline().fit(GRAPHS, TARGETS, rows)
    pairs = [(k, GPU3) for k in TEST_KEYS]
    pred = model.predict(GRAPHS, TARGETS, pairs)
    truth = np.array([_per_flop(GRAPHS[k], GPU3) for k in TEST_KEYS])
    assert np.all(np.isfinite(pred)) and np.all(pred > 0)
    assert model.slope_ == pytest.approx(0.9)
    assert spearmanr(pred, [GRAPHS[k].total_flops for k in TEST_KEYS]).statistic == pytest.approx(1.0)
    phone = model.predict(GRAPHS, TARGETS, [(k, PHONE2) for k in TEST_KEYS])
    # the unseen GPU gets a GPU's speed, not a phone's (20x slower by the law)
    assert _log_rmse(pred, truth) < 0.2 * _log_rmse(phone, truth)


# ---------------------------------------------------------------------- proxy


def _noisy(g, t):
    """Measurements that FLOPs do not explain: only a baseline that reads them gets them right."""
    noise = 1.0 + zlib.crc32((json.dumps([n.op for n in g.nodes]) + t).encode()) % 1000 / 500.0
    return _law(g, t) * noise


def test_proxy_uses_the_most_similar_devices_measurements():
    measured = TRAIN_KEYS[:80]
    rows = [(k, t, _noisy(GRAPHS[k], t)) for k in measured for t in (GPU, PHONE)]
    model = ProxyDeviceBaseline().fit(GRAPHS, TARGETS, rows)
    assert model.proxy_for(TARGETS[GPU2]) == GPU
    assert model.proxy_for(TARGETS[PHONE2]) == PHONE

    pred = model.predict(GRAPHS, TARGETS, [(k, GPU2) for k in measured])
    assert model.proxies_[GPU2] == GPU
    ratio = pred / np.array([model.measured_[GPU][k] for k in measured])
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-9)  # the proxy's own numbers, one scale
    assert np.all(np.isfinite(pred)) and np.all(pred > 0)

    seen = model.predict(GRAPHS, TARGETS, [(measured[0], PHONE)])
    assert seen[0] == pytest.approx(_noisy(GRAPHS[measured[0]], PHONE))

    unmeasured = model.predict(GRAPHS, TARGETS, [(k, PHONE2) for k in TEST_KEYS])
    a, b = model.flops_.coef_[PHONE]
    fit = np.exp(a + b * np.log([GRAPHS[k].total_flops for k in TEST_KEYS]))
    np.testing.assert_allclose(unmeasured / fit, unmeasured[0] / fit[0], rtol=1e-9)


def test_proxy_scale_follows_descriptor_speed_and_ties_go_to_the_first_name():
    rows = _rows(GRAPHS, TRAIN_KEYS, [GPU, GPU2, PHONE, PHONE2], _per_flop)
    model = ProxyDeviceBaseline().fit(GRAPHS, TARGETS, rows)
    # the descriptor regression must find the phone slower per FLOP than the GPU (40x by the law)
    w, _ = model.ridge_
    assert model.features_[PHONE] @ w - model.features_[GPU] @ w > 0.7 * np.log(40)
    twin = {"b-board": TARGETS[GPU], "a-board": dataclasses.replace(TARGETS[GPU], name="a-board")}
    rows = [(k, t, _law(GRAPHS[k], GPU)) for k in TRAIN_KEYS[:10] for t in twin]
    tied = ProxyDeviceBaseline().fit(GRAPHS, twin, rows)
    assert tied.proxy_for(TARGETS[GPU2]) == "a-board"


# -------------------------------------------------------------- trained models


def _train(name: str, seed: int = 0, names=SEEN, val: bool = True, **over):
    rows = _rows(GRAPHS, TRAIN_KEYS[:90], names)
    val_rows = _rows(GRAPHS, TRAIN_KEYS[90:], names) if val else ()
    return make_baseline(name, seed=seed, **{**SMALL[name], **over}).fit(GRAPHS, TARGETS, rows, val_rows)


# 90 architectures are few for a one-hot MLP (it reaches ~0.01 log-RMSE with 1000); the GNN reads FLOPs
@pytest.mark.parametrize("name, bound", [("mlp", 0.7), ("graphsage", 0.2)])
def test_trained_baselines_learn_and_beat_a_constant(name, bound):
    model = _train(name)
    hist = model.history_
    assert hist[-1]["train_loss"] < 0.3 * hist[0]["train_loss"], hist
    test = _rows(GRAPHS, TEST_KEYS, SEEN)
    truth = np.array([r[2] for r in test])
    pred = model.predict(GRAPHS, TARGETS, [(r[0], r[1]) for r in test])
    train_y = np.array([r[2] for r in _rows(GRAPHS, TRAIN_KEYS[:90], SEEN)])
    constant = np.full_like(truth, np.exp(np.mean(np.log(train_y))))
    print(name, "held-out log-RMSE", _log_rmse(pred, truth), "constant", _log_rmse(constant, truth))
    assert _log_rmse(pred, truth) < bound * _log_rmse(constant, truth)
    # early stopping keeps the best validation epoch's weights
    val = _rows(GRAPHS, TRAIN_KEYS[90:], SEEN)
    val_pred = model.predict(GRAPHS, TARGETS, [(r[0], r[1]) for r in val])
    assert _log_rmse(val_pred, [r[2] for r in val]) == pytest.approx(min(h["val_log_rmse"] for h in hist), rel=1e-5)


@pytest.mark.parametrize("name", ["mlp", "graphsage"])
def test_trained_baselines_are_deterministic_given_the_seed(name):
    pairs = [(k, GPU3) for k in TEST_KEYS[:20]]
    a = _train(name, seed=1, epochs=3, val=False).predict(GRAPHS, TARGETS, pairs)
    b = _train(name, seed=1, epochs=3, val=False).predict(GRAPHS, TARGETS, pairs)
    c = _train(name, seed=2, epochs=3, val=False).predict(GRAPHS, TARGETS, pairs)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("name", sorted(n for n in BASELINES if not hasattr(BASELINES[n], "covers")))
def test_zero_shot_prediction_is_finite_and_positive(name):  # per-device models (``covers``) refuse unseen targets
    rows = _rows(GRAPHS, TRAIN_KEYS[:40], SEEN)
    kw = {**SMALL.get(name, {}), "epochs": 2} if name in SMALL else {}
    model = make_baseline(name, **kw).fit(GRAPHS, TARGETS, rows)
    pred = model.predict(GRAPHS, TARGETS, [(k, t) for k in TEST_KEYS[:10] for t in (GPU3, PHONE2)])
    assert pred.shape == (20,) and pred.dtype == np.float64
    assert np.all(np.isfinite(pred)) and np.all(pred > 0)
    assert model.predict(GRAPHS, TARGETS, []).shape == (0,)


def test_graphsage_batches_graphs_independently_and_handles_unseen_ops():
    cache = {}
    model = GraphSAGEBaseline(**{**SMALL["graphsage"], "epochs": 3}, feature_cache=cache)
    model.fit(GRAPHS, TARGETS, _rows(GRAPHS, TRAIN_KEYS[:90], SEEN))
    assert sorted(cache) == TRAIN_KEYS[:90]  # featurized graphs are shared with whoever passed the cache
    pairs = [(k, GPU) for k in TEST_KEYS[:6]]
    together = model.predict(GRAPHS, TARGETS, pairs)
    alone = np.concatenate([model.predict(GRAPHS, TARGETS, [p]) for p in pairs])
    np.testing.assert_allclose(together, alone, rtol=1e-5)
    odd = _graph(("nor_conv_3x3",) * 6)
    odd.nodes[2].op = "nn.never_seen"
    pred = model.predict({"odd": odd}, TARGETS, [("odd", GPU)])
    assert np.isfinite(pred[0]) and pred[0] > 0


@pytest.mark.parametrize("name", ["mlp", "graphsage"])
def test_rows_per_epoch_bounds_the_rows_each_epoch_trains_on(name):
    model = make_baseline(name, **{**SMALL[name], "epochs": 1})
    rows = _rows(GRAPHS, TRAIN_KEYS[:30], SEEN)
    assert sum(len(b) for b in model._batches(rows, np.random.default_rng(0))) == 90
    model.rows_per_epoch = 20
    batches = list(model._batches(rows, np.random.default_rng(0)))
    assert 20 <= sum(len(b) for b in batches) < 20 + len(SEEN)  # GraphSAGE takes whole graphs
    assert len({int(i) for b in batches for i in b}) == sum(len(b) for b in batches)


def _ofa(ks_slot3: int, ks_slot0: int = 3) -> str:
    ks = [ks_slot0] + [3] * 2 + [ks_slot3] + [3] * 16
    config = {"d": [3, 2, 2, 2, 2], "e": [4] * 20, "ks": ks, "r": 192}
    return "ofa:" + json.dumps(config, separators=(",", ":"), sort_keys=True)


def test_mlp_encodes_ofa_without_unused_slots():
    keys = [_ofa(3), _ofa(7), _ofa(3, ks_slot0=7)]  # slot 3 is unused at depth 3; slot 0 is used
    graphs = {**GRAPHS, **{k: GRAPHS[KEYS[0]] for k in keys}}
    rows = _rows(GRAPHS, TRAIN_KEYS[:30], [GPU]) + [(keys[0], GPU, 5.0)]
    model = OneHotMLP(hidden=16, epochs=2).fit(graphs, TARGETS, rows)
    pred = model.predict(graphs, TARGETS, [(k, GPU) for k in keys])
    assert pred[0] == pred[1]
    assert pred[0] != pred[2]


# ---------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_bad_inputs_raise_errors_naming_the_problem(name):
    good = _rows(GRAPHS, TRAIN_KEYS[:5], [GPU])
    key = TRAIN_KEYS[0]
    with pytest.raises(CheckpointError, match="not fitted; call fit"):
        make_baseline(name).predict(GRAPHS, TARGETS, [(key, GPU)])
    with pytest.raises(DataError, match="at least one training row"):
        make_baseline(name).fit(GRAPHS, TARGETS, [])
    with pytest.raises(DataError, match=re.escape(key) + ".*must be finite and > 0"):
        make_baseline(name).fit(GRAPHS, TARGETS, [*good, (key, PHONE, 0.0)])
    with pytest.raises(DataError, match="no graph for 'nb201:missing'"):
        make_baseline(name).fit(GRAPHS, TARGETS, [*good, ("nb201:missing", GPU, 1.0)])
    with pytest.raises(DataError, match="no target descriptor named 'nowhere'"):
        make_baseline(name).fit(GRAPHS, TARGETS, [*good, (key, "nowhere", 1.0)])
    model = make_baseline(name, **({"epochs": 1} if name in SMALL else {})).fit(GRAPHS, TARGETS, good)
    with pytest.raises(DataError, match="no graph for 'nb201:missing'"):
        model.predict(GRAPHS, TARGETS, [("nb201:missing", GPU)])


def test_mlp_refuses_keys_that_are_not_spec_strings():
    graphs = {**GRAPHS, "resnet50": GRAPHS[KEYS[0]]}
    with pytest.raises(DataError, match="'resnet50' is not a spec string"):
        OneHotMLP(epochs=1).fit(graphs, TARGETS, [("resnet50", GPU, 1.0)])


def test_registry_names_the_known_baselines():
    assert make_baseline("flops", feature="params").feature == "params"
    assert {cls.name: cls for cls in BASELINES.values()} == BASELINES
    assert list_baselines() == ["additive", "flops", "graphsage", "mlp", "onehot-ridge", "proxy"]
    with pytest.raises(ArgumentError, match=f"^unknown baseline 'xgb'; expected one of {', '.join(BASELINES)}$"):
        make_baseline("xgb")
    with pytest.raises(ArgumentError, match="baseline 'mlp'.*'depth'"):
        make_baseline("mlp", depth=3)
    with pytest.raises(ArgumentError, match="feature 'macs'"):
        FlopsBaseline(feature="macs").fit(GRAPHS, TARGETS, _rows(GRAPHS, TRAIN_KEYS[:5], [GPU]))


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_parameters_round_trip_and_a_second_fit_starts_clean(name):
    small = {**SMALL[name], "epochs": 5} if name in SMALL else {}
    model = make_baseline(name, **small)
    assert type(model)(**model.get_params()).get_params() == model.get_params()
    with pytest.raises(CheckpointError, match="not fitted"):
        model.predict(GRAPHS, TARGETS, [(TEST_KEYS[0], SEEN[0])])
    rows = _rows(GRAPHS, TRAIN_KEYS[:90], SEEN)
    pairs = [(r[0], r[1]) for r in _rows(GRAPHS, TEST_KEYS, SEEN)]
    expected = make_baseline(name, **small).fit(GRAPHS, TARGETS, rows).predict(GRAPHS, TARGETS, pairs)
    model.fit(GRAPHS, TARGETS, _rows(GRAPHS, TRAIN_KEYS[:30], SEEN[:1]))
    np.testing.assert_array_equal(model.fit(GRAPHS, TARGETS, rows).predict(GRAPHS, TARGETS, pairs), expected)
