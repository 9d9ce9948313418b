"""The numbers of the tuning-curve report, computed from its runs: best-so-far curves, suite means, trials to
reach XGB, wins against XGB, and the tuning goals.

A curve is the best measured latency (ms) after each measured trial; a failed candidate counts as a trial. The
suite mean is the geometric mean over workloads and seeds of each curve relative to the best latency any run
found for that workload.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from benchmarks.tuning_results import CurveRun, PredictedRun

__all__ = ["GOAL_PREDICTED_RATIO", "GOAL_TRIAL_FRACTION", "VERSUS_MARGIN", "Analysis", "PredictedGoal", "TrialGoal",
           "analyse", "best_so_far", "checkpoints_of", "evaluate_goals", "geomean_curve", "trials_to_reach",
           "xgb_recorded"]

GOAL_TRIAL_FRACTION = 0.5
GOAL_PREDICTED_RATIO = 1.2
VERSUS_MARGIN = 1.1  # a best within 10 % of XGB's is a tie: about the median change of XGB's best timed again


def best_so_far(run_secs: list[float | None], trials: int) -> np.ndarray:
    """Best latency (ms) after each of ``trials`` trials: inf before the first success, carried past the end."""
    values = np.array([s * 1e3 if s is not None else np.inf for s in run_secs[:trials]], dtype=np.float64)
    best = np.minimum.accumulate(values) if values.size else np.array([np.inf])
    return np.concatenate([best, np.full(trials - best.size, best[-1])]) if best.size < trials else best


def trials_to_reach(curve: np.ndarray, level: float) -> int | None:
    """First trial count (1-based) at which ``curve`` is at or below ``level``; None if never."""
    hit = np.flatnonzero(curve <= level)
    return int(hit[0]) + 1 if hit.size else None


def checkpoints_of(trials: int) -> list[int]:
    """The trial counts the report's tables show: powers of two from 16 up to ``trials``, and ``trials``."""
    return sorted({n for n in (16, 32, 64, 128, 256, 512) if n <= trials} | {trials})


def geomean_curve(runs: list[np.ndarray]) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.exp(np.mean(np.log(np.stack(runs)), axis=0))


@dataclasses.dataclass
class Analysis:
    """Curves per workload and method (one per seed), the best any run found per workload (``reference_ms``),
    suite-mean relative curves per method (over all seeds, and per seed), the trials each method needs to reach
    XGB's suite mean at each of ``checkpoints_of`` (``reach``; per workload at the last trial count in
    ``per_workload_reach``; None: not reached) and each method's final best against XGB's in the same
    (workload, seed) (``versus_xgb``: counts of wins, ties, losses)."""

    per_workload: dict[str, dict[str, list[np.ndarray]]]
    reference_ms: dict[str, float]
    suite: dict[str, np.ndarray]
    per_seed: dict[str, dict[int, np.ndarray]]
    reach: dict[str, dict[int, int | None]]
    per_workload_reach: dict[str, dict[str, int | None]]
    versus_xgb: dict[str, dict[str, int]]


def analyse(curves: list[CurveRun], trials: int, methods: list[str]) -> Analysis:
    """The ``Analysis`` of ``curves`` over their first ``trials`` trials; suite means of ``methods`` only."""
    scored = [(run, best_so_far(run.run_secs, trials)) for run in curves]
    per: dict[str, dict[str, list[np.ndarray]]] = {}
    for run, curve in scored:
        per.setdefault(run.workload, {}).setdefault(run.method, []).append(curve)
    reference = {w: min(float(c.min()) for runs in by_method.values() for c in runs) for w, by_method in per.items()}
    seed_logs: dict[tuple[str, int], list[np.ndarray]] = {}
    for run, curve in scored:
        seed_logs.setdefault((run.method, run.seed), []).append(np.log(curve / reference[run.workload]))
    suite: dict[str, np.ndarray] = {}
    per_seed: dict[str, dict[int, np.ndarray]] = {}  # the suite curve of each seed alone: how much seeds disagree
    for method in methods:
        logs = [c for (m, _), cs in seed_logs.items() if m == method for c in cs]
        if logs:
            suite[method] = np.exp(np.mean(logs, axis=0))
        for seed in sorted(s for m, s in seed_logs if m == method):
            per_seed.setdefault(method, {})[seed] = np.exp(np.mean(seed_logs[method, seed], axis=0))
    reach: dict[str, dict[int, int | None]] = {}
    if "xgb" in suite:
        for method in suite:
            reach[method] = {}
            for n in checkpoints_of(trials):
                level = float(suite["xgb"][n - 1])  # inf while some XGB run has no successful trial yet
                reach[method][n] = trials_to_reach(suite[method], level) if math.isfinite(level) else None
    per_workload_reach: dict[str, dict[str, int | None]] = {}
    for w, by_method in per.items():
        if "xgb" not in by_method:
            continue
        level = float(geomean_curve(by_method["xgb"])[-1])
        per_workload_reach[w] = {m: trials_to_reach(geomean_curve(runs), level) if math.isfinite(level) else None
                                 for m, runs in by_method.items()}
    return Analysis(per, reference, suite, per_seed, reach, per_workload_reach, _versus_xgb(scored))


