"""Ctrl-C always ends as an interrupt: never as an import error, never as a stored failure."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

import targets
from cost_model.measurement_store import MeasurementStore
from tvm_ledg import frontend
from tvm_ledg._tvm import tvm
from tvm_ledg.cli import main
from tvm_ledg.collect import _Worker
from tvm_ledg.collect_worker import measure_network
from tvm_ledg.measure import MeasureProtocol
from tvm_ledg.measure.backends import Network

NB201 = "nb201:|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"


def _interrupted_inside_tvm(*_args, **_kwargs):
    """Ctrl-C landing in Python code that TVM's C++ runs (as in ``normalize_module``'s mutators)."""

    @tvm.ir.transform.module_pass(opt_level=0)
    def interrupted(mod, ctx):
        raise KeyboardInterrupt

    return interrupted(tvm.IRModule())


def test_interrupt_inside_a_tvm_callback_exits_130(monkeypatch, capsys):
    monkeypatch.setattr(frontend, "normalize_module", _interrupted_inside_tvm)
    assert main(["graph", NB201, "--fused"]) == 130  # the fused view is lowered through TVM
    err = capsys.readouterr().err
    assert "interrupted" in err and "error:" not in err


class _Conn:
    def __init__(self) -> None:
        self.sent: list[tuple] = []

    def send(self, msg: tuple) -> None:
        self.sent.append(msg)


def test_collect_does_not_store_an_interrupt_as_a_failure(monkeypatch, tmp_path: Path):
    monkeypatch.setattr(Network, "load", classmethod(lambda cls, spec: _interrupted_inside_tvm()))
    desc = targets.load("local-zen3-onnxruntime-t1")
    conn = _Conn()
    with MeasurementStore(tmp_path / "m.sqlite") as store:
        store.add_target(desc)
        with pytest.raises(KeyboardInterrupt):
            measure_network(conn, os.getppid(), store, NB201, [desc], MeasureProtocol(), None, None)
        assert store.stats()["failures"] == {} and conn.sent == []


def _ignores_sigint(pid: int) -> bool:
    with open(f"/proc/{pid}/status") as f:
        mask = next(line.split()[1] for line in f if line.startswith("SigIgn:"))
    return bool(int(mask, 16) & (1 << (signal.SIGINT - 1)))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the signal mask from /proc")
def test_collect_workers_leave_ctrl_c_to_the_collector(tmp_path: Path):
    worker = _Worker(str(tmp_path / "m.sqlite"), {}, MeasureProtocol(), None, None)
    try:
        deadline = time.time() + 60
        while not _ignores_sigint(worker.process.pid):
            assert worker.process.is_alive() and time.time() < deadline, "worker never ignored SIGINT"
            time.sleep(0.1)
        os.kill(worker.process.pid, signal.SIGINT)
        time.sleep(0.5)
        assert worker.process.is_alive()
    finally:
        worker.stop()
