"""Per-device linear baselines on small synthetic graphs whose latency is a power law in their kernel counts."""

import math
from collections import Counter

import numpy as np
import pytest
from scipy.stats import spearmanr

import targets
from cost_model.baselines import make_baseline
from cost_model.data.specs import NB201_OPS
from cost_model.graph import OpGraph, OpNode, TensorSpec
from cost_model.linear_baselines import (
    AdditiveLinearBaseline,
    OneHotRidgeBaseline,
    fit_ridge,
    kernel_kind,
    nb201_pair_features,
)
from targets.errors import ArgumentError, CheckpointError, DataError

GPU, GPU2, PHONE, NEW = ("gtx1080ti-pytorch-fp32-b1", "rtx2080ti-pytorch-fp32-b1", "pixel3-tflite",
                         "pixel4-tflite-cpu")
TARGETS = {n: targets.load(n) for n in (GPU, GPU2, PHONE, NEW)}
# log ms = intercept + sum over kinds of exponent * log(1 + count): the same exponents everywhere,
# different overall speed
KIND_COST = {"nn.conv2d k3x3": 0.90, "nn.conv2d k1x1": 0.40, "nn.avg_pool2d k3x3": 0.25, "add": 0.10}
INTERCEPT = {GPU: -1.0, GPU2: -1.3, PHONE: 2.0, NEW: 1.2}

T = TensorSpec((1, 16, 32, 32), "float32")


def _node(i: int, op: str) -> OpNode:
    if op in ("nor_conv_3x3", "nor_conv_1x1"):
        k = 3 if op == "nor_conv_3x3" else 1
        w = TensorSpec((16, 16, k, k), "float32")
        macs = 16 * 16 * k * k * 32 * 32
        return OpNode(i, "nn.conv2d", inputs=[T, w], outputs=[T], flops=2 * macs, macs=macs,
                      bytes_read=T.nbytes + w.nbytes, bytes_written=T.nbytes)
    if op == "avg_pool_3x3":
        return OpNode(i, "nn.avg_pool2d", attrs={"pool_size": [3, 3]}, inputs=[T], outputs=[T], flops=9 * T.numel,
                      bytes_read=T.nbytes, bytes_written=T.nbytes)
    return OpNode(i, "add", inputs=[T, T], outputs=[T], flops=T.numel, bytes_read=2 * T.nbytes,
                  bytes_written=T.nbytes)


def _cell(ops: tuple[str, ...]) -> str:
    return "nb201:|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)


def _graph(ops: tuple[str, ...]) -> OpGraph:
    """One node per non-``none`` edge, repeated over 3 cells, chained."""
    kinds = [op for _ in range(3) for op in ops if op != "none"] or ["skip_connect"]
    nodes = [_node(i, op) for i, op in enumerate(kinds)]
    return OpGraph(nodes=nodes, edges=[(i, i + 1) for i in range(len(nodes) - 1)], output_nodes=[len(nodes) - 1])


def _archs(n: int, seed: int) -> dict[str, OpGraph]:
    rng = np.random.default_rng(seed)
    out: dict[str, OpGraph] = {}
    while len(out) < n:
        ops = tuple(NB201_OPS[i] for i in rng.integers(0, len(NB201_OPS), 6))
        out[_cell(ops)] = _graph(ops)
    return out


def _ms(graph: OpGraph, target: str) -> float:
    counts = Counter(kernel_kind(n) for n in graph.nodes)
    return math.exp(INTERCEPT[target] + sum(KIND_COST[k] * math.log1p(c) for k, c in counts.items()))


GRAPHS = _archs(120, seed=0)
KEYS = sorted(GRAPHS)
TRAIN, TEST = KEYS[:80], KEYS[80:]


def _rows(keys, names):
    return [(k, t, _ms(GRAPHS[k], t)) for k in keys for t in names]


def _pairs(keys, target):
    return [(k, target) for k in keys]


def test_kernel_kind_adds_the_kernel_size_of_convolutions_and_pooling_only():
    assert kernel_kind(_node(0, "nor_conv_3x3")) == "nn.conv2d k3x3"
    assert kernel_kind(_node(0, "nor_conv_1x1")) == "nn.conv2d k1x1"
    assert kernel_kind(_node(0, "avg_pool_3x3")) == "nn.avg_pool2d k3x3"
    assert kernel_kind(_node(0, "skip_connect")) == "add"


