"""The analysis code of the benchmark scripts: the numbers in docs/results/ come from these functions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks import dataset_card, host_noise
from benchmarks import tuning_analysis as tc
from benchmarks.tuning_results import CurveRun, PredictedRun


def _run(method: str, run_secs: list[float | None], seed: int = 0, workload: str = "w") -> CurveRun:
    return CurveRun(workload=workload, method=method, seed=seed, run_secs=run_secs, best_schedule=None, best_ms=0.0,
                    wall_seconds=0.0, round_seconds=[], round_model_seconds=[], busy_retakes=0, busy_wait_seconds=0.0,
                    checkpoint=None, settings={})


def _predicted(seed: int, measured_ms: list[float], xgb_remeasured_ms: float | None) -> PredictedRun:
    return PredictedRun(workload="w", seed=seed, wall_seconds=0.0, checkpoint="c", predicted_ms=[],
                        measured_ms=measured_ms, xgb_remeasured_ms=xgb_remeasured_ms, measure_errors=[], settings={})


def test_best_so_far_counts_failures_as_trials_and_carries_the_best_past_a_short_run() -> None:
    curve = tc.best_so_far([None, 2e-3, 3e-3, 1e-3], 6)
    assert curve.tolist() == [math.inf, 2.0, 2.0, 1.0, 1.0, 1.0]
    assert tc.trials_to_reach(curve, 2.0) == 2 and tc.trials_to_reach(curve, 0.5) is None


def test_reach_is_not_claimed_against_an_xgb_level_that_is_still_infinite() -> None:
    # XGB found nothing that ran in its first 16 trials: no method "reaches" that level at trial 1
    curves = [_run("xgb", [None] * 16 + [1e-3] * 16), _run("ledg-cold", [2e-3] * 32)]
    analysis = tc.analyse(curves, 32, ["xgb", "ledg-cold"])
    assert analysis.reach["ledg-cold"][16] is None
    assert analysis.reach["ledg-cold"][32] is None  # 2 ms never reaches XGB's 1 ms
    assert analysis.reach["xgb"][32] == 17
    assert analysis.suite["ledg-cold"][-1] == pytest.approx(2.0)  # relative to the best any run found


def test_trial_budget_goal_compares_with_half_the_trials() -> None:
    curves = [_run("xgb", [4e-3] * 31 + [1e-3]), _run("ledg-cold", [4e-3] * 15 + [1e-3] * 17),
              _run("ledg-pretrained", [4e-3] * 16 + [1e-3] * 16)]
    goals = tc.evaluate_goals(tc.analyse(curves, 32, ["xgb", "ledg-cold", "ledg-pretrained"]), [], 32)
    by = {g.text.split()[0]: g for g in goals}
    assert by["ledg-cold"].met is True and by["ledg-cold"].trials == 16
    assert by["ledg-pretrained"].met is False and by["ledg-pretrained"].trials == 17


def test_predicted_runner_goal_uses_the_fresh_xgb_timing_and_counts_failures_as_misses() -> None:
    curves = [_run("xgb", [1e-3] * 8)]
    good = _predicted(0, [1.375, 2.0], 1.25)  # recorded: 1.0
    failed = _predicted(1, [math.inf, 1.0], 1.0)
    untimed = _predicted(2, [1.0], None)
    assert good.versus_xgb() == (1.25, pytest.approx(1.1))
    assert tc.xgb_recorded(good, curves, 8) == pytest.approx(1.0)
    assert untimed.versus_xgb() is None
    goal = tc.evaluate_goals(tc.analyse(curves, 8, ["xgb"]), [good, failed, untimed], 8)[-1]
    assert goal.runs == 2 and goal.within == 1 and goal.met is False  # inf ratio: not within 20 %


def test_host_noise_bursts_are_runs_of_slow_probes_split_by_gaps() -> None:
    t = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 50.0, 50.5])
    slow = np.array([False, True, True, False, True, True, True])
    assert host_noise.bursts(t, slow, max_gap_s=1.0) == [1.0, 0.5, 1.0]


def test_dataset_sittings_split_at_long_pauses() -> None:
    created = [0.0, 60.0, 120.0, 5000.0, 5060.0]
    got = dataset_card.sittings(created, gap_s=1200)
    assert [s["measurements"] for s in got] == [3, 2]
    assert got[0]["hours"] == pytest.approx(120 / 3600) and got[1]["hours"] == pytest.approx(60 / 3600)


def test_seed_spread_and_paired_comparison_with_xgb() -> None:
    curves = [_run("xgb", [1e-3] * 4, seed=0), _run("xgb", [2e-3] * 4, seed=1),
              _run("ledg-cold", [0.5e-3] * 4, seed=0), _run("ledg-cold", [2.1e-3] * 4, seed=1),
              _run("random", [4e-3] * 4, seed=0)]
    analysis = tc.analyse(curves, 4, ["xgb", "random", "ledg-cold"])
    # relative to the best any run found (0.5 ms): each seed's curve alone, and their geometric mean
    assert analysis.per_seed["xgb"][0][-1] == pytest.approx(2.0)
    assert analysis.per_seed["xgb"][1][-1] == pytest.approx(4.0)
    assert analysis.suite["xgb"][-1] == pytest.approx(math.sqrt(8.0))
    assert analysis.versus_xgb["ledg-cold"] == {"wins": 1, "ties": 1, "losses": 0}  # 2.1 vs 2.0 ms: a tie
    assert analysis.versus_xgb["random"] == {"wins": 0, "ties": 0, "losses": 1}


def test_transfer_means_add_the_median_over_devices_of_median_ape_and_accept_older_folds() -> None:
    from benchmarks import hardware_transfer as ht

    row = {"spearman": 0.9, "kendall": 0.8, "mape": 10.0, "acc10": 0.5, "log_rmse": 0.1}
    rows = [{**row, "median_ape": v} for v in (1.0, 2.0, 30.0)]
    mean = ht._mean(rows)
    assert mean["median_ape"] == pytest.approx(11.0) and mean["median_median_ape"] == pytest.approx(2.0)
    older = ht._mean([row, *rows])  # a fold written before median APE was recorded
    assert "median_ape" not in older and older["spearman"] == pytest.approx(0.9)


def test_transfer_report_names_the_folds_not_run_yet() -> None:
    from benchmarks import hardware_transfer as ht

    folds = [["a"], ["b", "c"], ["d"]]
    assert ht._done([{"held": ["a"]}, {"held": ["b", "c"]}, {"held": ["d"]}], folds) == "3 folds"
    assert ht._done([{"held": ["b", "c"]}], folds) == "1 of 3 folds (not run yet: a; d)"
