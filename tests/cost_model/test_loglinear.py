"""fit_loglinear: least squares in log space, slope shrunk towards 1 by ridge, b = 1 when data are too few."""

import numpy as np
import pytest

from cost_model.loglinear import fit_loglinear


def test_recovers_a_noiseless_line_and_matches_polyfit():
    lx = np.linspace(10.0, 20.0, 9)
    assert fit_loglinear(lx, 2.0 + 0.8 * lx) == pytest.approx((2.0, 0.8), rel=1e-12)
    ly = 1.0 + 0.9 * lx + np.random.default_rng(0).normal(0, 0.3, lx.size)
    b, a = np.polyfit(lx, ly, 1)
    assert fit_loglinear(lx, ly) == pytest.approx((a, b), rel=1e-12)


@pytest.mark.parametrize("lx", [np.array([1.0, 2.0, 3.0]), np.full(6, 4.0)], ids=["3 samples", "one x"])
def test_slope_one_when_the_data_cannot_support_a_slope(lx):
    ly = lx + np.array([0.1, 0.3, 0.2, 0.1, 0.3, 0.2])[:lx.size]
    assert fit_loglinear(lx, ly) == pytest.approx((0.2, 1.0))


def test_ridge_shrinks_the_slope_towards_one():
    lx = np.array([0.0, 0.1, 0.2, 0.3])
    ly = 3.0 * lx
    slopes = [fit_loglinear(lx, ly, ridge)[1] for ridge in (0.0, 0.05, 1.0, 100.0)]
    assert slopes[0] == pytest.approx(3.0) and all(3.0 > s > 1.0 for s in slopes[1:])
    assert slopes == sorted(slopes, reverse=True) and slopes[-1] == pytest.approx(1.0, abs=1e-2)
