"""Keep busy-machine timings out of the data: other processes' CPU use, and a slow host, around each measurement.

A process running beside a measurement does not just take its share: a
multi-threaded PyTorch or onnxruntime run waits at every parallel region for the
thread that was preempted, and every sample is slow alike, so the run's own CV
does not show it. ``ForeignCpu`` therefore reads the busy CPU time of the CPUs
this process may run on (``/proc/stat`` lines ``cpuN`` for N in its affinity:
user, nice, system, irq, softirq, steal; other tenants' cores in a container do
not count) and this process's CPU time (all its threads, ``os.times``) around a
block; the difference is what *other* processes (or other virtual machines,
through steal time) used meanwhile. ``QuietPolicy`` says how much of that a
measurement tolerates and how long to wait for a quiet machine before giving up
with ``MachineBusy``. Where ``/proc/stat`` does not exist (not Linux) the check
is off and logs a warning once.

On a virtual machine the host is shared too, and a guest cannot see that: other
tenants on the SMT siblings of its cores, in its caches and memory bandwidth,
show up in ``/proc/stat`` as nothing (not even steal time). ``HostSpeed`` times a
fixed pure-Python loop on the measuring CPU against the fastest time seen (this
boot); ``HostGate`` asks it between the samples of a measurement, so that samples
taken while the host ran slow are dropped (``time_runs(keep=...)``), and
``QuietWindow`` asks it before and after a one-sample timing (MetaSchedule's
runner).

A long-lived process can read the host as slow when a fresh process on the same
CPUs does not. So ``wait_until_quiet`` asks a fresh process after
``fresh_check_s`` of a slow host, and raises ``StaleProcess`` when that one reads
the host as fast: only a new process can measure then.

Why a measurement was refused is typed: ``OtherProcesses`` or ``SlowHost``, so
that callers decide on the kind (only other processes count towards
``max_contended``), not on the wording. What was measured to set these rules is
in ``docs/measuring.md``.

One module, a little over 400 lines: the reasons, the policy and the three probes
(CPU time, host speed, fresh process) decide together whether a timing counts.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cost_model.cache_dir import default_cache_root
from targets.errors import LedgError

__all__ = ["BUSY_ADVICE", "FOREIGN", "HOST_SPEED", "REFUSED", "WARM_S", "BusyReason", "ForeignCpu", "HostGate", "HostSpeed",
           "MachineBusy", "OtherProcesses", "QuietPolicy", "QuietWindow", "SlowHost", "StaleProcess", "foreign_reason",
           "fresh_slowdown", "is_machine_busy", "read_tvm_error", "refusal_message", "wait_until_quiet"]

log = logging.getLogger(__name__)

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01
_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user nice system [idle iowait] irq softirq steal


class MachineBusy(LedgError):
    """The machine stayed busy (other processes, or a slow host) for longer than a ``QuietPolicy`` allows.
    Every message ends with ``BUSY_ADVICE``, so that it is recognised when TVM forwards it as text."""


BUSY_ADVICE = "on a quiet machine"
FOREIGN = "other processes used"  # how an OtherProcesses reason reads; a SlowHost one never contains it
REFUSED = "tvm-ledg: machine busy"  # how a refused timing starts where it crosses TVM as an error message


@dataclass(frozen=True)
class OtherProcesses:
    """A timing refused because other processes used ``cores`` cores on average (``allowed`` at most)."""

    cores: float
    allowed: float

    def __str__(self) -> str:
        return f"{FOREIGN} {self.cores:.2f} cores (at most {self.allowed} allowed)"


@dataclass(frozen=True)
class SlowHost:
    """A timing refused because the host ran the reference loop up to ``worst`` times slower than its best
    in ``slow`` of ``checks`` checks (``limit`` at most): other tenants of the host."""

    worst: float
    slow: int
    checks: int
    limit: float

    def __str__(self) -> str:
        return (f"the host ran a reference loop up to {self.worst:.2f}x slower than its best in {self.slow} of "
                f"{self.checks} checks (at most {self.limit}x allowed; other tenants of the host)")


BusyReason = OtherProcesses | SlowHost


class StaleProcess(MachineBusy):
    """This process has read the host as slow for a while, but a fresh process reads it as fast: the slow
    one is this process, and only a new one can measure (the collector then restarts its worker)."""


def read_tvm_error(message: str | None) -> type[MachineBusy] | type[OtherProcesses] | type[SlowHost] | None:
    """What of ours a TVM error message carries: a ``MachineBusy`` (TVM's FFI re-raises one raised under
    MetaSchedule as another exception type with the same message), a timing refused in a runner worker
    (``refusal_message``) for other processes or a slow host, or None (a real error, or none).

    The only place that reads our exceptions back from text: the FFI and the runner's worker processes
    keep the message and lose the type.
    """
    if not message:
        return None
    if BUSY_ADVICE in message:  # checked first: a MachineBusy message may quote the refusal it gave up on
        return MachineBusy
    if REFUSED in message:
        return OtherProcesses if FOREIGN in message else SlowHost
    return None


def refusal_message(reason: BusyReason) -> str:
    """The error message a runner worker raises for a refused timing (read back by ``read_tvm_error``)."""
    return f"{REFUSED}: {reason}"


def is_machine_busy(exc: BaseException) -> bool:
    """Whether ``exc`` is a ``MachineBusy``, also as TVM's FFI forwards one (see ``read_tvm_error``)."""
    return isinstance(exc, MachineBusy) or read_tvm_error(str(exc)) is MachineBusy


