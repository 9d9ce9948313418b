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

import logging
import multiprocessing as mp
import os
import signal
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from cost_model.cache_dir import default_cache_root
from cost_model.measurement_store import Measurement, MeasurementStore
from targets.errors import DataError
from targets.registry import load_many
from targets.schema import TargetDescriptor
from tvm_ledg.measure.protocol import MeasureProtocol
from tvm_ledg.measure.quiet import MachineBusy, QuietPolicy, StaleProcess

__all__ = ["CollectReport", "collect"]

log = logging.getLogger(__name__)


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
    if parallel < 1:
        raise DataError(f"parallel={parallel}: need at least one worker")
    if parallel > 1 and tracker is None:
        raise DataError("parallel > 1 needs --tracker: local measurements share this machine's cores, "
                        "so only one may run at a time")
    if (tracker is None) != (key is None):
        raise DataError("--tracker and --key go together")
    if parallel > 1 and any(d.runtime != "tvm" for d in targets):
        raise DataError("parallel > 1 measures TVM targets on RPC devices; "
                        f"{[d.name for d in targets if d.runtime != 'tvm']} run on this machine, one at a time: "
                        "collect them in a separate run without --parallel")
    targets = load_many(targets)
    names = [d.name for d in targets]
    started = time.time()
    report = CollectReport()
    store = MeasurementStore(store_path)
    by_name = {d.name: d for d in targets}
    hashes = {d.name: store.add_target(d) for d in targets}
    queue: deque[_Job] = deque()
    for spec in dict.fromkeys(specs):
        todo = [n for n in names
                if not store.has_measurement(spec, hashes[n], protocol.id)
                and (retry_failures or not store.has_failure(spec, hashes[n], protocol.id))]
        report.skipped += len(names) - len(todo)
        if todo:
            queue.append(_Job(spec, todo))
    total = sum(len(j.targets) for j in queue)
    done = 0
    remote = {"tracker": tracker, "key": key} if tracker else None
    workers: list[_Worker] = []
    try:
        workers = [_Worker(str(store_path), by_name, protocol, remote, quiet)
                   for _ in range(min(parallel, len(queue)))]
        for w in workers:
            if queue:
                w.start_job(queue.popleft())
        while any(w.job for w in workers):
            busy = [w for w in workers if w.job]
            deadline = min(w.job.started + timeout_s for w in busy)
            ready = wait([w.conn for w in busy], timeout=max(0.0, deadline - time.time()))
            for w in busy:
                if w.conn in ready:
                    try:
                        msg = w.conn.recv()
                    except (EOFError, OSError):
                        msg = ("crashed", f"worker exited with code {w.process.exitcode}")
                elif time.time() > w.job.started + timeout_s and not w.conn.poll(0):  # not a message just in
                    msg = ("timeout", f"network took longer than {timeout_s:.0f} s")
                else:
                    continue
                kind = msg[0]
                if kind in ("measured", "failed", "busy"):  # one (network, target) pair is over
                    target = msg[1]
                    w.job.done.add(target)
                    done += 1
                if kind == "measured":
                    report.measured += msg[2]
                    if progress:
                        progress(done, total, f"{w.job.spec} on {target}")
                    continue
                if kind == "failed":
                    _, _, stage, reason = msg
                    report.failed += 1
                    report.failures.append((w.job.spec, target, stage, reason))
                    if progress:
                        progress(done, total, f"{w.job.spec} on {target}: {stage} failed")
                    continue
                if kind == "waiting":  # waiting for a quiet machine does not count towards the time-out
                    w.job.started += msg[1]
                    if progress:
                        progress(done, total, f"{w.job.spec}: waiting for a quiet machine")
                    continue
                if kind == "busy":  # the worker leaves the rest of this network too; no new networks
                    reason = msg[2]
                    report.busy += 1 + sum(len(j.targets) for j in queue)
                    queue.clear()
                    if progress:
                        progress(done, total, f"{w.job.spec} on {target}: machine busy ({reason[:80]}); "
                                 "the rest is left for the next run")
                    continue
                if kind == "flagged":
                    report.flagged_networks.append(w.job.spec)
                    continue
                if kind == "restart":  # the worker's process ran slow, not the host: a fresh one takes the network
                    report.restarts += 1
                    queue.appendleft(_Job(w.job.spec, w.job.remaining))
                    if progress:
                        progress(done, total, f"{w.job.spec}: restarting the worker ({msg[1][:80]})")
                    w.restart()
                if kind in ("timeout", "crashed"):  # the rest of this network fails; a fresh worker goes on
                    for target in w.job.remaining:
                        store.add_failure(w.job.spec, hashes[target], protocol.id, kind, msg[1])
                        report.failed += 1
                        report.failures.append((w.job.spec, target, kind, msg[1]))
                        done += 1
                    if progress:
                        progress(done, total, f"{w.job.spec}: {kind}")
                    w.restart()
                w.job = None  # "finished", or replaced after a time-out / crash
                if queue:
                    w.start_job(queue.popleft())
    finally:
        for w in workers:
            w.stop()
        store.close()
    report.seconds = time.time() - started
    return report


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
        self.process = ctx.Process(target=_worker_main, args=(child, os.getpid(), *self.args), daemon=True)
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


