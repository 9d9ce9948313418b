"""How a latency is measured: warm-up, then timed samples until the median is stable (or a cap).

Warm-up runs ``warmup_runs`` times (fewer when they take over
``max_warmup_seconds``: the first run of a slow network already warms it). A
*sample* times ``number`` back-to-back runs and divides by ``number``; fast
networks get ``number > 1`` so one sample lasts at least ``min_sample_ms`` and
timer overhead stays negligible. Sampling stops once at least ``min_runs``
samples are in and the median of all samples differs from the median without
the last ``window`` samples by less than ``stable_rel`` (the median has
converged), or at ``max_runs`` samples, or once ``max_seconds`` have passed and
at least ``floor_runs`` samples are in (slow networks: untuned TVM code can
take seconds per run, and a median of 3 such runs is already far above the
timer's resolution). With ``keep`` (e.g. a ``HostGate``), asked before the
first sample and after each, a sample counts only if ``keep()`` held on both
sides of it; dropped samples still count towards ``max_runs``, and fewer than
``floor_runs`` kept ones after ``3 * max_seconds`` make no measurement (None).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["MeasureProtocol", "TimingStats", "time_runs"]


@dataclass(frozen=True)
class MeasureProtocol:
    """Measurement settings; ``id`` names them in the store, so changing any value measures afresh."""

    warmup_runs: int = 3
    max_warmup_seconds: float = 1.0  # warm-up stops early once it took this long (at least one run)
    min_runs: int = 10
    max_runs: int = 100
    max_seconds: float = 3.0
    floor_runs: int = 3
    min_sample_ms: float = 5.0
    window: int = 5
    stable_rel: float = 0.01
    remeasure_cv: float = 0.10  # a measurement with a higher CV is taken again (up to max_attempts)
    max_attempts: int = 3

    @property
    def id(self) -> str:
        digest = hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]
        return f"median-stable-v1-{digest}"


@dataclass(frozen=True)
class TimingStats:
    """Per-run latency statistics over the samples, in milliseconds."""

    median_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    cv: float
    runs: int  # timed samples kept
    number: int  # runs per sample
    dropped: int = 0  # samples taken but not kept (``keep`` said no)


def time_runs(run: Callable[[int], float], protocol: MeasureProtocol,
              keep: Callable[[], bool] | None = None) -> TimingStats | None:
    """Measure ``run(number) -> seconds for number back-to-back runs`` under ``protocol``; None only
    when ``keep`` dropped so many samples that fewer than ``floor_runs`` are left."""
    warm_start = time.perf_counter()
    once = run(1)
    for _ in range(protocol.warmup_runs - 1):
        if time.perf_counter() - warm_start > protocol.max_warmup_seconds:
            break
        once = run(1)
    number = max(1, math.ceil(protocol.min_sample_ms / 1e3 / max(once, 1e-9)))
    samples: list[float] = []
    taken = 0
    started = time.perf_counter()
    ok_before = keep() if keep else True
    while taken < protocol.max_runs:
        sample = run(number) / number
        taken += 1
        ok_after = keep() if keep else True
        if ok_before and ok_after:
            samples.append(sample)
        ok_before = ok_after
        if len(samples) >= protocol.min_runs and _stable(samples, protocol):
            break
        elapsed = time.perf_counter() - started
        if elapsed > protocol.max_seconds and len(samples) >= protocol.floor_runs:
            break
        if keep is not None and elapsed > 3 * protocol.max_seconds:  # the host stays slow: give the attempt up
            break
    if len(samples) < protocol.floor_runs:
        return None
    ms = np.asarray(samples) * 1e3
    mean = float(ms.mean())
    std = float(ms.std(ddof=1)) if ms.size > 1 else 0.0
    return TimingStats(float(np.median(ms)), mean, std, float(ms.min()), std / mean if mean > 0 else 0.0,
                       int(ms.size), number, taken - int(ms.size))


def _stable(samples: list[float], protocol: MeasureProtocol) -> bool:
    if len(samples) <= protocol.window:
        return False
    now = float(np.median(samples))
    before = float(np.median(samples[: -protocol.window]))
    return abs(now - before) <= protocol.stable_rel * now
