"""The collector's worker process: builds, lowers and measures one network at a time, and reports each event.

A worker is spawned by :func:`tvm_ledg.collect.collect` (so TVM and torch load
once per worker) and receives ``(spec, target names)`` jobs over a pipe until
``None``. It writes each measurement or failure to the store itself, in its own
transaction, and tells the collector what happened with one typed message per
event (below), so that a killed worker loses at most the measurement in flight.
"""

from __future__ import annotations

import logging
import os
import signal
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from cost_model.measurement_store import Measurement, MeasurementStore
from targets.schema import TargetDescriptor
from tvm_ledg.measure.protocol import MeasureProtocol
from tvm_ledg.measure.quiet import MachineBusy, QuietPolicy, StaleProcess

__all__ = ["Busy", "Failed", "Finished", "Flagged", "Measured", "Message", "PairOver", "Restart", "Waiting",
           "measure_network", "worker_main"]

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ messages to the collector


@dataclass(frozen=True)
class PairOver:
    """One (network, target) pair is over."""

    target: str


@dataclass(frozen=True)
class Measured(PairOver):
    stored: int  # 0 when the store already held the measurement


@dataclass(frozen=True)
class Failed(PairOver):
    stage: str
    reason: str


@dataclass(frozen=True)
class Busy(PairOver):
    """The machine never became quiet: the pair is left for the next run, not stored as a failure."""

    reason: str


@dataclass(frozen=True)
class Waiting:
    """Seconds spent waiting for a quiet machine, which do not count towards the time-out."""

    seconds: float


@dataclass(frozen=True)
class Flagged:
    """The network's backends disagree on its outputs."""


@dataclass(frozen=True)
class Restart:
    """The worker's own process runs slow (``StaleProcess``): it exits, and a fresh one takes the network."""

    reason: str


@dataclass(frozen=True)
class Finished:
    """The worker is done with its network."""


Message = Measured | Failed | Busy | Waiting | Flagged | Restart | Finished


# ------------------------------------------------------------------ the worker


def worker_main(conn: Connection, parent: int, store_path: str, targets: dict[str, dict[str, Any]],
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
                measure_network(conn, parent, store, spec, [descs[n] for n in names], proto, device, policy)
            except StaleProcess as exc:  # only a new process measures again: this one exits
                conn.send(Restart(str(exc)))
                return
            conn.send(Finished())
    finally:
        store.close()


def measure_network(conn: Connection, parent: int, store: MeasurementStore, spec: str,
                     descs: list[TargetDescriptor], protocol: MeasureProtocol, device: Any,
                     quiet: QuietPolicy | None) -> None:
    """Measure ``spec`` on every target of ``descs``, reporting each pair to the collector over ``conn``."""
    from tvm_ledg.measure import compare_outputs

    prepared = _prepare_network(conn, store, spec, descs, protocol)
    if prepared is None:
        return
    net, graph_hash, outputs = prepared

    def on_wait(seconds: float) -> None:
        try:
            conn.send(Waiting(seconds))
        except OSError as exc:  # the collector is gone: stop without storing anything
            raise _ParentGone from exc

    busy: str | None = None
    for desc in descs:
        if os.getppid() != parent:
            return
        if busy is not None:  # the machine stayed busy: the rest of this network waits for the next run too
            conn.send(Busy(desc.name, busy))
            continue
        try:
            busy = _measure_pair(conn, store, _Pair(spec, graph_hash, net, desc), protocol, device, quiet, outputs,
                                 on_wait)
        except _ParentGone:
            return
    if len(outputs) >= 2:
        agree, err, note = compare_outputs(outputs)
        store.add_network(spec, graph_hash, net.family, agree, err, note)
        if not agree:
            conn.send(Flagged())


def _prepare_network(conn: Connection, store: MeasurementStore, spec: str, descs: list[TargetDescriptor],
                     protocol: MeasureProtocol) -> tuple[Any, str, dict[str, list[Any]]] | None:
    """The built network, its graph hash in the store (lowered and stored once) and the PyTorch reference
    outputs; None when building or lowering failed (stored as a failure of every target)."""
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
    return net, graph_hash, outputs


@dataclass(frozen=True)
class _Pair:
    """One network (built, its graph in the store) and one target to measure it on."""

    spec: str
    graph_hash: str
    net: Any
    desc: TargetDescriptor


def _measure_pair(conn: Connection, store: MeasurementStore, pair: _Pair, protocol: MeasureProtocol, device: Any,
                  quiet: QuietPolicy | None, outputs: dict[str, list[Any]],
                  on_wait: Callable[[float], None]) -> str | None:
    """Measure and store one pair, add its outputs to ``outputs`` and report it; returns why the machine was
    busy when it never became quiet (the pair is then reported as busy, not stored)."""
    from tvm_ledg.measure import environment, measure_session, open_session

    desc = pair.desc
    stage = "compile"
    remote = device if desc.runtime == "tvm" else None
    try:
        with open_session(pair.net, desc, remote) as session:
            stage = "run"
            outputs[desc.name] = session.outputs()
            result = measure_session(session, protocol, None if remote else quiet, on_wait=on_wait)
    except (_ParentGone, StaleProcess):  # the collector is gone / worker_main has the worker replaced
        raise
    except MachineBusy as exc:  # not the network's fault: reported, not stored, measured by the next run
        conn.send(Busy(desc.name, str(exc)))
        return str(exc)
    except Exception as exc:  # compile or run errors of this pair: logged, skipped
        _fail(conn, store, pair.spec, desc, protocol, stage, exc)
        return None
    s = result.stats
    ok = store.add_measurement(Measurement(
        pair.spec, pair.graph_hash, desc.content_hash(), protocol.id, s.median_ms, s.mean_ms, s.std_ms, s.min_ms,
        s.cv, s.runs, s.number, result.compile_s, result.attempts,
        environment() | {"target": desc.name,
                         "remote": None if remote is None else f"{remote.host}:{remote.port}/{remote.key}",
                         "foreign_cores": result.foreign_cores, "waited_s": round(result.waited_s, 1),
                         "host_slowdown": result.host_slowdown, "dropped_samples": s.dropped}))
    conn.send(Measured(desc.name, int(ok)))
    return None


class _ParentGone(Exception):
    """The collector that started this worker has exited."""


def _fail(conn: Connection, store: MeasurementStore, spec: str, desc: TargetDescriptor, protocol: MeasureProtocol,
          stage: str, exc: BaseException) -> None:
    reason = f"{type(exc).__name__}: {exc}".strip()
    log.debug("%s on %s failed at %s:\n%s", spec, desc.name, stage, traceback.format_exc())
    store.add_failure(spec, desc.content_hash(), protocol.id, stage, reason)
    conn.send(Failed(desc.name, stage, reason.splitlines()[0][:300] if reason else stage))
