"""The collector: resumes after SIGKILL without duplicates, concurrent writers, failures, RPC devices."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from measure_nets import TINY_NB201

import targets
from cost_model.measurement_store import MeasurementStore
from targets.errors import ArgumentError
from tvm_ledg.collect import collect
from tvm_ledg.measure import MeasureProtocol

pytestmark = pytest.mark.slow
ORT, TORCH, TVM = "local-zen3-onnxruntime-t1", "local-zen3-pytorch-t1", "local-zen3-tvm-untuned-generic"
QUICK = MeasureProtocol(warmup_runs=1, min_runs=3, max_runs=10, max_seconds=0.2, min_sample_ms=1.0)


def _cli(db: Path, specs: list[str], *names: str) -> list[str]:
    return [sys.executable, "-m", "tvm_ledg.cli", "collect", *specs, "--target", *names, "--db", str(db),
            "--max-seconds", "0.2", "--no-quiet-check"]  # two collectors at once would wait for each other


def _count(db: Path) -> tuple[int, int]:
    """(measurement rows, distinct (graph, target, protocol) keys) read with plain sqlite3."""
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = con.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]
        keys = con.execute("SELECT COUNT(*) FROM (SELECT DISTINCT graph_hash, target_hash, protocol "
                           "FROM measurements)").fetchone()[0]
        return rows, keys
    finally:
        con.close()


def test_collector_resumes_after_sigkill_without_duplicates(tmp_path: Path) -> None:
    db = tmp_path / "m.sqlite"
    proc = subprocess.Popen(_cli(db, TINY_NB201, ORT, TORCH), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if db.exists() and _count(db)[0] >= 1:
            break
        time.sleep(0.2)
    assert proc.poll() is None, f"collector ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(3)  # its worker notices the parent is gone and stops
    first_rows, first_keys = _count(db)
    assert 1 <= first_rows == first_keys < 6
    before = {(m.graph_hash, m.target_hash): m.created for m in MeasurementStore(db).measurements()}

    out = subprocess.run(_cli(db, TINY_NB201, ORT, TORCH), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"already in the store {first_rows}" in out.stdout
    assert _count(db) == (6, 6)
    after = {(m.graph_hash, m.target_hash): m.created for m in MeasurementStore(db).measurements()}
    assert all(after[k] == v for k, v in before.items())  # nothing measured twice


def test_two_collectors_on_one_store_lose_nothing(tmp_path: Path) -> None:
    db = tmp_path / "m.sqlite"
    a = subprocess.Popen(_cli(db, TINY_NB201[:2], ORT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    b = subprocess.Popen(_cli(db, TINY_NB201[1:], ORT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for p in (a, b):
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    assert _count(db) == (3, 3)
    stats = MeasurementStore(db, readonly=True).stats()
    assert stats["networks"] == 3 and stats["per_target"][ORT]["measurements"] == 3


def test_failing_network_is_logged_and_skipped(tmp_path: Path) -> None:
    db = tmp_path / "m.sqlite"
    specs = ["nb201:|bad|", TINY_NB201[0]]
    report = collect(specs, [targets.load(ORT)], db, protocol=QUICK, quiet=None)
    assert report.measured == 1 and report.failed == 1
    spec, target, stage, reason = report.failures[0]
    assert (spec, target, stage) == ("nb201:|bad|", ORT, "build") and "nb201" in reason
    assert MeasurementStore(db).stats()["failures"] == {"build": 1}
    again = collect(specs, [targets.load(ORT)], db, protocol=QUICK, quiet=None)
    assert (again.measured, again.failed, again.skipped) == (0, 0, 2)


def test_network_over_the_time_limit_is_killed_and_recorded(tmp_path: Path) -> None:
    db = tmp_path / "m.sqlite"
    report = collect(TINY_NB201[:1], [targets.load(TVM)], db, protocol=QUICK, timeout_s=0.5, quiet=None)
    assert report.failed == 1 and report.failures[0][2] == "timeout"
    assert MeasurementStore(db).stats()["failures"] == {"timeout": 1}


def test_local_measurements_are_never_parallel(tmp_path: Path) -> None:
    with pytest.raises(ArgumentError, match="only one may run at a time"):
        collect(TINY_NB201, [targets.load(ORT)], tmp_path / "m.sqlite", parallel=2)
    with pytest.raises(ArgumentError, match="run on this machine"):
        collect(TINY_NB201, [targets.load(ORT)], tmp_path / "m.sqlite", parallel=2, tracker="127.0.0.1:1",
                key="k")


def test_collect_over_rpc_with_two_workers_on_one_key(tmp_path: Path, rpc_fleet: str) -> None:
    db = tmp_path / "m.sqlite"
    report = collect(TINY_NB201, [targets.load(TVM)], db, protocol=QUICK, tracker=rpc_fleet, key="ledg-test",
                     parallel=2)
    assert report.measured == 3, report.failures
    remotes = {m.environment["remote"] for m in MeasurementStore(db).measurements()}
    assert remotes == {f"{rpc_fleet}/ledg-test"}
