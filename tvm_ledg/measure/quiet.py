"""Keep busy-machine timings out of the data: other processes' CPU use around each measurement.

On a small machine a compiler or a test suite running beside a measurement
does not just take its share: a 2-thread PyTorch or onnxruntime run waits at
every parallel region for the thread that was preempted. Measured here on 2
cores: 2-thread PyTorch came out up to 50x slower, onnxruntime about 2x, with
nothing in the run's own CV to tell (each sample is slow alike).

``ForeignCpu`` reads the busy CPU time of the CPUs this process may run on
(``/proc/stat`` lines ``cpuN`` for N in its affinity: user, nice, system,
irq, softirq, steal; other tenants' cores in a container do not count) and
this process's CPU time (all
its threads, ``os.times``) around a block; the difference is what *other*
processes (or other virtual machines, through steal time) used meanwhile.
``QuietPolicy`` says how much of that a measurement tolerates and how long to
wait for a quiet machine before giving up with ``MachineBusy``. Where
``/proc/stat`` does not exist (not Linux) the check is off and logs a warning
once.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from targets.errors import LedgError

__all__ = ["ForeignCpu", "MachineBusy", "QuietPolicy", "wait_until_quiet"]

log = logging.getLogger(__name__)

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01
_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user nice system [idle iowait] irq softirq steal


class MachineBusy(LedgError):
    """Other processes kept using the CPU for longer than ``QuietPolicy.max_wait_s``."""


@dataclass(frozen=True)
class QuietPolicy:
    """A measurement counts only if other processes used at most ``max_foreign`` cores on average
    during it (plus ``slack_s`` of CPU time for the counters' 10 ms ticks). After a contended
    attempt the machine must stay quiet for ``settle_s`` before the next; after ``max_contended``
    contended attempts, or waiting longer than ``max_wait_s`` in all (None: no limit), the
    measurement gives up with ``MachineBusy``. The counters tick every 10 ms, so an attempt shorter
    than ``min_window_s`` is followed by an idle wait up to that window: a short attempt is judged
    by the machine's load around it (sustained load, the kind that skews a median, is caught; a
    blip of a few ms is not). A quiet machine costs at most that wait."""

    max_foreign: float = 0.05
    slack_s: float = 0.03
    min_window_s: float = 0.25
    settle_s: float = 2.0
    max_wait_s: float | None = 600.0
    max_contended: int = 5

    def contended(self, foreign_s: float, wall_s: float) -> bool:
        return foreign_s > self.max_foreign * wall_s + self.slack_s


def _machine_busy_s() -> float | None:
    """Busy CPU seconds so far of the CPUs this process may run on; None without ``/proc/stat``."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        _warn_unchecked()
        return None
    cpus = {f"cpu{n}" for n in os.sched_getaffinity(0)} if hasattr(os, "sched_getaffinity") else None
    ticks = 0
    for line in lines:
        fields = line.split()
        if fields and fields[0].startswith("cpu") and fields[0] != "cpu" and (cpus is None or fields[0] in cpus):
            values = [int(v) for v in fields[1:]]
            ticks += sum(values[i] for i in _BUSY_FIELDS if i < len(values))
    return ticks * _TICK_S


@functools.cache
def _warn_unchecked() -> None:
    log.warning("no /proc/stat here: other processes' CPU use is not checked while measuring")


def _own_s() -> float:
    t = os.times()
    return t.user + t.system


class ForeignCpu:
    """``with ForeignCpu() as f: ...`` then ``f.seconds`` (other processes' CPU seconds), ``f.wall``
    and ``f.cores`` (their average number of busy cores); all None where ``/proc/stat`` is missing.
    A block shorter than ``min_wall_s`` is followed by an idle wait up to it, so that the 10 ms
    counters see enough of the machine to judge it."""

    def __init__(self, min_wall_s: float = 0.0) -> None:
        self.min_wall_s = min_wall_s

    def __enter__(self) -> "ForeignCpu":
        self.seconds: float | None = None
        self.cores: float | None = None
        self._machine, self._own, self._t0 = _machine_busy_s(), _own_s(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(max(0.0, self.min_wall_s - (time.perf_counter() - self._t0)))
        self.wall = time.perf_counter() - self._t0
        machine = _machine_busy_s()
        if machine is None or self._machine is None:
            return
        self.seconds = max(0.0, (machine - self._machine) - (_own_s() - self._own))
        self.cores = self.seconds / self.wall if self.wall > 0 else 0.0


def wait_until_quiet(policy: QuietPolicy, waited_s: float = 0.0,
                     on_wait: Callable[[float], None] | None = None) -> float:
    """Block until other processes stayed under the policy for ``settle_s``; returns the total waited
    (``waited_s`` is what earlier waits of the same measurement already took). ``on_wait(seconds)``
    hears of every probe interval spent waiting (the collector's time-out does not count them)."""
    while True:
        with ForeignCpu() as probe:
            time.sleep(policy.settle_s)
        if on_wait is not None:
            on_wait(probe.wall)
        if probe.seconds is None or not policy.contended(probe.seconds, probe.wall):
            return waited_s + probe.wall
        waited_s += probe.wall
        if policy.max_wait_s is not None and waited_s > policy.max_wait_s:
            raise MachineBusy(f"other processes used {probe.cores:.2f} cores for {waited_s:.0f} s "
                              f"(at most {policy.max_foreign} allowed while measuring); measure on a quiet machine")
        if int(waited_s) // 60 != int(waited_s - probe.wall) // 60:
            log.warning("waiting for a quiet machine: other processes use %.2f cores (%.0f s so far)",
                        probe.cores, waited_s)
