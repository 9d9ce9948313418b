"""EarlyStopping: best score and a detached copy of its weights, bad epochs counted up to patience."""

import torch

from cost_model.early_stopping import EarlyStopping


def test_keeps_a_copy_of_the_best_weights_and_stops_after_patience_bad_epochs():
    weights = {"w": torch.zeros(2)}
    stopper = EarlyStopping(patience=2)
    assert not stopper.should_stop and stopper.best_state is None
    stopper.update(1.0, weights)
    weights["w"] += 5  # training goes on in place; the kept copy must not follow
    stopper.update(1.5, weights)
    assert stopper.best == 1.0 and stopper.bad_epochs == 1 and not stopper.should_stop
    assert torch.equal(stopper.best_state["w"], torch.zeros(2))
    stopper.update(0.5, weights)  # an improvement resets the count
    assert stopper.best == 0.5 and stopper.bad_epochs == 0
    stopper.update(0.5, weights)  # equal is not better
    stopper.update(0.7, weights)
    assert stopper.should_stop and torch.equal(stopper.best_state["w"], torch.full((2,), 5.0))
