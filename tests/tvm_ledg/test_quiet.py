"""The busy-machine check: other processes' CPU use is seen, contended attempts are retaken or given up."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from measure_nets import TINY_NB201

import targets
from cost_model.measurement_store import MeasurementStore
from tvm_ledg.collect import collect
from tvm_ledg.measure import MachineBusy, MeasureProtocol, QuietPolicy, Session, measure_session
from tvm_ledg.measure.quiet import ForeignCpu

pytestmark = pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="needs Linux /proc/stat")
QUICK = MeasureProtocol(warmup_runs=1, min_runs=3, max_runs=10, max_seconds=0.2, min_sample_ms=1.0)
IMPATIENT = QuietPolicy(settle_s=0.3, max_wait_s=1.0, max_contended=2)


@pytest.fixture
def spinner() -> Iterator[subprocess.Popen]:
    """Another process keeping one core busy."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(0.5)
    yield proc
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
    spinner.kill()
    spinner.wait()
    with ForeignCpu() as own:
        end = time.perf_counter() + 1.0
        while time.perf_counter() < end:  # this process's own work is not foreign
            pass
    assert own.cores is not None and own.cores < 0.3


def test_contended_measurement_is_given_up_and_quiet_one_counts(spinner) -> None:
    with pytest.raises(MachineBusy, match="cores"):
        measure_session(_sleeping_session(), QUICK, IMPATIENT)
    assert measure_session(_sleeping_session(), QUICK, None).stats.median_ms > 0  # no policy: no check
    spinner.kill()
    spinner.wait()
    result = measure_session(_sleeping_session(), QUICK, QuietPolicy(max_foreign=0.3))
    assert result.foreign_cores is not None and result.foreign_cores < 0.3


@pytest.mark.slow
def test_collector_leaves_busy_pairs_for_the_next_run(tmp_path: Path, spinner) -> None:
    db = tmp_path / "m.sqlite"
    ort = targets.load("local-zen3-onnxruntime-t1")
    report = collect(TINY_NB201[:1], [ort], db, protocol=QUICK, quiet=IMPATIENT)
    assert (report.measured, report.busy, report.failed) == (0, 1, 0)
    assert MeasurementStore(db, readonly=True).stats()["failures"] == {}
    spinner.kill()
    spinner.wait()
    again = collect(TINY_NB201[:1], [ort], db, protocol=QUICK, quiet=QuietPolicy(max_foreign=0.3))
    assert (again.measured, again.busy) == (1, 0)
    (m,) = MeasurementStore(db, readonly=True).measurements()
    assert m.environment["foreign_cores"] < 0.3 and "waited_s" in m.environment
