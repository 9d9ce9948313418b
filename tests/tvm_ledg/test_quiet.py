"""The busy-machine check: other processes' CPU use is seen, contended attempts are retaken or given up."""

from __future__ import annotations

import json
import subprocess
import threading
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from measure_nets import TINY_NB201

import targets
import tvm_ledg.measure as measure_mod
from cost_model.measurement_store import MeasurementStore
from tvm_ledg.collect import collect
from tvm_ledg.measure import MachineBusy, MeasureProtocol, QuietPolicy, Session, measure_session
from tvm_ledg.measure.quiet import ForeignCpu, HostGate, HostSpeed

pytestmark = pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="needs Linux /proc/stat")
QUICK = MeasureProtocol(warmup_runs=1, min_runs=3, max_runs=10, max_seconds=0.2, min_sample_ms=1.0)
# Accepted attempts then had at most 0.3 other cores (no slack), and nothing waits long on a busy CI machine.
# Tests about other processes leave the host probe out (max_slowdown=None): a CI host's other tenants must not
# decide them; the host probe has tests of its own.
LENIENT = QuietPolicy(max_foreign=0.3, slack_s=0.0, max_wait_s=20.0, max_slowdown=None)


@pytest.fixture
def quiet_machine() -> None:
    """These tests judge other processes' CPU use, so they need a machine nobody else is using."""
    with ForeignCpu() as probe:
        time.sleep(0.5)
    if probe.cores is not None and probe.cores > 0.2:
        pytest.skip(f"other processes use {probe.cores:.2f} cores; the busy-machine tests need a quiet machine")


