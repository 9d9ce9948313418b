"""latency_loss: log-space regression, within-target ranking, Gaussian NLL."""

import math

import pytest
import torch
import torch.nn.functional as F

from cost_model.ledgformer import LeDGOutput
from cost_model.losses import latency_loss
from targets.errors import DataError


def _out(log_pred, log_var=None):
    log_pred = torch.as_tensor(log_pred, dtype=torch.float32)
    return LeDGOutput(log_pred.exp(), log_pred, log_pred.exp(), log_var)


def test_regression_is_measured_in_log_space():
    y = torch.tensor([1.0, 10.0, 100.0])
    off = _out(torch.log(y) + torch.tensor([0.5, -2.0, 0.0]))
    mse = latency_loss(off, y, huber_delta=None, rank_weight=0.0)
    assert mse.regression.item() == pytest.approx((0.25 + 4.0) / 3, rel=1e-5)
    huber = latency_loss(off, y, huber_delta=1.0, rank_weight=0.0)
    assert huber.regression.item() == pytest.approx((0.5 * 0.25 + (2.0 - 0.5)) / 3, rel=1e-5)
    assert mse.total.item() == pytest.approx(mse.regression.item())


def test_ranking_pairs_stay_within_a_target():
    y = torch.tensor([1.0, 2.0, 50.0, 40.0])
    group = torch.tensor([0, 0, 1, 1])
    pred = torch.tensor([0.0, 1.0, 3.0, 0.0])  # target 0 ordered right, target 1 too; across targets wrong
    terms = latency_loss(_out(pred), y, group)
    expected = (F.softplus(torch.tensor(-1.0)) + F.softplus(torch.tensor(-3.0))) / 2
    assert terms.ranking.item() == pytest.approx(expected.item(), rel=1e-5)
    reversed_terms = latency_loss(_out(-pred), y, group)
    assert reversed_terms.ranking > terms.ranking


def test_ties_and_single_rows_give_zero_ranking_with_a_gradient_path():
    pred = torch.tensor([0.3, 0.1], requires_grad=True)
    terms = latency_loss(LeDGOutput(pred.exp(), pred, pred.exp()), torch.tensor([2.0, 2.0]))
    assert terms.ranking.item() == 0.0
    terms.total.backward()
    assert pred.grad is not None


def test_gaussian_nll_calibrates_variance_only():
    pred = torch.tensor([0.0, 1.0], requires_grad=True)
    log_var = torch.tensor([0.0, math.log(4.0)], requires_grad=True)
    y = torch.tensor([math.e, math.e])  # log y = 1
    terms = latency_loss(LeDGOutput(pred.exp(), pred, pred.exp(), log_var), y, huber_delta=None, rank_weight=0.0,
                         nll_weight=1.0)
    expected = 0.5 * ((0.0 + 1.0) + (math.log(4.0) + 0.0)) / 2
    assert terms.nll.item() == pytest.approx(expected, rel=1e-5)
    terms.nll.backward()
    assert pred.grad is None and log_var.grad is not None


def test_labels_must_be_positive():
    with pytest.raises(DataError, match="> 0"):
        latency_loss(_out([0.0, 0.0]), torch.tensor([1.0, -1.0]))
