"""Metrics against values computed by hand and by scipy's definitions."""

import math

import numpy as np
import pytest

from cost_model.metrics import acc_within, aggregate, kendall, latency_metrics, mape, rmse, spearman
from targets.errors import DataError


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


def test_aggregate_is_unweighted_mean():
    rows = [{"n": 10, "mape": 2.0}, {"n": 1000, "mape": 4.0}]
    assert aggregate(rows) == {"mape": 3.0}


@pytest.mark.parametrize("t, p", [([], []), ([1.0, 2.0], [1.0]), ([0.0, 1.0], [1.0, 1.0])])
def test_bad_inputs(t, p):
    with pytest.raises(DataError):
        latency_metrics(t, p)