@pytest.fixture
def spinner(quiet_machine) -> Iterator[subprocess.Popen]:
    """Another process keeping one core busy."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(0.5)
    yield proc
    _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()


def _sleeping_session() -> Session:
    """A 'network' that sleeps 2 ms per run: it uses no CPU itself, so all CPU seen is foreign."""
    def run(number: int) -> float:
        t0 = time.perf_counter()
        for _ in range(number):
            time.sleep(0.002)
        return time.perf_counter() - t0

    return Session(run, lambda: [], 0.0)


def test_foreign_cpu_sees_another_busy_process_and_not_this_one(spinner) -> None:
    with ForeignCpu() as busy:
        time.sleep(1.0)
    assert busy.cores is not None and 0.6 < busy.cores < 1.6
    _stop(spinner)
    with ForeignCpu() as own:
        end = time.perf_counter() + 1.0
        while time.perf_counter() < end:  # this process's own work is not foreign
            pass
    assert own.cores is not None and own.cores < 0.3


def test_host_speed_is_the_ratio_to_its_best_and_the_gate_counts(monkeypatch) -> None:
    """Slowdown is the loop's time now over the best so far (best of ``repeats``). Scripted loop times stand
    in for other tenants of the host, which a test cannot start."""
    host = HostSpeed(repeats=2, calibrate_s=0.0)
    slow = [1.0]  # how much slower the CPU runs now

    monkeypatch.setattr(host, "_loop", lambda: 1e-3 * slow[0])
    assert host.slowdown() == pytest.approx(1.0) and host.best == pytest.approx(1e-3)
    slow[0] = 2.0
    assert host.slowdown() == pytest.approx(2.0) and host.best == pytest.approx(1e-3)  # against its best
    gate = HostGate(QuietPolicy(max_slowdown=1.25), host)
    assert gate() is False
    slow[0] = 1.1
    assert gate() is True and (gate.checks, gate.slow, gate.worst) == (2, 1, pytest.approx(2.0))
    assert "up to 2.00x slower than its best in 1 of 2 checks" in str(gate.reason())


def test_host_speed_remembers_its_best_for_this_boot(tmp_path: Path, monkeypatch) -> None:
    """A process started while the host is busy must not take that speed for the best."""
    memory = tmp_path / "host_speed.json"
    quiet_host = HostSpeed(calibrate_s=0.0, memory=memory)
    monkeypatch.setattr(quiet_host, "_loop", lambda: 1e-3)
    assert quiet_host.slowdown() == pytest.approx(1.0) and memory.is_file()
    busy_host = HostSpeed(calibrate_s=0.0, memory=memory)  # a later process, the host now 2x slow
    monkeypatch.setattr(busy_host, "_loop", lambda: 2e-3)
    assert busy_host.slowdown() == pytest.approx(2.0)
    saved = json.loads(memory.read_text())
    saved["identity"]["boot_id"] = "another boot"
    memory.write_text(json.dumps(saved))
    after_reboot = HostSpeed(calibrate_s=0.0, memory=memory)  # maybe another host: calibrate afresh
    monkeypatch.setattr(after_reboot, "_loop", lambda: 2e-3)
    assert after_reboot.slowdown() == pytest.approx(1.0)


def test_contended_attempts_are_given_up_after_max_contended_or_max_wait(spinner) -> None:
    with pytest.raises(MachineBusy, match=r"attempts ran on a busy machine for \d+ s, the last as other processes used"):
        measure_session(_sleeping_session(), QUICK, QuietPolicy(max_contended=1, max_wait_s=None, max_slowdown=None))
    with pytest.raises(MachineBusy, match=r"still busy after \d+ s: other processes used"):
        measure_session(_sleeping_session(), QUICK, QuietPolicy(settle_s=0.3, max_wait_s=1.0, max_slowdown=None))
    assert measure_session(_sleeping_session(), QUICK, None).stats.median_ms > 0  # no policy: no check
    _stop(spinner)
    result = measure_session(_sleeping_session(), QUICK, LENIENT)
    assert result.foreign_cores is not None and result.foreign_cores <= 0.3


def test_a_quiet_attempt_is_kept_when_later_ones_are_contended(monkeypatch) -> None:
    """Attempt 1 is quiet but too noisy (CV), the retakes are contended: attempt 1 is returned, not an error."""
    contended = iter([False, True, True, True])

    class FakeCpu:
        def __init__(self, min_wall_s: float = 0.0) -> None:
            pass

        def __enter__(self):
            self.wall, busy = 0.5, next(contended)
            self.seconds, self.cores = (0.5, 1.0) if busy else (0.0, 0.0)
            return self

        def __exit__(self, *exc):
            pass

    monkeypatch.setattr(measure_mod, "ForeignCpu", FakeCpu)
    monkeypatch.setattr(measure_mod, "wait_until_quiet", lambda policy, waited, on_wait, host_only: waited)
    rng = np.random.default_rng(0)
    noisy = Session(lambda n: n * 1e-3 * (1 + rng.uniform(0, 1)), lambda: [], 0.0)
    waits: list[float] = []
    policy = QuietPolicy(max_contended=2, min_window_s=0.0, max_slowdown=None)
    result = measure_session(noisy, QUICK, policy, on_wait=waits.append)
    assert result.attempts == 1 and result.foreign_cores == 0.0 and result.host_slowdown is None
    assert result.stats.cv > QUICK.remeasure_cv
    assert waits == [0.5, 0.5]  # each contended attempt was reported as waiting (the collector's time-out skips it)


def test_a_slow_host_drops_samples_and_retakes_the_attempt_without_counting_it_as_contended(monkeypatch) -> None:
    """The host gate says no for the whole first attempt (too few samples left: retaken after a host-only wait),
    then yes: the second attempt counts. max_contended=1 would have given up on a busy-process attempt."""
    answers = iter([False] * 11 + [True] * 100)  # the first attempt: 1 check before its 10 samples, 1 after each

    class FakeGate:
        def __init__(self, policy: QuietPolicy) -> None:
            self.worst = 1.0

        def __call__(self) -> bool:
            ok = next(answers)
            self.worst = max(self.worst, 1.0 if ok else 1.9)
            return ok

        def reason(self) -> str:
            return "the host ran slow"

    waits: list[bool] = []

    def wait(policy, waited, on_wait, host_only):
        waits.append(host_only)
        return waited

    monkeypatch.setattr(measure_mod, "HostGate", FakeGate)
    monkeypatch.setattr(measure_mod, "wait_until_quiet", wait)
    protocol = MeasureProtocol(warmup_runs=1, min_runs=3, max_runs=10, max_seconds=0.05, min_sample_ms=1.0)
    result = measure_session(_sleeping_session(), protocol, QuietPolicy(max_contended=1, max_foreign=10.0))
    assert waits == [True]  # one host-only wait, no MachineBusy although max_contended is 1
    assert result.attempts == 1 and result.stats.runs >= 3 and result.host_slowdown == pytest.approx(1.9)



def test_a_process_that_reads_the_host_slow_alone_is_told_apart_from_a_slow_host(monkeypatch) -> None:
    """After fresh_check_s of a slow host, a fresh process probes it: when that one reads it as fast, this
    process is the slow one (StaleProcess, a MachineBusy); when it reads it as slow too, the wait goes on.
    The fresh process is real; this process's slow loop is a stand-in (10x its real time)."""
    from tvm_ledg.measure import quiet

    host = HostSpeed(calibrate_s=0.0)
    for _ in range(20):
        host.probe()
    fresh = quiet.fresh_slowdown(host)
    assert fresh is not None and fresh > 0.2
    if fresh > 3.0:
        pytest.skip(f"the host runs {fresh:.1f}x slow for a fresh process too; this test needs a quiet host")
    real_best = host.best
    monkeypatch.setattr(host, "_loop", lambda: 10 * real_best)
    monkeypatch.setattr(quiet, "HOST_SPEED", host)
    policy = QuietPolicy(max_slowdown=3.0, fresh_check_s=1.0, max_wait_s=20.0)
    with pytest.raises(quiet.StaleProcess, match="a fresh process reads it") as info:
        quiet.wait_until_quiet(policy, host_only=True)
    assert quiet.is_machine_busy(info.value)

    checks: list[float] = []
    monkeypatch.setattr(quiet, "fresh_slowdown", lambda h: checks.append(h.best) or 10.0)  # the host is slow
    with pytest.raises(MachineBusy, match="still busy after") as info:
        quiet.wait_until_quiet(QuietPolicy(max_slowdown=3.0, fresh_check_s=1.0, max_wait_s=3.0), host_only=True)
    assert not isinstance(info.value, quiet.StaleProcess) and len(checks) >= 2 and checks[0] == real_best


