"""Measured tuning runs: a busy machine reaches the caller as ``MachineBusy`` whatever type TVM's FFI gave it."""

from __future__ import annotations

import pytest

from targets.errors import DataError
from tvm_ledg.measure.quiet import BUSY_ADVICE, MachineBusy
from tvm_ledg.tuning.search import machine_busy_raised, search_cost_model


def test_a_machine_busy_forwarded_by_tvm_is_raised_as_machine_busy_and_other_errors_pass_unchanged() -> None:
    message = f"all 4 timings of a candidate were refused (the host ran slow); tune {BUSY_ADVICE}"
    with pytest.raises(MachineBusy, match="all 4 timings of a candidate were refused") as info:
        with machine_busy_raised():
            raise RuntimeError(f"Traceback (most recent call last):\n  ...\nRuntimeError: {message}")
    assert isinstance(info.value.__cause__, RuntimeError)
    original = MachineBusy(message)
    with pytest.raises(MachineBusy) as info:
        with machine_busy_raised():
            raise original
    assert info.value is original
    with pytest.raises(RuntimeError, match="a compile error"):
        with machine_busy_raised():
            raise RuntimeError("a compile error")


def test_search_cost_model_names_the_kinds_it_knows() -> None:
    with pytest.raises(DataError, match="unknown MetaSchedule cost model 'gbdt'; expected one of xgb, random"):
        search_cost_model("gbdt", seed=0, xgb_warmup=8)