@dataclass(frozen=True)
class QuietPolicy:
    """A measurement counts only if other processes used at most ``max_foreign`` cores on average
    during it (plus ``slack_s`` of CPU time for the counters' 10 ms ticks). After a contended
    attempt the machine must stay quiet for ``settle_s`` before the next; after ``max_contended``
    contended attempts, or waiting longer than ``max_wait_s`` in all (None: no limit), the
    measurement gives up with ``MachineBusy``. The counters tick every 10 ms, so an attempt shorter
    than ``min_window_s`` is followed by an idle wait up to that window: a short attempt is judged
    by the machine's load around it (sustained load, the kind that skews a median, is caught; a
    blip of a few ms is not). A quiet machine costs at most that wait. ``max_slowdown``: the most
    ``HostSpeed.slowdown()`` may be around a kept sample (None: no host probe). After
    ``fresh_check_s`` of waiting for a slow host, a fresh process probes it (``fresh_slowdown``; None:
    never), and ``wait_until_quiet`` raises ``StaleProcess`` if that one reads it within the limit."""

    max_foreign: float = 0.05
    max_slowdown: float | None = 1.35
    slack_s: float = 0.03
    min_window_s: float = 0.25
    settle_s: float = 2.0
    max_wait_s: float | None = 600.0
    max_contended: int = 5
    fresh_check_s: float | None = 120.0

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


