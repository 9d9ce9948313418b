"""Measurement backends, the timing protocol, the numerical cross-check and remote (RPC) measurement."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

import targets
from targets.errors import ArgumentError
from tvm_ledg.measure import MeasureProtocol, compare_outputs, environment, measure, open_session, time_runs
from tvm_ledg.measure.rpc import parse_tracker

from measure_nets import tiny_network

QUICK = MeasureProtocol(warmup_runs=1, min_runs=5, max_runs=30, max_seconds=0.5, min_sample_ms=1.0)
LOCAL = ["local-zen3-onnxruntime-t1", "local-zen3-onnxruntime-t2", "local-zen3-pytorch-t1",
         "local-zen3-pytorch-t2", "local-zen3-tvm-untuned-generic", "local-zen3-tvm-untuned-znver3"]


@pytest.fixture(scope="module")
def net():
    return tiny_network()


@pytest.mark.parametrize("name", LOCAL)
def test_every_backend_measures_the_tiny_network(net, name: str) -> None:
    result = measure(net, targets.load(name), QUICK)
    s = result.stats
    assert 0 < s.min_ms <= s.median_ms < 1000
    assert s.min_ms <= s.mean_ms
    assert QUICK.floor_runs <= s.runs <= QUICK.max_runs and s.number >= 1
    assert math.isfinite(s.cv) and s.cv >= 0 and 1 <= result.attempts <= QUICK.max_attempts
    assert result.compile_s >= 0


def test_local_tvm_timing_covers_the_whole_wall_time() -> None:
    # time_evaluator runs the function once more, untimed, per call: a sample of one run then cost two
    slow_enough = tiny_network(size=128, width=32)  # a few ms untuned, far above the call overhead
    with open_session(slow_enough, targets.load("local-zen3-tvm-untuned-generic")) as session:
        session.run(1)
        ratios = []
        for _ in range(5):
            start = time.perf_counter()
            timed = session.run(1)
            ratios.append(timed / (time.perf_counter() - start))
    assert timed > 5e-4 and max(ratios) > 0.9


def test_backends_agree_numerically_on_the_tiny_network(net) -> None:
    outputs = {}
    for name in ["local-zen3-pytorch-t1", "local-zen3-onnxruntime-t1", "local-zen3-tvm-untuned-znver3"]:
        with open_session(net, targets.load(name)) as session:
            outputs[name] = session.outputs()
    ok, err, _ = compare_outputs(outputs)
    assert ok and err < 1e-4
    assert outputs["local-zen3-pytorch-t1"][0].shape == (1, 4)


def test_disagreeing_outputs_are_flagged() -> None:
    a = [np.linspace(-1, 1, 10, dtype=np.float32)]
    ok, err, note = compare_outputs({"ref": a, "other": [a[0] * 1.1]})
    assert not ok and err == pytest.approx(0.1, rel=1e-3) and "other" in note
    ok, _, note = compare_outputs({"ref": a, "other": [a[0][:5]]})
    assert not ok and "shape" in note


def test_time_runs_batches_fast_calls_and_stops_at_the_caps() -> None:
    calls: list[int] = []

    def run(number: int) -> float:  # a 0.1 ms "network" with a fake clock
        calls.append(number)
        return 1e-4 * number

    stats = time_runs(run, MeasureProtocol(warmup_runs=2, min_runs=5, max_runs=12, min_sample_ms=2.0))
    assert calls[:2] == [1, 1] and all(n == 20 for n in calls[2:])  # 20 runs x 0.1 ms = one 2 ms sample
    assert stats.median_ms == pytest.approx(0.1) and stats.cv == pytest.approx(0.0, abs=1e-9)
    assert stats.runs == 6  # min_runs, then one more sample shows the median is stable

    noisy = iter(np.random.default_rng(0).uniform(1e-3, 5e-3, 1000))
    stats = time_runs(lambda n: next(noisy) * n, MeasureProtocol(warmup_runs=0, min_runs=5, max_runs=9,
                                                                 min_sample_ms=0.0, stable_rel=0.0))
    assert stats.runs == 9

    slow = time_runs(lambda n: (time.sleep(0.03), 0.03 * n)[1],
                     MeasureProtocol(warmup_runs=1, min_runs=10, max_seconds=0.05, floor_runs=3, min_sample_ms=0.0))
    assert slow.runs == 3  # past max_seconds: the floor, not min_runs, decides


def test_time_runs_drops_samples_the_keep_check_does_not_vouch_for_on_both_sides() -> None:
    # keep() is asked before sample 1 and after each: samples 3 and 4 border the slow check after sample 3
    checks = iter([True, True, True, False, True, True, True, True, True, True])
    times = iter([1e-3, 1e-3, 2e-3, 9e-3, 8e-3, 3e-3, 4e-3, 5e-3, 6e-3, 7e-3])  # a warm-up run first
    protocol = MeasureProtocol(warmup_runs=0, min_runs=7, max_runs=9, min_sample_ms=0.0, stable_rel=0.0)
    stats = time_runs(lambda n: next(times) * n, protocol, keep=lambda: next(checks))
    assert (stats.runs, stats.dropped) == (7, 2)  # the 9 and 8 ms samples are out
    assert stats.median_ms == pytest.approx(4.0) and stats.min_ms == pytest.approx(1.0)

    never = MeasureProtocol(warmup_runs=0, min_runs=3, max_runs=6, min_sample_ms=0.0)
    assert time_runs(lambda n: 1e-3 * n, never, keep=lambda: False) is None  # fewer than floor_runs kept


def test_protocol_id_changes_with_any_setting() -> None:
    assert MeasureProtocol().id == MeasureProtocol().id
    assert MeasureProtocol().id != MeasureProtocol(min_runs=11).id


def test_environment_records_cpu_and_versions() -> None:
    env = environment()
    assert env["cores"] >= 1 and env["cpu"] and env["versions"]["apache-tvm"]


def test_unmeasurable_targets_are_named(net) -> None:
    with pytest.raises(ArgumentError, match="pixel3"):
        open_session(net, targets.load("pixel3-tflite"))
    onnx_only = tiny_network()
    onnx_only.module = None
    with pytest.raises(ArgumentError, match="no PyTorch module"):
        open_session(onnx_only, targets.load("local-zen3-pytorch-t1"))


def test_bad_tracker_address_is_explained() -> None:
    with pytest.raises(ArgumentError, match="HOST:PORT"):
        parse_tracker("localhost")
    assert parse_tracker("127.0.0.1:9190") == ("127.0.0.1", 9190)


def test_rpc_measurement_on_loopback(net, rpc_fleet) -> None:
    from tvm_ledg.measure.rpc import RemoteDevice

    desc = targets.load("local-zen3-tvm-untuned-generic")
    device = RemoteDevice(rpc_fleet, "ledg-test")
    with open_session(net, desc, remote=device) as session:
        remote_out = session.outputs()
        result = measure(net, desc, QUICK, remote=device)
    with open_session(net, desc) as session:
        local_out = session.outputs()
    assert compare_outputs({"local": local_out, "remote": remote_out})[0]
    assert 0 < result.stats.median_ms < 1000
    with pytest.raises(ArgumentError, match="needs runtime 'tvm'"):
        open_session(net, targets.load("local-zen3-onnxruntime-t1"), remote=device)