@pytest.mark.slow
def test_collector_leaves_busy_pairs_for_the_next_run(tmp_path: Path, spinner) -> None:
    db = tmp_path / "m.sqlite"
    ort = targets.load("local-zen3-onnxruntime-t1")
    report = collect(TINY_NB201[:2], [ort], db, protocol=QUICK,
                     quiet=QuietPolicy(settle_s=0.3, max_wait_s=1.0, max_contended=2, max_slowdown=None))
    assert (report.measured, report.busy, report.failed) == (0, 2, 0)  # the second network was not even tried
    assert MeasurementStore(db, readonly=True).stats()["failures"] == {}
    _stop(spinner)
    again = collect(TINY_NB201[:2], [ort], db, protocol=QUICK, quiet=LENIENT)
    assert (again.measured, again.busy) == (2, 0)
    for m in MeasurementStore(db, readonly=True).measurements():
        assert m.environment["foreign_cores"] <= 0.3 and "waited_s" in m.environment


# ----------------------------------------------------------------------------- MetaSchedule runner


@pytest.fixture(scope="module")
def built_matmul() -> Iterator[object]:
    """A compiled 64x64 matmul as MetaSchedule's runner gets it (artifact path + argument info)."""
    from tvm import te

    from tvm_ledg._tvm import IRModule, ms
    from tvm_ledg.tuning import make_builder, target_of

    a, b = te.placeholder((64, 64), name="A"), te.placeholder((64, 64), name="B")
    k = te.reduce_axis((0, 64), name="k")
    func = te.create_prim_func([a, b, te.compute((64, 64), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k))])
    target = target_of(targets.load("local-zen3-tvm-tuned-znver3-t1"))
    (built,) = make_builder(max_workers=1).build([ms.builder.BuilderInput(IRModule({"main": func}), target)])
    assert built.error_msg is None, built.error_msg
    yield ms.runner.RunnerInput(built.artifact_path, "cpu", ms.arg_info.ArgInfo.from_prim_func(func))


@pytest.mark.slow
def test_tuning_runner_refuses_busy_timings_and_gives_up_on_a_busy_machine(built_matmul, spinner) -> None:
    from tvm_ledg.tuning import make_runner

    give_up = make_runner(1, quiet=QuietPolicy(max_contended=1, max_wait_s=None, max_slowdown=None))
    busy = (MachineBusy, RuntimeError)  # TVM's FFI (a derived object's run) forwards it as a RuntimeError
    with pytest.raises(busy, match=r"1 timings of a candidate ran while other processes used the CPU \(RuntimeError: tvm-ledg: machine busy: other"):
        give_up.run([built_matmul])  # not a slow time in the database
    impatient = make_runner(1, quiet=QuietPolicy(settle_s=0.3, max_wait_s=1.0, max_slowdown=None))
    with pytest.raises(busy, match=r"still busy after \d+ s: other processes used"):
        impatient.run([built_matmul])
    unchecked = make_runner(1, quiet=None).run([built_matmul])[0].result()
    assert unchecked.error_msg is None and 0 < unchecked.run_secs[0] < 0.1  # no policy: no check


