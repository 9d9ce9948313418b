"""Measure on a device registered with a TVM RPC tracker: cross-compile here, upload, time there.

This is how TVM users drive device fleets: every board runs
``python -m tvm.exec.rpc_server --tracker HOST:PORT --key KEY``, and any number
of clients ask the tracker (``python -m tvm.exec.rpc_tracker``) for a free
server with that key. Several servers on one key serve several clients at
once; the tracker gives each session its own server, so ``tvm-ledg collect
--tracker ... --key ... --parallel N`` keeps N boards busy.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from targets.errors import ArgumentError

__all__ = ["RemoteDevice", "parse_tracker"]


def parse_tracker(address: str) -> tuple[str, int]:
    """``"host:port"`` -> ``(host, port)`` with a clear error for anything else."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ArgumentError(f"--tracker {address!r}: expected HOST:PORT, e.g. 127.0.0.1:9190")
    return host, int(port)


class RemoteDevice:
    """A TVM RPC device found through a tracker; ``load(executable)`` runs a compiled module on it.

    ``fcompile`` is the ``export_library`` compiler (``tvm.contrib.cc.cross_compiler(...)`` for a
    board of another architecture; the host compiler by default).
    """

    def __init__(self, tracker: str, key: str, *, priority: int = 1, session_timeout: float = 0,
                 fcompile: Callable[..., Any] | None = None) -> None:
        self.host, self.port = parse_tracker(tracker)
        self.key = key
        self.priority = priority
        self.session_timeout = session_timeout
        self.fcompile = fcompile
        self._session: Any = None
        self._uploads = itertools.count()

    @property
    def session(self) -> Any:
        """The RPC session, requested from the tracker on first use and kept (one board per client)."""
        if self._session is None:
            from tvm_ledg._tvm import tvm

            try:
                tracker = tvm.rpc.connect_tracker(self.host, self.port)
                self._session = tracker.request(self.key, priority=self.priority,
                                                session_timeout=self.session_timeout)
            except Exception as exc:  # TVMError, ConnectionRefusedError, RuntimeError from the tracker
                raise ArgumentError(f"RPC tracker {self.host}:{self.port} key {self.key!r}: no session "
                                    f"({exc})") from exc
        return self._session

    def load(self, executable: Any) -> tuple[Any, Any, Callable[[], None]]:
        """Export ``executable`` as a shared library, upload it and open a Relax VM on the remote CPU."""
        from tvm_ledg._tvm import relax

        work = Path(tempfile.mkdtemp(prefix="tvm-ledg-rpc-"))
        try:
            lib = work / f"net-{next(self._uploads)}.so"  # never overwrite a library the server has loaded
            executable.export_library(str(lib), fcompile=self.fcompile)
            self.session.upload(str(lib))
            module = self.session.load_module(lib.name)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        dev = self.session.cpu()
        return relax.VirtualMachine(module, dev), dev, lambda: None

    def close(self) -> None:
        self._session = None  # the RPC session closes when its last reference goes
