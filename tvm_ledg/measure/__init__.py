"""Measure networks on targets: backends, timing protocol, environment, remote devices (TVM RPC).

``measure(net, desc)`` opens the target's backend, times the network under a
:class:`MeasureProtocol` and re-measures when the coefficient of variation is
above ``protocol.remeasure_cv`` (keeping the steadiest attempt). Only one
measurement may run at a time on one physical machine: they share its cores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from targets.schema import TargetDescriptor
from tvm_ledg.measure.backends import Network, Session, backend_of, open_session
from tvm_ledg.measure.environment import environment
from tvm_ledg.measure.protocol import MeasureProtocol, TimingStats, time_runs

__all__ = ["MeasureProtocol", "MeasureResult", "Network", "Session", "TimingStats", "backend_of",
           "compare_outputs", "environment", "measure", "measure_session", "open_session", "time_runs"]


@dataclass(frozen=True)
class MeasureResult:
    """Timing of one network on one target, the compile time, and how many attempts it took."""

    stats: TimingStats
    compile_s: float
    attempts: int


def measure_session(session: Session, protocol: MeasureProtocol) -> MeasureResult:
    """Time an open session; repeat while CV > ``remeasure_cv`` (at most ``max_attempts``), keep the lowest CV."""
    best: TimingStats | None = None
    attempts = 0
    while attempts < protocol.max_attempts:
        attempts += 1
        stats = time_runs(session.run, protocol)
        if best is None or stats.cv < best.cv:
            best = stats
        if best.cv <= protocol.remeasure_cv:
            break
    assert best is not None
    return MeasureResult(best, session.compile_s, attempts)


def measure(net: Network, desc: TargetDescriptor, protocol: MeasureProtocol | None = None,
            remote: Any = None) -> MeasureResult:
    """Measure ``net`` on ``desc`` (locally, or on ``remote``, a :class:`~tvm_ledg.measure.rpc.RemoteDevice`)."""
    with open_session(net, desc, remote) as session:
        return measure_session(session, protocol or MeasureProtocol())


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
