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

It also keeps busy-machine timings out of the tuning database, as the
collector does (``tvm_ledg.measure.quiet``): a candidate timed while other
processes used the CPU, or while the host ran slow, is timed again once the
machine is quiet. MetaSchedule
times each candidate only once (about 100 ms), so on a small machine a
compile or a test run beside it would otherwise make a good schedule look slow
for good, and steer the search wrongly.

``target_of(desc)`` gives the ``tvm.target.Target`` of a TVM target descriptor.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any

from targets.errors import TargetError
from targets.schema import TargetDescriptor
from tvm_ledg._tvm import RemoveWeightLayoutRewriteBlock, derived_object, driver_build, make_target, ms
from tvm_ledg.measure.quiet import (BUSY_ADVICE, MachineBusy, OtherProcesses, QuietPolicy, QuietWindow, SlowHost,
                                   read_tvm_error, refusal_message, wait_until_quiet)

__all__ = ["BUILD_TIMEOUT_S", "QuietRunner", "build_module", "make_builder", "make_runner", "target_of"]

BUILD_TIMEOUT_S = 60.0


def build_module(mod: Any, target: Any, _params: Any = None) -> Any:
    """MetaSchedule's ``default_build`` minus its ``tensor_intrin`` import (runs in a builder worker)."""
    return driver_build(RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod), target=target)


def make_builder(*, max_workers: int | None = None, timeout_sec: float = BUILD_TIMEOUT_S) -> Any:
    """A ``LocalBuilder`` whose workers compile with ``build_module`` (``max_workers`` None: all cores)."""
    return ms.builder.LocalBuilder(max_workers=max_workers, timeout_sec=timeout_sec, f_build=build_module)


def _set_num_threads(threads: int) -> None:
    os.environ["TVM_NUM_THREADS"] = str(threads)


def make_runner(threads: int, *, timeout_sec: float = 30.0, evaluator_config: Any = None,
                quiet: QuietPolicy | None = QuietPolicy()) -> Any:
    """A ``LocalRunner`` whose worker times kernels with ``threads`` TVM threads; with ``quiet`` (the
    default) wrapped in a ``QuietRunner``. ``quiet=None``: no busy-machine check."""
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise TargetError(f"make_runner: threads must be an integer >= 1, got {threads!r}")
    local = ms.runner.LocalRunner(
        timeout_sec=timeout_sec, evaluator_config=evaluator_config,
        initializer=functools.partial(_set_num_threads, threads),
        f_run_evaluator=None if quiet is None else functools.partial(quiet_run_evaluator, quiet))
    return local if quiet is None else QuietRunner(local, quiet)


_MAX_REFUSALS_PER_CONTENDED = 4  # slow-host refusals of one candidate allowed per allowed contended one


def quiet_run_evaluator(policy: QuietPolicy, rt_mod: Any, device: Any, evaluator_config: Any,
                        repeated_args: Any) -> list[float]:
    """MetaSchedule's default evaluator, refused when its ``QuietWindow`` finds the machine busy (runs in
    the runner worker, whose own CPU time is not foreign)."""
    with QuietWindow(policy) as window:
        costs = ms.runner.utils.run_evaluator_common(rt_mod, device, evaluator_config, repeated_args)
    if window.reason is not None:
        raise RuntimeError(refusal_message(window.reason))  # crosses the worker boundary as text
    return costs


@derived_object
class QuietRunner(ms.runner.PyRunner):
    """A ``LocalRunner`` (made with ``quiet_run_evaluator``) whose busy-machine timings are taken again.

    A refused candidate is run again after ``wait_until_quiet``; after ``policy.max_contended``
    refusals because other processes used the CPU, ``4 * max_contended`` refusals in all (a slow
    host right after each quiet wait), or ``policy.max_wait_s`` of waiting, ``run`` raises
    ``MachineBusy`` (tuning stops rather than record a distorted time; called by MetaSchedule, it
    reaches the caller as a ``RuntimeError`` with the same message). ``waits`` lists
    ``(time.perf_counter() when done, seconds lost)`` per retaken candidate, so a benchmark can take the
    waiting out of its wall-clock times.
    """

    def __init__(self, runner: Any, policy: QuietPolicy) -> None:
        super().__init__()
        self.runner = runner
        self.policy = policy
        self.waits: list[tuple[float, float]] = []

    def run(self, runner_inputs: list[Any]) -> list[Any]:
        futures = []
        for runner_input, future in zip(runner_inputs, self.runner.run(runner_inputs)):
            refused, contended, waited, start = 0, 0, 0.0, time.perf_counter()
            while (refusal := read_tvm_error(future.result().error_msg)) in (OtherProcesses, SlowHost):
                foreign = refusal is OtherProcesses  # a slow host passes: only the time it takes is limited
                refused += 1
                contended += foreign
                last = future.result().error_msg.strip().splitlines()[-1]
                if contended >= self.policy.max_contended:
                    raise MachineBusy(f"{contended} timings of a candidate ran while other processes used the CPU "
                                      f"({last}); tune {BUSY_ADVICE}")
                if refused >= _MAX_REFUSALS_PER_CONTENDED * self.policy.max_contended:  # slow host every time,
                    # although it was quiet before each run: never wait for ever on one candidate
                    raise MachineBusy(f"all {refused} timings of a candidate were refused ({last}); tune {BUSY_ADVICE}")
                waited = wait_until_quiet(self.policy, waited, host_only=not foreign)
                future = self.runner.run([runner_input])[0]
            if refused:
                end = time.perf_counter()
                self.waits.append((end, end - start))
            futures.append(future)
        return futures


def target_of(desc: TargetDescriptor) -> Any:
    """The ``tvm.target.Target`` a TVM target descriptor was compiled for."""
    if desc.tvm is None:
        raise TargetError(f"{desc.name}: field 'tvm.target' is missing; MetaSchedule needs a TVM target "
                          "(choose a runtime: tvm descriptor, e.g. local-zen3-tvm-tuned-znver3-t2)")
    return make_target(desc.to_dict()["tvm"]["target"])