def _worker_main(conn: Connection, parent: int, store_path: str, targets: dict[str, dict[str, Any]],
                 protocol: dict[str, Any], remote: dict[str, str] | None, quiet: dict[str, Any] | None) -> None:
    """Worker loop: one network per message until ``None``; exits when the parent is gone.

    Ctrl-C reaches the whole process group, but only the collector handles it (it stops
    its workers): a worker that saw the interrupt could meet it as some library's error
    (TVM, torch and onnxruntime wrap exceptions raised in their callbacks) and store a
    permanent failure for a network that has nothing wrong with it.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from tvm_ledg.measure.rpc import RemoteDevice

    descs = {n: TargetDescriptor.from_dict(d, origin=f"collector target {n}") for n, d in targets.items()}
    proto = MeasureProtocol(**protocol)
    policy = None if quiet is None else QuietPolicy(**quiet)
    device = RemoteDevice(remote["tracker"], remote["key"]) if remote else None
    store = MeasurementStore(store_path)
    try:
        while True:
            while not conn.poll(1.0):
                if os.getppid() != parent:
                    return
            job = conn.recv()
            if job is None:
                return
            spec, names = job
            try:
                _measure_network(conn, parent, store, spec, [descs[n] for n in names], proto, device, policy)
            except StaleProcess as exc:  # only a new process measures again: this one exits
                conn.send(("restart", str(exc)))
                return
            conn.send(("finished",))
    finally:
        store.close()


def _measure_network(conn: Connection, parent: int, store: MeasurementStore, spec: str,
                     descs: list[TargetDescriptor], protocol: MeasureProtocol, device: Any,
                     quiet: QuietPolicy | None) -> None:
    from tvm_ledg.measure import compare_outputs, environment, measure_session, open_session
    from tvm_ledg.measure.backends import Network
    from tvm_ledg.networks import network_graph

    def fail_all(stage: str, exc: BaseException) -> None:
        for d in descs:
            _fail(conn, store, spec, d, protocol, stage, exc)

    try:
        net = Network.load(spec)
    except Exception as exc:  # any build/export error of this network
        return fail_all("build", exc)
    graph_hash = store.graph_hash_of(spec)
    if graph_hash is None:
        try:
            graph_hash = store.add_graph(network_graph(spec))  # at the batch a zoo spec carries, as measured
        except Exception as exc:  # lowering errors of this network
            return fail_all("lower", exc)
        store.add_network(spec, graph_hash, net.family)
    outputs = {}
    if net.module is not None:
        import torch

        with torch.inference_mode():
            out = net.module(*[torch.from_numpy(a) for a in net.inputs.values()])
        outputs["pytorch-reference"] = [t.numpy() for t in (out if isinstance(out, (tuple, list)) else [out])]
    def on_wait(seconds: float) -> None:
        try:
            conn.send(("waiting", seconds))
        except OSError as exc:  # the collector is gone: stop without storing anything
            raise _ParentGone from exc

    busy: str | None = None
    for desc in descs:
        if os.getppid() != parent:
            return
        if busy is not None:  # the machine stayed busy: the rest of this network waits for the next run too
            conn.send(("busy", desc.name, busy))
            continue
        stage = "compile"
        remote = device if desc.runtime == "tvm" else None
        try:
            with open_session(net, desc, remote) as session:
                stage = "run"
                outputs[desc.name] = session.outputs()
                result = measure_session(session, protocol, None if remote else quiet, on_wait=on_wait)
        except _ParentGone:
            return
        except StaleProcess:  # not a busy machine: _worker_main has the worker replaced
            raise
        except MachineBusy as exc:  # not the network's fault: reported, not stored, measured by the next run
            busy = str(exc)
            conn.send(("busy", desc.name, busy))
            continue
        except Exception as exc:  # compile or run errors of this pair: logged, skipped
            _fail(conn, store, spec, desc, protocol, stage, exc)
            continue
        s = result.stats
        ok = store.add_measurement(Measurement(
            spec, graph_hash, desc.content_hash(), protocol.id, s.median_ms, s.mean_ms, s.std_ms, s.min_ms, s.cv,
            s.runs, s.number, result.compile_s, result.attempts,
            environment() | {"target": desc.name,
                             "remote": None if remote is None else f"{remote.host}:{remote.port}/{remote.key}",
                             "foreign_cores": result.foreign_cores, "waited_s": round(result.waited_s, 1),
                             "host_slowdown": result.host_slowdown, "dropped_samples": s.dropped}))
        conn.send(("measured", desc.name, int(ok)))
    if len(outputs) >= 2:
        agree, err, note = compare_outputs(outputs)
        store.add_network(spec, graph_hash, net.family, agree, err, note)
        if not agree:
            conn.send(("flagged",))


class _ParentGone(Exception):
    """The collector that started this worker has exited."""


def _fail(conn: Connection, store: MeasurementStore, spec: str, desc: TargetDescriptor, protocol: MeasureProtocol,
          stage: str, exc: BaseException) -> None:
    reason = f"{type(exc).__name__}: {exc}".strip()
    log.debug("%s on %s failed at %s:\n%s", spec, desc.name, stage, traceback.format_exc())
    store.add_failure(spec, desc.content_hash(), protocol.id, stage, reason)
    conn.send(("failed", desc.name, stage, reason.splitlines()[0][:300] if reason else stage))


def default_store_path() -> Path:
    """``measurements.sqlite`` in the cache root (``cost_model.cache_dir.default_cache_root``)."""
    return default_cache_root() / "measurements.sqlite"
