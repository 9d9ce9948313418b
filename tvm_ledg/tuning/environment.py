"""A MetaSchedule builder/runner pair that works on a plain CPU box.

Two fixes every TVM 0.27 user on a CPU machine needs (see the project's TVM notes):

* MetaSchedule's default build function imports ``tvm.s_tir.tensor_intrin`` in
  every builder worker; that costs 40-50 s (mostly CUDA intrinsics), so the
  stock ``LocalBuilder`` times out (30 s) on every candidate. ``make_builder``
  uses the same build steps without that import (CPU schedules use no
  tensor intrinsics) and a 60 s time-out.
* TVM's thread pool defaults to half the cores on x86 and the runner's workers
  inherit the environment, so tuned kernels are timed with the wrong thread
  count. ``make_runner(threads)`` sets ``TVM_NUM_THREADS`` in each runner
  worker before anything runs there.

``target_of(desc)`` gives the ``tvm.target.Target`` of a TVM target descriptor.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from targets.errors import TargetError
from targets.schema import TargetDescriptor
from tvm_ledg._tvm import RemoveWeightLayoutRewriteBlock, driver_build, make_target, ms

__all__ = ["BUILD_TIMEOUT_S", "build_module", "make_builder", "make_runner", "target_of"]

BUILD_TIMEOUT_S = 60.0


def build_module(mod: Any, target: Any, _params: Any = None) -> Any:
    """MetaSchedule's ``default_build`` minus its ``tensor_intrin`` import (runs in a builder worker)."""
    return driver_build(RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod), target=target)


def make_builder(*, max_workers: int | None = None, timeout_sec: float = BUILD_TIMEOUT_S) -> Any:
    """A ``LocalBuilder`` whose workers compile with ``build_module`` (``max_workers`` None: all cores)."""
    return ms.builder.LocalBuilder(max_workers=max_workers, timeout_sec=timeout_sec, f_build=build_module)


def _set_num_threads(threads: int) -> None:
    os.environ["TVM_NUM_THREADS"] = str(threads)


def make_runner(threads: int, *, timeout_sec: float = 30.0, evaluator_config: Any = None) -> Any:
    """A ``LocalRunner`` whose worker times kernels with ``threads`` TVM threads."""
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise TargetError(f"make_runner: threads must be an integer >= 1, got {threads!r}")
    return ms.runner.LocalRunner(timeout_sec=timeout_sec, evaluator_config=evaluator_config,
                                 initializer=functools.partial(_set_num_threads, threads))


def target_of(desc: TargetDescriptor) -> Any:
    """The ``tvm.target.Target`` a TVM target descriptor was compiled for."""
    if desc.tvm is None:
        raise TargetError(f"{desc.name}: field 'tvm.target' is missing; MetaSchedule needs a TVM target "
                          "(choose a runtime: tvm descriptor, e.g. local-zen3-tvm-tuned-znver3-t2)")
    return make_target(desc.to_dict()["tvm"]["target"])