def _versus_xgb(scored: list[tuple[CurveRun, np.ndarray]]) -> dict[str, dict[str, int]]:
    """Per method, over the (workload, seed) pairs that also have an XGB run (``scored``: each run with its
    best-so-far curve): how often its final best is more than ``VERSUS_MARGIN`` faster than XGB's (``wins``),
    more than that slower (``losses``), or neither (``ties``)."""
    xgb = {(run.workload, run.seed): curve[-1] for run, curve in scored if run.method == "xgb"}
    counts: dict[str, dict[str, int]] = {}
    for run, curve in scored:
        key = (run.workload, run.seed)
        if run.method == "xgb" or key not in xgb:
            continue
        ratio = curve[-1] / xgb[key]
        outcome = "wins" if ratio < 1 / VERSUS_MARGIN else "losses" if ratio > VERSUS_MARGIN else "ties"
        tally = counts.setdefault(run.method, {"wins": 0, "ties": 0, "losses": 0})
        tally[outcome] += 1
    return counts


def xgb_recorded(run: PredictedRun, curves: list[CurveRun], trials: int) -> float | None:
    """XGB's best after ``trials`` as its run of the same workload and seed recorded it; None without that run."""
    same = [c for c in curves if c.method == "xgb" and c.workload == run.workload and c.seed == run.seed]
    return float(best_so_far(same[0].run_secs, trials)[-1]) if same else None


# ------------------------------------------------------------------------------------------ goals


@dataclasses.dataclass(frozen=True)
class TrialGoal:
    """``method`` reaches XGB's suite-mean best-at-``n`` within ``GOAL_TRIAL_FRACTION`` of the ``n`` trials;
    ``trials``: what it needed (None: not reached within ``n``); not ``measured`` without runs of both."""

    method: str
    n: int
    trials: int | None
    measured: bool

    @property
    def budget(self) -> int:
        return int(self.n * GOAL_TRIAL_FRACTION)

    @property
    def met(self) -> bool | None:
        return (self.trials is not None and self.trials <= self.budget) if self.measured else None

    @property
    def text(self) -> str:
        if not self.measured:
            return f"{self.method} reaches XGB's best-at-{self.n} with <= {self.budget} trials: not measured"
        needs = f"needs {self.trials}" if self.trials is not None else f"not reached within {self.n}"
        return (f"{self.method} reaches XGB's suite-mean best-at-{self.n} with <= {self.budget} trials: "
                f"**{'met' if self.met else 'not met'}** ({needs})")

    def to_json(self) -> dict[str, object]:
        goal = f"{self.method} reaches XGB best-at-N with <= N/2 trials"
        if not self.measured:
            return {"goal": goal, "met": None, "text": self.text}
        return {"goal": goal, "N": self.n, "trials": self.trials, "met": self.met, "text": self.text}


@dataclasses.dataclass(frozen=True)
class PredictedGoal:
    """The predicted runner's chosen schedules are within ``GOAL_PREDICTED_RATIO`` of XGB's measured best-at-``n``
    (geometric mean of ``ratios``, one per run that timed both; none: not measured)."""

    n: int
    ratios: list[float]

    GOAL = "predicted-runner choice within 20 % of measured tuning"

    @property
    def geomean(self) -> float | None:
        return float(np.exp(np.mean(np.log(self.ratios)))) if self.ratios else None

    @property
    def within(self) -> int:
        return sum(r <= GOAL_PREDICTED_RATIO for r in self.ratios)

    @property
    def runs(self) -> int:
        return len(self.ratios)

    @property
    def met(self) -> bool | None:
        return None if self.geomean is None else self.geomean <= GOAL_PREDICTED_RATIO

    @property
    def text(self) -> str:
        if self.geomean is None:
            return ("predicted runner within 20 % of measured tuning: not measured (needs pre-trained models and XGB "
                    "runs)")
        return (f"predicted runner's chosen schedule within 20 % of XGB's measured best-at-{self.n}: "
                f"**{'met' if self.met else 'not met'}** (geometric mean ratio {self.geomean:.2f}; "
                f"{self.within}/{self.runs} runs within 20 %)")

    def to_json(self) -> dict[str, object]:
        if self.geomean is None:
            return {"goal": self.GOAL, "met": None, "text": self.text}
        return {"goal": self.GOAL, "ratio_geomean": self.geomean, "within": self.within, "runs": self.runs,
                "met": self.met, "text": self.text}


def evaluate_goals(analysis: Analysis, predicted: list[PredictedRun],
                   trials: int) -> list[TrialGoal | PredictedGoal]:
    """The tuning goals, each with its measured value: LeDG (pre-trained, then cold) reaches XGB's best-at-N
    with at most N/2 trials, and the predicted runner's choice is within 20 % of measured tuning."""
    goals: list[TrialGoal | PredictedGoal] = []
    for method in ("ledg-pretrained", "ledg-cold"):
        measured = "xgb" in analysis.reach and method in analysis.reach
        needed = analysis.reach[method].get(trials) if measured else None
        goals.append(TrialGoal(method, trials, needed, measured))
    ratios = [pair[1] for run in predicted if (pair := run.versus_xgb()) is not None]
    goals.append(PredictedGoal(trials, ratios))
    return goals