def test_nb201_features_of_a_hand_checked_cell():
    # edges: 0 conv3x3, 1 skip, 2 none, 3 avg_pool, 4 conv1x1, 5 conv3x3; ops: none 0, skip 1, 1x1 2, 3x3 3, pool 4
    x = nb201_pair_features("nb201:|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|"
                            "nor_conv_3x3~2|")
    assert x.shape == (30 + 30 * 29 // 2,)
    assert np.flatnonzero(x[:30]).tolist() == [3, 6, 10, 19, 22, 28]
    products = x[30:]
    assert products.sum() == 15  # one product per pair of the 6 edges
    i, j = np.triu_indices(30, k=1)
    on = {(int(a), int(b)) for a, b in zip(i[products == 1], j[products == 1])}
    assert (3, 28) in on and (6, 10) in on and (3, 4) not in on
    with pytest.raises(DataError, match="edge"):
        nb201_pair_features("nb201:|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|")


def test_fit_ridge_solves_least_squares_and_a_strong_pull_returns_the_prior():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    y = x @ [1.0, -2.0, 0.5] + 3.0
    exact = fit_ridge(x, y, alpha=0.0)
    assert np.allclose(exact.w, [1.0, -2.0, 0.5]) and exact.w0 == pytest.approx(3.0)
    prior = np.array([7.0, 7.0, 7.0])
    assert np.allclose(fit_ridge(x, y, alpha=1e9, prior=prior).w, prior, atol=1e-5)


def test_additive_model_recovers_a_log_additive_law_per_device():
    model = AdditiveLinearBaseline(alphas=(1e-6,)).fit(GRAPHS, TARGETS, _rows(TRAIN, [GPU, PHONE]))
    for target in (GPU, PHONE):
        pred = model.predict(GRAPHS, TARGETS, _pairs(TEST, target))
        truth = np.array([_ms(GRAPHS[k], target) for k in TEST])
        assert np.allclose(pred, truth, rtol=1e-3)
    assert model.kinds_ == sorted(KIND_COST) and len(model.feature_names()) == 3 * len(KIND_COST)


def test_validation_rows_choose_the_penalty():
    noisy = [(k, t, ms * math.exp(0.3 * math.sin(i))) for i, (k, t, ms) in enumerate(_rows(TRAIN[:20], [GPU]))]
    val = _rows(TRAIN[20:], [GPU])
    alphas = (0.0, 1.0, 30.0)
    model = AdditiveLinearBaseline(alphas=alphas).fit(GRAPHS, TARGETS, noisy, val)
    errors = {}
    for a in alphas:
        pred = AdditiveLinearBaseline(alphas=(a,)).fit(GRAPHS, TARGETS, noisy).predict(GRAPHS, TARGETS,
                                                                                        [(k, t) for k, t, _ in val])
        errors[a] = float(np.mean((np.log(pred) - np.log([r[2] for r in val])) ** 2))
    assert model.alpha_ == min(errors, key=errors.get)
    assert AdditiveLinearBaseline(alphas=alphas).fit(GRAPHS, TARGETS, noisy).alpha_ == alphas[0]  # no val rows


def test_a_device_without_rows_is_not_applicable():
    model = AdditiveLinearBaseline().fit(GRAPHS, TARGETS, _rows(TRAIN, [GPU, PHONE]))
    assert model.covers(GPU) and not model.covers(NEW)
    with pytest.raises(ArgumentError, match=f"no model for target.*'{NEW}'.*fitted on"):
        model.predict(GRAPHS, TARGETS, _pairs(TEST, NEW))
    with pytest.raises(CheckpointError, match="not fitted"):
        AdditiveLinearBaseline().predict(GRAPHS, TARGETS, _pairs(TEST, GPU))


def test_a_second_fit_forgets_the_first():
    model = AdditiveLinearBaseline().fit(GRAPHS, TARGETS, _rows(TRAIN, [GPU]))
    model.adapt(NEW, [(k, _ms(GRAPHS[k], NEW)) for k in TRAIN[:5]], GRAPHS)
    model.fit(GRAPHS, TARGETS, _rows(TRAIN, [PHONE]))
    assert model.fitted_targets_ == [PHONE] and not model.covers(GPU) and not model.covers(NEW)


def test_few_shot_pulls_toward_the_fitted_devices_and_ranks_from_three_samples():
    model = AdditiveLinearBaseline(shot_alpha=10.0).fit(GRAPHS, TARGETS, _rows(TRAIN, [GPU, GPU2, PHONE]))
    samples = [(k, _ms(GRAPHS[k], NEW)) for k in TRAIN[:3]]  # 3 samples, 12 weights: the prior decides the rest
    model.adapt(NEW, samples, GRAPHS)
    pred = model.predict(GRAPHS, TARGETS, _pairs(TEST, NEW))
    truth = np.array([_ms(GRAPHS[k], NEW) for k in TEST])
    assert spearmanr(pred, truth).statistic > 0.99
    assert np.median(np.abs(pred / truth - 1)) < 0.05  # the samples set the device's overall speed
    no_prior = AdditiveLinearBaseline(shot_alpha=10.0).fit(GRAPHS, TARGETS, _rows(TRAIN, [GPU, GPU2, PHONE]))
    no_prior.prior_ = np.zeros_like(no_prior.prior_)
    no_prior.adapt(NEW, samples, GRAPHS)
    worse = no_prior.predict(GRAPHS, TARGETS, _pairs(TEST, NEW))
    assert np.median(np.abs(worse / truth - 1)) > 2 * np.median(np.abs(pred / truth - 1))
    strong = AdditiveLinearBaseline(shot_alpha=1e9).fit(GRAPHS, TARGETS, _rows(TRAIN, [GPU, PHONE]))
    strong.adapt(NEW, samples, GRAPHS)
    assert np.allclose(strong.models_[NEW].w, strong.prior_, atol=1e-6)
    with pytest.raises(DataError, match="at least one sample"):
        strong.adapt(NEW, [], GRAPHS)


def test_onehot_ridge_fits_nb201_keys_and_refuses_others():
    model = make_baseline("onehot-ridge").fit(GRAPHS, TARGETS, _rows(TRAIN, [GPU]))
    pred = model.predict(GRAPHS, TARGETS, _pairs(TEST, GPU))
    truth = np.array([_ms(GRAPHS[k], GPU) for k in TEST])
    assert spearmanr(pred, truth).statistic > 0.75 and model.alpha_ == 1.0  # 465 features, 80 samples
    graphs = {**GRAPHS, "resnet50": GRAPHS[KEYS[0]]}
    with pytest.raises(DataError, match="'resnet50' is not an 'nb201:' spec string"):
        OneHotRidgeBaseline().fit(graphs, TARGETS, [("resnet50", GPU, 1.0)])


def test_registry_builds_the_linear_baselines():
    assert isinstance(make_baseline("additive", shot_alpha=3.0), AdditiveLinearBaseline)
    with pytest.raises(ArgumentError, match="alphas must be"):
        make_baseline("additive", alphas=()).fit(GRAPHS, TARGETS, _rows(TRAIN, [GPU]))


# Published reference of the one-hot ridge on NAS-Bench-201 (train on the first 1,000 of
# default_rng(0).permutation(15625), test on [1200:6200]): Spearman to 3 digits, MAPE % to 1 digit.
REFERENCE = {"1080ti_1": (0.986, 2.2), "2080ti_32": (0.984, 2.6), "samsung_a50": (0.970, 7.1),
             "gold_6240": (0.951, 8.3)}


@pytest.mark.data
def test_onehot_ridge_reproduces_the_reference_numbers_on_the_fixed_nb201_split():
    from cost_model.data import load_device
    from cost_model.metrics import mape, spearman

    perm = np.random.default_rng(0).permutation(15625)
    tables = {d: load_device("help-nb201", d) for d in REFERENCE}
    archs = tables["1080ti_1"].archs
    descs = {t.target_alias: targets.load(t.target_alias) for t in tables.values()}
    graphs = dict.fromkeys(archs, GRAPHS[KEYS[0]])  # the one-hot ridge reads the key, never the graph

    def rows(index):
        return [(archs[i], t.target_alias, float(t.latency_ms[i])) for t in tables.values() for i in index]

    model = OneHotRidgeBaseline().fit(graphs, descs, rows(perm[:1000]))
    test = rows(perm[1200:6200])
    pred = model.predict(graphs, descs, [(k, t) for k, t, _ in test])
    for device, (rho, err) in REFERENCE.items():
        idx = [i for i, r in enumerate(test) if r[1] == f"help:{device}"]
        truth = np.array([test[i][2] for i in idx])
        assert abs(spearman(truth, pred[idx]) - rho) < 1e-3, device
        assert round(mape(truth, pred[idx]), 1) == err, device


def test_networks_beyond_the_training_range_are_predicted_at_its_edge():
    model = AdditiveLinearBaseline().fit(GRAPHS, TARGETS, _rows(TRAIN, [GPU]))
    huge = {f"chain{n}": OpGraph(nodes=[_node(i, "nor_conv_3x3") for i in range(n)],
                                 edges=[(i, i + 1) for i in range(n - 1)], output_nodes=[n - 1]) for n in (300, 3000)}
    pred = model.predict(huge, TARGETS, [("chain300", GPU), ("chain3000", GPU)])
    assert pred[0] == pred[1]  # both clipped to the largest conv count, FLOPs and bytes of the training graphs
    assert pred[0] < 10 * max(r[2] for r in _rows(TRAIN, [GPU]))
