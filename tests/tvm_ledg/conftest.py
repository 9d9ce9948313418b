"""Fixtures shared by the measurement and collector tests."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def rpc_fleet():
    """A real TVM RPC tracker and two servers under one key on loopback, started as users start them
    (``python -m tvm.exec.rpc_tracker`` / ``rpc_server`` processes); yields ``"host:port"`` of the tracker."""
    pytest.importorskip("tornado", reason="TVM's RPC tracker needs tornado")
    if not (shutil.which("g++") or shutil.which("gcc") or shutil.which("cc")):
        pytest.skip("export_library needs a C/C++ compiler to build the uploaded module")
    from tvm import rpc

    port = _free_port()
    procs = [subprocess.Popen([sys.executable, "-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1",
                               "--port", str(port), "--port-end", str(port + 1)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)]
    try:
        deadline = time.time() + 60
        while True:
            try:
                rpc.connect_tracker("127.0.0.1", port).summary()
                break
            except Exception:  # not listening yet
                if time.time() > deadline:
                    pytest.fail("RPC tracker did not start within 60 s")
                time.sleep(0.5)
        deadline = time.time() + 60
        for _ in range(2):
            server_port = _free_port()
            procs.append(subprocess.Popen([sys.executable, "-m", "tvm.exec.rpc_server", "--host", "127.0.0.1",
                                           "--port", str(server_port), "--port-end", str(server_port + 1),
                                           "--tracker", f"127.0.0.1:{port}", "--key", "ledg-test"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True))
        while rpc.connect_tracker("127.0.0.1", port).summary()["queue_info"].get("ledg-test", {}).get("free", 0) < 2:
            if time.time() > deadline:
                pytest.fail("RPC servers did not register within 60 s")
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        for p in procs:  # each in its own session: the servers' session workers (popen_worker) go too
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