class HostSpeed:
    """How much slower than its best this machine runs a fixed loop now: contention from other tenants
    of the host, which ``/proc/stat`` does not show (see the module docstring).

    ``slowdown()`` times ``loops`` iterations of a pure-Python loop (best of ``repeats``, about 1 ms
    each) on the CPU this thread is on and returns the ratio to the fastest time so far. Right after a
    sample that is the CPU the sample ran on, and a busy one; the other CPUs are not probed, because an
    idle virtual CPU runs its first milliseconds up to 2x slower, which says nothing about a
    measurement. The first call calibrates for ``calibrate_s`` (busy probes); the best time keeps
    improving afterwards. With ``memory`` (a JSON file) the best time also outlives the process, for as
    long as the machine is not rebooted (its ``boot_id``): a process started during a long busy period
    of the host would otherwise calibrate to the slow host and accept it.
    """

    def __init__(self, loops: int = 20_000, repeats: int = 3, calibrate_s: float = 1.0,
                 memory: Path | None = None) -> None:
        self.loops, self.repeats, self.calibrate_s = loops, repeats, calibrate_s
        self.memory = memory
        self.best: float | None = None
        self._remembered = float("inf")

    def slowdown(self, warm_s: float = 0.0) -> float:
        """The ratio now; ``warm_s`` of busy spinning first wakes a CPU that was idle (a CPU woken from a
        short sleep runs the loop slow for a few ms; ``WARM_S`` of spinning is enough)."""
        end = time.perf_counter() + warm_s
        while time.perf_counter() < end:
            pass
        if self.best is None:
            self._recall()
            end = time.perf_counter() + self.calibrate_s
            while time.perf_counter() < end:
                self.probe()
        ratio = self.probe() / self.best
        self._remember()
        return ratio

    def probe(self) -> float:
        """Seconds of the loop now (best of ``repeats``); updates the best."""
        t = min(self._loop() for _ in range(self.repeats))
        self.best = t if self.best is None else min(self.best, t)
        return t

    def _loop(self) -> float:
        start, x = time.perf_counter(), 0
        for i in range(self.loops):
            x += i * i
        return time.perf_counter() - start

    def _identity(self) -> dict[str, object] | None:
        try:
            boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        except OSError:
            return None
        return {"boot_id": boot, "python": sys.version, "loops": self.loops,
                "repeats": self.repeats}  # another Python runs the loop at another speed

    def _recall(self) -> None:
        identity = self._identity() if self.memory is not None else None
        if identity is None or not self.memory.is_file():
            return
        try:
            saved = json.loads(self.memory.read_text())
            if saved.get("identity") == identity:
                self.best = self._remembered = float(saved["best_s"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("%s: unreadable (%s); calibrating afresh", self.memory, exc)

    def _remember(self) -> None:
        """Write the best time when it improved by more than 1 % (atomically; rare after a minute)."""
        if self.memory is None or self.best >= 0.99 * self._remembered:
            return
        identity = self._identity()
        if identity is None:
            return
        from cost_model.io import write_text_atomic

        try:
            write_text_atomic(self.memory, json.dumps({"identity": identity, "best_s": self.best}))
            self._remembered = self.best
        except OSError as exc:
            log.warning("%s: cannot write (%s); the best host speed is kept in this process only", self.memory, exc)
            self.memory = None


HOST_SPEED = HostSpeed(memory=default_cache_root() / "host_speed.json")  # one per process; best times shared by this boot's processes
WARM_S = 0.005  # spinning before a probe that follows idle time


class HostGate:
    """``gate()`` is True while the host runs at its usual speed (``HostSpeed.slowdown(warm_s) <=
    policy.max_slowdown``); ``checks``, ``slow`` and ``worst`` count what it saw. Right after a sample
    the CPU is busy; ``warm_s`` is for gates asked after idle time."""

    def __init__(self, policy: QuietPolicy, host: HostSpeed | None = None, warm_s: float = 0.0) -> None:
        if policy.max_slowdown is None:
            raise ValueError("HostGate needs a QuietPolicy with max_slowdown")
        self.limit = policy.max_slowdown
        self.host = host or HOST_SPEED
        self.warm_s = warm_s
        self.checks = self.slow = 0
        self.worst = 1.0

    def __call__(self) -> bool:
        slowdown = self.host.slowdown(self.warm_s)
        self.checks += 1
        self.worst = max(self.worst, slowdown)
        if slowdown > self.limit:
            self.slow += 1
            return False
        return True

    def reason(self) -> SlowHost:
        """What the gate saw, as the reason for refusing a timing."""
        return SlowHost(self.worst, self.slow, self.checks, self.limit)


def foreign_reason(policy: QuietPolicy, cpu: ForeignCpu) -> OtherProcesses | None:
    """Why ``cpu`` (a finished ``ForeignCpu``) is too busy for ``policy``; None when it is not."""
    if cpu.seconds is None or not policy.contended(cpu.seconds, cpu.wall):
        return None
    return OtherProcesses(cpu.cores, policy.max_foreign)


class QuietWindow:
    """``with QuietWindow(policy) as w: <a one-sample timing>``; then ``w.reason`` says why it must be
    taken again (None: it counts). Checks ``ForeignCpu`` over the block and ``HostGate`` right before
    and after it; ``w.foreign_cores`` and ``w.wall`` describe it."""

    def __init__(self, policy: QuietPolicy) -> None:
        self.policy = policy
        self.gate = None if policy.max_slowdown is None else HostGate(policy, warm_s=WARM_S)

    def __enter__(self) -> "QuietWindow":
        self._before = self.gate() if self.gate else True
        self._cpu = ForeignCpu(self.policy.min_window_s).__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._cpu.__exit__(*exc)
        self.wall, self.foreign_cores = self._cpu.wall, self._cpu.cores
        after = self.gate() if self.gate else True
        self.reason: BusyReason | None = foreign_reason(self.policy, self._cpu)
        if self.reason is None and not (self._before and after):
            self.reason = self.gate.reason()


def fresh_slowdown(host: HostSpeed, timeout_s: float = 60.0) -> float | None:
    """``host``'s slowdown as a fresh Python process reads it now: that process's best loop time over half a
    second of probes, over ``host.best``. None where no such process could run (logged)."""
    code = ("from tvm_ledg.measure.quiet import HostSpeed; "
            f"h = HostSpeed(loops={host.loops}, repeats={host.repeats}, calibrate_s=0.5); h.slowdown(); print(h.best)")
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout_s,
                              check=True)
        return float(done.stdout.split()[-1]) / host.best
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
        log.warning("cannot probe the host from a fresh process (%s)", exc)
        return None


def wait_until_quiet(policy: QuietPolicy, waited_s: float = 0.0,
                     on_wait: Callable[[float], None] | None = None, host_only: bool = False) -> float:
    """Block until other processes stayed under the policy for ``settle_s`` and the host runs at its
    usual speed; returns the total waited (``waited_s`` is what earlier waits of the same measurement
    already took). ``host_only``: only the host was slow, so poll it every 0.5 s instead of settling
    (a poll costs about 8 ms of CPU, which other measuring processes must not take for load).
    ``on_wait(seconds)`` hears of every probe interval spent waiting (the collector's time-out does
    not count them). ``StaleProcess`` when, after ``policy.fresh_check_s`` of a slow host, a fresh process
    reads the host within the limit."""
    gate = HostGate(policy, warm_s=WARM_S) if policy.max_slowdown is not None else None
    host_waited = 0.0  # since the last fresh-process check, while only the host was slow
    while True:
        start = time.perf_counter()
        reasons: list[BusyReason] = []
        if host_only:
            time.sleep(0.5)
        else:
            with ForeignCpu() as probe:
                time.sleep(policy.settle_s)
            reason = foreign_reason(policy, probe)
            reasons += [reason] if reason else []
        if gate is not None and not reasons and not gate():
            reasons.append(gate.reason())
        wall = time.perf_counter() - start
        if on_wait is not None:
            on_wait(wall)
        if not reasons:
            return waited_s + wall
        waited_s += wall
        host_waited = host_waited + wall if isinstance(reasons[0], SlowHost) else 0.0
        if policy.fresh_check_s is not None and host_waited >= policy.fresh_check_s:
            host_waited = 0.0
            fresh = fresh_slowdown(gate.host)
            if fresh is not None and fresh <= policy.max_slowdown:
                raise StaleProcess(f"this process read the host up to {gate.worst:.2f}x slower than its best for "
                                   f"{policy.fresh_check_s:.0f} s, a fresh process reads it {fresh:.2f}x: this process "
                                   f"runs slow, not the host; measure from a new process {BUSY_ADVICE}")
        if policy.max_wait_s is not None and waited_s > policy.max_wait_s:
            raise MachineBusy(f"still busy after {waited_s:.0f} s: {reasons[0]}; measure {BUSY_ADVICE}")
        if int(waited_s) // 60 != int(waited_s - wall) // 60:
            log.warning("waiting for a quiet machine (%.0f s so far): %s", waited_s, reasons[0])
