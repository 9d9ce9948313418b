"""The collector's bookkeeping of its workers' typed messages, without spawning any worker."""

from __future__ import annotations

from dataclasses import dataclass, field

from tvm_ledg.collect import _Job, _Lost, _Run
from tvm_ledg.collect_worker import Busy, Failed, Finished, Flagged, Measured, Restart, Waiting
from tvm_ledg.measure.protocol import MeasureProtocol

HASHES = {"a": "hash-a", "b": "hash-b"}


@dataclass
class _Store:
    failures: list[tuple[str, str, str, str]] = field(default_factory=list)

    def has_measurement(self, spec: str, target_hash: str, protocol: str) -> bool:
        return False

    def has_failure(self, spec: str, target_hash: str, protocol: str) -> bool:
        return False

    def add_failure(self, spec: str, target_hash: str, protocol: str, stage: str, reason: str) -> None:
        self.failures.append((spec, target_hash, stage, reason))


class _Worker:
    def __init__(self) -> None:
        self.job: _Job | None = None
        self.restarts = 0

    def start_job(self, job: _Job) -> None:
        job.started = 100.0
        self.job = job

    def restart(self) -> None:
        self.restarts += 1


def _run(specs: list[str]) -> tuple[_Run, _Worker, _Store, list[str]]:
    said: list[str] = []
    store = _Store()
    run = _Run(store, HASHES, MeasureProtocol(), lambda done, total, text: said.append(f"{done}/{total} {text}"))
    run.plan(specs, retry_failures=False)
    worker = _Worker()
    run.start_next(worker)
    return run, worker, store, said


def test_a_busy_machine_leaves_the_rest_of_the_run_for_the_next_one() -> None:
    run, worker, _, said = _run(["n1", "n2", "n3"])
    run.handle(worker, Measured("a", 1))
    run.handle(worker, Busy("b", "other processes used 1.00 cores"))
    assert not run.queue and run.report.busy == 1 + 4  # this pair and both queued networks' pairs
    assert said[-1].startswith("2/6 n1 on b: machine busy (other processes used 1.00 cores)")
    run.handle(worker, Finished())
    assert worker.job is None and (run.report.measured, run.report.failed) == (1, 0)


def test_restart_requeues_the_rest_of_the_network_and_a_lost_worker_fails_it() -> None:
    run, worker, store, said = _run(["n1", "n2"])
    run.handle(worker, Measured("a", 1))
    run.handle(worker, Restart("this process runs slow"))
    assert (run.report.restarts, worker.restarts) == (1, 1)
    assert (worker.job.spec, worker.job.targets) == ("n1", ["b"])  # the new worker takes the network on
    run.handle(worker, Waiting(5.0))
    assert worker.job.started == 105.0  # waiting for a quiet machine does not count towards the time-out
    run.handle(worker, _Lost("timeout", "network took longer than 1 s"))
    assert store.failures == [("n1", "hash-b", "timeout", "network took longer than 1 s")]
    assert worker.restarts == 2 and worker.job.spec == "n2"
    run.handle(worker, Failed("a", "compile", "boom"))
    run.handle(worker, Flagged())
    run.handle(worker, Measured("b", 0))  # already in the store: not counted as measured
    run.handle(worker, Finished())
    report = run.report
    assert (report.measured, report.failed, report.flagged_networks) == (1, 2, ["n2"])
    assert report.failures == [("n1", "b", "timeout", "network took longer than 1 s"), ("n2", "a", "compile", "boom")]
    assert run.done == run.total == 4 and worker.job is None
    assert said[-1] == "4/4 n2 on b"
