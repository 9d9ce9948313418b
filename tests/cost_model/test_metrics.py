"""Metrics against values computed by hand and by scipy's definitions."""

import math

import numpy as np
import pytest

from cost_model.metrics import (
    acc_within,
    aggregate,
    kendall,
    latency_metrics,
    median_ape,
    mape,
    pairwise_accuracy,
    rmse,
    spearman,
    topk_score,
)
from targets.errors import ArgumentError, DataError


def test_hand_computed_values():
    t = [1.0, 2.0, 4.0, 8.0]
    p = [1.1, 1.8, 4.0, 10.0]
    # relative errors: 0.10, 0.10, 0.0, 0.25
    assert mape(t, p) == pytest.approx((0.1 + 0.1 + 0.0 + 0.25) / 4 * 100)
    assert rmse(t, p) == pytest.approx(math.sqrt((0.01 + 0.04 + 0 + 4) / 4))
    assert acc_within(t, p, 0.05) == pytest.approx(0.25)
    assert acc_within(t, p, 0.11) == pytest.approx(0.75)
    assert spearman(t, p) == pytest.approx(1.0)
    assert kendall(t, [4, 3, 2, 1]) == pytest.approx(-1.0)


def test_metrics_dict_and_log_error():
    t = np.array([1.0, 10.0, 100.0])
    m = latency_metrics(t, t * math.e)
    assert m["n"] == 3
    assert m["log_rmse"] == pytest.approx(1.0)
    assert m["acc10"] == 0.0
    assert m["median_ape"] == pytest.approx((math.e - 1) * 100)


def test_median_ape_ignores_a_few_huge_errors_that_rule_mape():
    t = [1.0, 1.0, 1.0, 0.01]
    p = [1.1, 0.9, 1.05, 1.0]  # the tiny true latency is off by 9900 %
    assert median_ape(t, p) == pytest.approx(10.0)
    assert mape(t, p) > 2000


def test_aggregate_is_unweighted_mean():
    rows = [{"n": 10, "mape": 2.0}, {"n": 1000, "mape": 4.0}]
    assert aggregate(rows) == {"mape": 3.0}


@pytest.mark.parametrize("t, p", [([], []), ([1.0, 2.0], [1.0]), ([0.0, 1.0], [1.0, 1.0])])
def test_bad_inputs(t, p):
    with pytest.raises(DataError):
        latency_metrics(t, p)


def test_topk_score_is_true_best_over_best_of_the_k_predicted_fastest():
    t = [4.0, 1.0, 2.0, 8.0]
    assert topk_score(t, [1.0, 2.0, 3.0, 4.0], 1) == pytest.approx(1.0 / 4.0)  # picks 4.0
    assert topk_score(t, [1.0, 2.0, 3.0, 4.0], 2) == pytest.approx(1.0)  # 4.0 and 1.0
    assert topk_score(t, t, 1) == 1.0 and topk_score(t, [0.0] * 4, 1) == pytest.approx(0.25)  # ties: first
    assert topk_score(t, [9.0, 9.0, 1.0, 9.0], 10) == 1.0  # k beyond n takes all
    with pytest.raises(ArgumentError, match="k >= 1"):
        topk_score(t, t, 0)


def test_pairwise_accuracy_counts_ordered_pairs_and_half_for_predicted_ties():
    t = [1.0, 2.0, 3.0]
    assert pairwise_accuracy(t, [10.0, 20.0, 30.0]) == 1.0
    assert pairwise_accuracy(t, [3.0, 2.0, 1.0]) == 0.0
    assert pairwise_accuracy(t, [1.0, 3.0, 2.0]) == pytest.approx(2 / 3)
    assert pairwise_accuracy(t, [5.0, 5.0, 6.0]) == pytest.approx(2.5 / 3)
    assert pairwise_accuracy([1.0, 1.0, 2.0], [3.0, 2.0, 1.0]) == 0.0  # the equal pair does not count
    assert math.isnan(pairwise_accuracy([2.0, 2.0], [1.0, 3.0]))