@pytest.mark.slow
def test_tuning_runner_times_a_busy_candidate_again_once_the_machine_is_quiet(built_matmul, spinner) -> None:
    from tvm_ledg.tuning import make_runner

    runner = make_runner(1, quiet=LENIENT)  # no host probe: its bursts would retake a second time
    threading.Timer(1.0, _stop, args=(spinner,)).start()  # busy now, quiet in 1 s
    result = runner.run([built_matmul])[0].result()
    assert result.error_msg is None and 0 < result.run_secs[0] < 0.1
    assert len(runner.waits) == 1 and runner.waits[0][1] >= 0.5  # retaken once, and the time lost is on record
    runner.waits.clear()
    assert runner.run([built_matmul])[0].result().error_msg is None and runner.waits == []  # quiet: taken once


def test_tuning_runner_gives_up_on_other_processes_but_waits_out_a_slow_host(monkeypatch) -> None:
    """QuietRunner's retake loop with a stand-in LocalRunner: slow-host refusals do not count towards
    max_contended (as in measure_session); a refusal because other processes ran does."""
    from tvm_ledg.measure.quiet import FOREIGN, REFUSED, is_machine_busy
    from tvm_ledg.tuning import environment as env

    class Future:
        def __init__(self, error: str | None) -> None:
            self.error_msg = error

        def result(self) -> "Future":
            return self

    class Inner:
        def run(self, inputs: list[str]) -> list[Future]:
            return [Future(next(errors)) for _ in inputs]

    waits: list[bool] = []
    monkeypatch.setattr(env, "wait_until_quiet", lambda policy, waited, host_only: waits.append(host_only) or waited)
    runner = env.QuietRunner._cls(Inner(), QuietPolicy(max_contended=1))  # the Python class behind the TVM object
    errors = iter([f"RuntimeError: {REFUSED}: the host ran a reference loop 1.9x slower"] * 3 + [None])
    (future,) = runner.run(["candidate"])
    assert future.result().error_msg is None and waits == [True, True, True] and len(runner.waits) == 1
    errors = iter([f"RuntimeError: {REFUSED}: {FOREIGN} 1.00 cores (at most 0.05 allowed)"])
    with pytest.raises(MachineBusy, match="1 timings of a candidate ran while other processes used the CPU") as info:
        runner.run(["candidate"])
    assert is_machine_busy(info.value) and is_machine_busy(RuntimeError(str(info.value)))
    assert not is_machine_busy(RuntimeError("a compile error"))
    errors = iter([f"RuntimeError: {REFUSED}: the host ran a reference loop 1.9x slower"] * 100)
    with pytest.raises(MachineBusy, match="all 4 timings of a candidate were refused"):
        runner.run(["candidate"])  # a host that reads slow after every quiet wait does not hold tuning for ever


def test_read_tvm_error_tells_our_refusals_and_machine_busy_apart() -> None:
    """Text is all that crosses TVM's FFI and the runner's worker processes; the kind is read back from it."""
    from tvm_ledg.measure.quiet import BUSY_ADVICE, OtherProcesses, SlowHost, read_tvm_error, refusal_message

    foreign = refusal_message(OtherProcesses(1.0, 0.05))
    slow = refusal_message(SlowHost(1.9, 1, 2, 1.35))
    assert read_tvm_error(f"RuntimeError: {foreign}") is OtherProcesses
    assert read_tvm_error(f"RuntimeError: {slow}") is SlowHost
    busy = MachineBusy(f"1 timings of a candidate ran while other processes used the CPU ({foreign}); tune "
                       f"{BUSY_ADVICE}")
    assert read_tvm_error(str(busy)) is MachineBusy  # although it quotes a refusal
    assert read_tvm_error("RuntimeError: a compile error") is None and read_tvm_error(None) is None
