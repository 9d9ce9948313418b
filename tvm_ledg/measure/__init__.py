"""Measure networks on targets: backends, timing protocol, environment, remote devices (TVM RPC).

``measure(net, desc)`` opens the target's backend, times the network under a
:class:`MeasureProtocol` and re-measures when the coefficient of variation is
above ``protocol.remeasure_cv`` (keeping the steadiest attempt). Only one
measurement may run at a time on one physical machine: they share its cores.
With a ``QuietPolicy`` an attempt during which other processes used the CPU, or
the host ran slow (other tenants of a virtual machine's host), is thrown away
and taken again once the machine is quiet (``tvm_ledg.measure.quiet``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from targets.schema import TargetDescriptor
from tvm_ledg.measure.backends import Network, Session, backend_of, open_session
from tvm_ledg.measure.environment import environment
from tvm_ledg.measure.protocol import MeasureProtocol, TimingStats, time_runs
from tvm_ledg.measure.quiet import (BUSY_ADVICE, ForeignCpu, HostGate, MachineBusy, QuietPolicy, foreign_reason,
                                   wait_until_quiet)

__all__ = ["MachineBusy", "MeasureProtocol", "MeasureResult", "Network", "QuietPolicy", "Session", "TimingStats",
           "backend_of", "compare_outputs", "environment", "measure", "measure_session", "open_session", "time_runs"]


@dataclass(frozen=True)
class MeasureResult:
    """Timing of one network on one target, the compile time, how many attempts it took and, with a
    ``QuietPolicy``, other processes' average busy cores during the kept attempt, the time spent
    waiting for a quiet machine and the worst host slowdown seen (``stats.dropped`` samples were
    taken while the host ran slow and left out)."""

    stats: TimingStats
    compile_s: float
    attempts: int
    foreign_cores: float | None = None
    waited_s: float = 0.0
    host_slowdown: float | None = None


def measure_session(session: Session, protocol: MeasureProtocol, quiet: QuietPolicy | None = None,
                    on_wait: Callable[[float], None] | None = None) -> MeasureResult:
    """Time an open session; repeat while CV > ``remeasure_cv`` (at most ``max_attempts``), keep the lowest CV.

    With ``quiet``, samples taken while the host ran slow are dropped (``HostGate``), and an attempt
    during which other processes used the CPU, or with too few samples left, does not count: it is
    taken again after ``wait_until_quiet`` (``MachineBusy`` once the policy's patience is spent;
    ``on_wait`` hears of the waiting).
    """
    gate = HostGate(quiet) if quiet is not None and quiet.max_slowdown is not None else None
    best: TimingStats | None = None
    best_foreign: float | None = None
    attempts = contended = 0
    waited = 0.0
    while attempts < protocol.max_attempts:
        if quiet is None:
            stats, foreign = time_runs(session.run, protocol), None
        else:
            with ForeignCpu(quiet.min_window_s) as cpu:
                stats = time_runs(session.run, protocol, keep=gate)
            foreign = cpu.cores
            busy = foreign_reason(quiet, cpu)
            reason = busy or (gate.reason() if stats is None and gate else None)
            if reason is not None:
                contended += busy is not None  # a slow host passes: only the time it takes is limited
                waited += cpu.wall
                if on_wait is not None:
                    on_wait(cpu.wall)  # a contended attempt is waiting too: the collector's time-out skips it
                if contended >= quiet.max_contended or (quiet.max_wait_s is not None and waited > quiet.max_wait_s):
                    if best is not None:  # an earlier quiet attempt stands, if not as steady as wanted
                        break
                    raise MachineBusy(f"attempts ran on a busy machine for {waited:.0f} s, the last as {reason}; "
                                      f"measure {BUSY_ADVICE}")
                waited = wait_until_quiet(quiet, waited, on_wait, host_only=busy is None)
                continue
        assert stats is not None
        attempts += 1
        if best is None or stats.cv < best.cv:
            best, best_foreign = stats, foreign
        if best.cv <= protocol.remeasure_cv:
            break
    assert best is not None
    return MeasureResult(best, session.compile_s, attempts, best_foreign, waited, gate.worst if gate else None)


def measure(net: Network, desc: TargetDescriptor, protocol: MeasureProtocol | None = None,
            remote: Any = None, quiet: QuietPolicy | None = None) -> MeasureResult:
    """Measure ``net`` on ``desc`` (locally, or on ``remote``, a :class:`~tvm_ledg.measure.rpc.RemoteDevice`).

    ``quiet`` applies to local measurements only (a remote device's load is not visible here).
    """
    with open_session(net, desc, remote) as session:
        return measure_session(session, protocol or MeasureProtocol(), None if remote else quiet)


def compare_outputs(outputs: dict[str, list[np.ndarray]], rtol: float = 1e-3) -> tuple[bool, float, str]:
    """Cross-check the outputs of several backends on the same inputs.

    The error of each backend against the first is ``max|a - b| / max|b|`` over its outputs; they
    agree when every error is below ``rtol``. Returns ``(ok, worst error, note naming the worst pair)``.
    """
    names = list(outputs)
    if len(names) < 2:
        return True, 0.0, f"only {names} ran"
    ref_name, ref = names[0], outputs[names[0]]
    worst, note = 0.0, ""
    for name in names[1:]:
        out = outputs[name]
        if len(out) != len(ref) or any(a.shape != b.shape for a, b in zip(out, ref)):
            return False, float("inf"), f"{name} output shapes {[a.shape for a in out]} != {ref_name} " \
                                        f"{[b.shape for b in ref]}"
        for a, b in zip(out, ref):
            err = float(np.max(np.abs(a.astype(np.float64) - b)) / max(float(np.max(np.abs(b))), 1e-12))
            if not np.isfinite(err):
                err = float("inf")
            if err > worst:
                worst, note = err, f"{name} vs {ref_name}"
    return worst <= rtol, worst, note
