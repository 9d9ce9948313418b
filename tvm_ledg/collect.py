"""The collector: measure many networks on many targets into a measurement store, crash-safe and resumable.

Work is done by worker processes (spawned, so TVM and torch load once per
worker): a worker builds a network, lowers its operator graph, measures it on
every target still missing from the store, cross-checks the backends' outputs,
and writes each measurement in its own transaction. The parent hands out one
network at a time, enforces the per-network time-out (a stuck compile is killed
with its worker, recorded as a failure, and a fresh worker takes over) and
shows progress. Killing the collector loses at most the measurement in flight:
a rerun skips every (network, target, protocol) already in the store, and the
store's unique key makes duplicates impossible.

Locally only one worker measures (measurements on one machine share its
cores). With a TVM RPC tracker, ``parallel`` workers each hold their own
remote board. Local measurements follow a ``QuietPolicy``: an attempt during
which other processes used the CPU or the host ran slow is taken again once the
machine is quiet (the wait does not count towards the time-out). A pair that never finds a
quiet machine is reported as ``busy`` and, not being the network's fault, is
not stored as a failure; the run then stops (a machine that stays busy would
only make every later pair wait as long) and the next run measures the rest.
A worker whose own process reads the host as slow while a fresh process does
not (``StaleProcess``) is replaced, and the new one takes the network on.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import wait
from pathlib import Path

from cost_model.cache_dir import default_cache_root
from cost_model.measurement_store import MeasurementStore
from targets.errors import ArgumentError
from targets.registry import load_many
from targets.schema import TargetDescriptor
from tvm_ledg.collect_worker import (Busy, Failed, Flagged, Measured, Message, PairOver, Restart, Waiting,
                                     worker_main)
from tvm_ledg.measure.protocol import MeasureProtocol
from tvm_ledg.measure.quiet import QuietPolicy

__all__ = ["CollectReport", "collect"]


@dataclass
class CollectReport:
    """What a collect run did; ``failures`` lists ``(spec, target, stage, reason)``."""

    measured: int = 0
    skipped: int = 0
    failed: int = 0
    busy: int = 0  # pairs left for the next run: the machine never became quiet
    restarts: int = 0  # workers replaced because their own process ran slow (StaleProcess)
    flagged_networks: list[str] = field(default_factory=list)
    failures: list[tuple[str, str, str, str]] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class _Job:
    spec: str
    targets: list[str]  # descriptor names still to measure
    started: float = 0.0
    done: set[str] = field(default_factory=set)

    @property
    def remaining(self) -> list[str]:
        """The targets this job has not finished yet (in their order)."""
        return [t for t in self.targets if t not in self.done]


def collect(specs: Sequence[str], targets: Sequence[TargetDescriptor], store_path: str | os.PathLike[str], *,
            protocol: MeasureProtocol | None = None, timeout_s: float = 600.0, tracker: str | None = None,
            key: str | None = None, parallel: int = 1, retry_failures: bool = False,
            quiet: QuietPolicy | None = QuietPolicy(),
            progress: Callable[[int, int, str], None] | None = None) -> CollectReport:
    """Measure every ``spec`` on every target into the store at ``store_path``; see the module docstring.

    ``quiet=None`` turns the busy-machine check off (e.g. several collectors on one machine in a test).

    ``progress(done, total, last)`` is called after every (network, target) pair.
    """
    protocol = protocol or MeasureProtocol()
    _check_workers(targets, parallel, tracker, key)
    targets = load_many(targets)
    started = time.time()
    store = MeasurementStore(store_path)
    run = _Run(store, {d.name: store.add_target(d) for d in targets}, protocol, progress)
    run.plan(specs, retry_failures)
    remote = {"tracker": tracker, "key": key} if tracker else None
    workers: list[_Worker] = []
    try:
        by_name = {d.name: d for d in targets}
        workers = [_Worker(str(store_path), by_name, protocol, remote, quiet)
                   for _ in range(min(parallel, len(run.queue)))]
        for w in workers:
            run.start_next(w)
        while any(w.job for w in workers):
            for w, msg in _messages(workers, timeout_s):
                run.handle(w, msg)
    finally:
        for w in workers:
            w.stop()
        store.close()
    run.report.seconds = time.time() - started
    return run.report


def _check_workers(targets: Sequence[TargetDescriptor], parallel: int, tracker: str | None,
                   key: str | None) -> None:
    """Refuse worker settings that would measure local targets side by side, or lack an RPC key."""
    if parallel < 1:
        raise ArgumentError(f"parallel={parallel}: need at least one worker")
    if parallel > 1 and tracker is None:
        raise ArgumentError("parallel > 1 needs --tracker: local measurements share this machine's cores, "
                            "so only one may run at a time")
    if (tracker is None) != (key is None):
        raise ArgumentError("--tracker and --key go together")
    if parallel > 1 and any(d.runtime != "tvm" for d in targets):
        raise ArgumentError("parallel > 1 measures TVM targets on RPC devices; "
                            f"{[d.name for d in targets if d.runtime != 'tvm']} run on this machine, one at a time: "
                            "collect them in a separate run without --parallel")


# The collector makes this message itself, when a worker dies or its network runs out of time.
@dataclass(frozen=True)
class _Lost:
    """The worker crashed or its network ran out of time: the rest of the network fails."""

    stage: str  # "crashed" or "timeout", stored as the failure's stage
    reason: str


_Message = Message | _Lost


def _messages(workers: list[_Worker], timeout_s: float) -> Iterator[tuple[_Worker, _Message]]:
    """The next message of each working worker that has one, or ``_Lost`` for one that died or timed out.

    Blocks until the first message or time-out. A generator, so that each message is handled before the
    next worker's time-out is judged.
    """
    busy = [w for w in workers if w.job]
    deadline = min(w.job.started + timeout_s for w in busy)
    ready = wait([w.conn for w in busy], timeout=max(0.0, deadline - time.time()))
    for w in busy:
        if w.conn in ready:
            try:
                yield w, w.conn.recv()
            except (EOFError, OSError):
                yield w, _Lost("crashed", f"worker exited with code {w.process.exitcode}")
        elif time.time() > w.job.started + timeout_s and not w.conn.poll(0):  # not a message just in
            yield w, _Lost("timeout", f"network took longer than {timeout_s:.0f} s")


class _Run:
    """The collector's side of one run: the jobs still to hand out, the progress count and the report."""

    def __init__(self, store: MeasurementStore, hashes: dict[str, str], protocol: MeasureProtocol,
                 progress: Callable[[int, int, str], None] | None) -> None:
        self.store, self.hashes, self.protocol, self.progress = store, hashes, protocol, progress
        self.report = CollectReport()
        self.queue: deque[_Job] = deque()
        self.done = self.total = 0

    def plan(self, specs: Sequence[str], retry_failures: bool) -> None:
        """Queue one job per network with the targets the store lacks (and, unless retried, has not seen fail)."""
        for spec in dict.fromkeys(specs):
            todo = [n for n, h in self.hashes.items()
                    if not self.store.has_measurement(spec, h, self.protocol.id)
                    and (retry_failures or not self.store.has_failure(spec, h, self.protocol.id))]
            self.report.skipped += len(self.hashes) - len(todo)
            if todo:
                self.queue.append(_Job(spec, todo))
        self.total = sum(len(j.targets) for j in self.queue)

    def start_next(self, w: _Worker) -> None:
        w.job = None
        if self.queue:
            w.start_job(self.queue.popleft())

    def _tell(self, text: str) -> None:
        if self.progress:
            self.progress(self.done, self.total, text)

    def handle(self, w: _Worker, msg: _Message) -> None:
        """Count ``msg`` from ``w`` in the report; hand ``w`` its next job when its network is over."""
        spec = w.job.spec
        if isinstance(msg, PairOver):
            w.job.done.add(msg.target)
            self.done += 1
        if isinstance(msg, Measured):
            self.report.measured += msg.stored
            self._tell(f"{spec} on {msg.target}")
        elif isinstance(msg, Failed):
            self.report.failed += 1
            self.report.failures.append((spec, msg.target, msg.stage, msg.reason))
            self._tell(f"{spec} on {msg.target}: {msg.stage} failed")
        elif isinstance(msg, Waiting):
            w.job.started += msg.seconds
            self._tell(f"{spec}: waiting for a quiet machine")
        elif isinstance(msg, Busy):  # the worker leaves the rest of this network too; no new networks
            self.report.busy += 1 + sum(len(j.targets) for j in self.queue)
            self.queue.clear()
            self._tell(f"{spec} on {msg.target}: machine busy ({msg.reason[:80]}); the rest is left for the next run")
        elif isinstance(msg, Flagged):
            self.report.flagged_networks.append(spec)
        elif isinstance(msg, Restart):
            self.report.restarts += 1
            self.queue.appendleft(_Job(spec, w.job.remaining))
            self._tell(f"{spec}: restarting the worker ({msg.reason[:80]})")
            w.restart()
            self.start_next(w)
        elif isinstance(msg, _Lost):
            self._fail_rest(w.job, msg)
            self._tell(f"{spec}: {msg.stage}")
            w.restart()
            self.start_next(w)
        else:  # Finished
            self.start_next(w)

    def _fail_rest(self, job: _Job, lost: _Lost) -> None:
        for target in job.remaining:
            self.store.add_failure(job.spec, self.hashes[target], self.protocol.id, lost.stage, lost.reason)
            self.report.failed += 1
            self.report.failures.append((job.spec, target, lost.stage, lost.reason))
            self.done += 1


class _Worker:
    """A spawned measuring process and the job it is on."""

    def __init__(self, store_path: str, targets: dict[str, TargetDescriptor], protocol: MeasureProtocol,
                 remote: dict[str, str] | None, quiet: QuietPolicy | None) -> None:
        self.args = (store_path, {n: d.to_dict() for n, d in targets.items()}, asdict(protocol), remote,
                     None if quiet is None else asdict(quiet))
        self.job: _Job | None = None
        self._spawn()

    def _spawn(self) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=worker_main, args=(child, os.getpid(), *self.args), daemon=True)
        self.process.start()
        child.close()

    def start_job(self, job: _Job) -> None:
        job.started = time.time()
        self.job = job
        self.conn.send((job.spec, job.targets))

    def restart(self) -> None:
        self.stop()
        self._spawn()

    def stop(self) -> None:
        if self.process.is_alive():
            try:
                self.conn.send(None)
            except OSError:
                pass
            self.process.join(timeout=2)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def default_store_path() -> Path:
    """``measurements.sqlite`` in the cache root (``cost_model.cache_dir.default_cache_root``)."""
    return default_cache_root() / "measurements.sqlite"
