"""MetaSchedule integration: program DAGs, LeDGCostModel, PredictedRunner, ranking, TVM global functions.

Every MetaSchedule ``TuneContext`` imports ``tensor_intrin`` (40-50 s, once per process): the
tests that need one share the module-scoped ``context`` fixture and are marked slow.
"""

from __future__ import annotations

import functools
import itertools
import json
import os

import numpy as np
import pytest
import torch
import tvm
from scipy.stats import spearmanr
from tvm import te
from tvm.s_tir import Schedule

import targets
from cost_model.featurize import FEATURE_NAMES, graph_tensors, node_text
from cost_model.predictor import LatencyPredictor, TrainConfig
from targets.errors import CheckpointError, DataError
from tvm_ledg._tvm import get_global_func, ms
from tvm_ledg.cli import main
from tvm_ledg.measure.quiet import QuietPolicy
from tvm_ledg.predict import DEFAULT_CHECKPOINT, predict_latency
from tvm_ledg.tuning import (
    PROGRAM_CHECKPOINT,
    LeDGCostModel,
    OnlineConfig,
    PredictedRunner,
    make_builder,
    make_runner,
    program_graph,
    rank_targets,
    register_globals,
    target_of,
    tune_with_predictions,
)
from tvm_ledg.tuning.records import best_schedule, mean_run_secs, schedule_record

TARGET = "local-zen3-tvm-tuned-znver3-t2"
NB201 = "nb201:|skip_connect~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"
RANK_TARGETS = ["pixel3-tflite", "gtx1080ti-pytorch-fp32-b1", TARGET]


def matmul(n: int = 64, relu: bool = False):
    a = te.placeholder((n, n), name="A")
    b = te.placeholder((n, n), name="B")
    k = te.reduce_axis((0, n), name="k")
    c = te.compute((n, n), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
    if not relu:
        return te.create_prim_func([a, b, c])
    d = te.compute((n, n), lambda i, j: te.max(c[i, j], 0.0), name="D")
    return te.create_prim_func([a, b, d])


def tiled(func, ti: int, tj: int, parallel: bool, vectorize: bool, cache: bool = False) -> Schedule:
    sch = Schedule(func)
    block = sch.get_sblock("C")
    i, j, k = sch.get_loops(block)
    i0, i1 = sch.split(i, [None, ti])
    j0, j1 = sch.split(j, [None, tj])
    sch.reorder(i0, j0, k, i1, j1)
    if parallel:
        sch.parallel(i0)
        sch.annotate(i0, "pragma_auto_unroll_max_step", 64)
    if vectorize:
        sch.vectorize(j1)
    if cache:
        sch.cache_write(block, 0, "local")
    return sch


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Training shares 2 cores with MetaSchedule's workers (and CI neighbours): one thread avoids thrashing."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- program DAG


def test_program_graph_has_loops_blocks_nesting_and_dataflow():
    sch = tiled(matmul(relu=True), 8, 16, parallel=True, vectorize=True, cache=True)
    graph = program_graph(sch.mod["main"], name="mm")
    ops = [n.op for n in graph.nodes]
    assert ops == ["tir.loop.parallel", "tir.loop.serial", "tir.loop.serial", "tir.loop.serial",
                   "tir.loop.vectorized", "tir.block", "tir.loop.serial", "tir.loop.serial", "tir.block",
                   "tir.loop.serial", "tir.loop.serial", "tir.block"]
    outer, compute, cache, relu = graph.nodes[0], graph.nodes[5], graph.nodes[8], graph.nodes[11]
    assert outer.attrs == {"extent": 8, "pragma_auto_unroll_max_step": 64}
    assert graph.nodes[4].attrs["extent"] == 16 and graph.nodes[4].outputs[0].shape == (16,)
    assert compute.attrs["iters"] == "SSR" and compute.attrs["scope"] == "local" and compute.attrs["init"]
    assert [t.shape for t in compute.inputs] == [(64, 64), (64, 64)] and compute.inputs[0].dtype == "float32"
    assert compute.flops == 2 * 64 ** 3 and compute.bytes_read == 2 * 4 * 64 ** 3
    assert cache.attrs["scope"] == "global" and relu.flops == 64 * 64
    # innermost loop j1 (vectorized): A[i, k] is reused, B[k, j] and C_local[i, j] are contiguous
    assert compute.attrs["read_strides"] == [0, 1] and compute.attrs["write_strides"] == [1]
    assert " rs0,1 ws1 " in node_text(compute)
    naive = program_graph(matmul()).nodes[3]  # loops i, j, k: k innermost
    assert naive.op == "tir.block" and naive.attrs["read_strides"] == [1, 64] and naive.attrs["write_strides"] == [0]
    # nesting i0 -> j0 -> k -> i1 -> j1 -> C, dataflow C -> C_local (cache stage) -> D
    assert {(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 8), (8, 11), (10, 11)} <= set(graph.edges)
    assert graph.output_nodes == [11]
    assert [t.shape for t in graph.inputs] == [(64, 64)] * 3


def test_access_strides_follow_the_innermost_loop_that_iterates_also_through_a_fusion():
    sch = Schedule(matmul())
    i, j, k = sch.get_loops(sch.get_sblock("C"))
    k0, k1 = sch.split(k, [None, 1])
    sch.reorder(i, k0, j, k1)  # k1 (extent 1) innermost: j is the loop that moves
    block = program_graph(sch.mod["main"]).nodes[4]
    assert (block.attrs["read_strides"], block.attrs["write_strides"]) == ([0, 1], [1])
    sch = Schedule(matmul())
    i, j, k = sch.get_loops(sch.get_sblock("C"))
    sch.reorder(k, i, j)
    sch.fuse(i, j)  # v_i = ij // 64, v_j = ij % 64: not affine in ij, yet the next element is j + 1
    block = program_graph(sch.mod["main"]).nodes[2]
    assert (block.attrs["read_strides"], block.attrs["write_strides"]) == ([0, 1], [1])
    assert " rs0,1 ws1 " in node_text(block)


def test_program_graph_is_deterministic_and_tells_schedules_apart():
    func = matmul()
    a = program_graph(tiled(func, 8, 16, True, True).mod["main"])
    again = program_graph(tiled(func, 8, 16, True, True).mod["main"])
    other = program_graph(tiled(func, 8, 16, True, False).mod["main"])
    assert a.content_hash() == again.content_hash() != other.content_hash()
    assert program_graph(func).content_hash() != a.content_hash()


def test_featurizer_and_predictor_accept_program_graphs():
    func = matmul()
    schedules = [tiled(func, ti, 16, par, True) for ti in (2, 8) for par in (False, True)]
    graphs = {f"s{i}": program_graph(s.mod["main"]) for i, s in enumerate(schedules)}
    tensors = graph_tensors(graphs["s1"])
    assert tensors.x_num.shape == (graphs["s1"].num_nodes, len(FEATURE_NAMES))
    assert bool(torch.isfinite(tensors.x_num).all())
    block_text = node_text(graphs["s1"].nodes[5])
    assert block_text.startswith("block ") and "iters=SSR" in block_text and "scope=global" in block_text
    assert node_text(graphs["s1"].nodes[0]).startswith("parallel extent=32 pragma_auto_unroll_max_step=64")
    desc = targets.load(TARGET)
    rows = [(k, TARGET, 1.0 + i) for i, k in enumerate(graphs)]
    model = LatencyPredictor(encoder={"kind": "builtin", "dim": 16, "vocab_size": 256},
                             model={"dim": 16, "layers": 1, "heads": 2, "dropout": 0.0},
                             train=TrainConfig(epochs=2, batch_size=4))
    pred = model.fit(graphs, {TARGET: desc}, rows).predict(graphs, {TARGET: desc}, [(k, TARGET) for k in graphs])
    assert pred.shape == (4,) and np.isfinite(pred).all() and (pred > 0).all()


def test_fine_tuning_steps_from_the_current_weights_and_keeps_the_training_history():
    func = matmul()
    schedules = [tiled(func, ti, tj, par, True) for ti in (2, 8, 32) for tj in (4, 16) for par in (False, True)]
    graphs = {f"s{i}": program_graph(s.mod["main"]) for i, s in enumerate(schedules)}
    desc = targets.load(TARGET)
    truth = {k: 0.5 + 0.25 * i for i, k in enumerate(graphs)}

    def start() -> LeDGCostModel:
        model = LatencyPredictor(encoder={"kind": "builtin", "dim": 16, "vocab_size": 256},
                                 model={"dim": 16, "layers": 1, "heads": 2, "dropout": 0.0},
                                 train=TrainConfig(epochs=1, batch_size=4), granularity="program")
        model.fit(graphs, {TARGET: desc}, [(k, TARGET, 1.0) for k in graphs])
        cost = LeDGCostModel(desc, checkpoint=model, online=OnlineConfig(retrain_first=0, steps=40, batch_size=8))
        cost.graphs_ = graphs
        cost.records_ = [("w0" if i < 6 else "w1", k, ms) for i, (k, ms) in enumerate(truth.items())]
        return cost

    def error(cost: LeDGCostModel) -> float:
        pred = cost.predictor_.predict(graphs, {TARGET: desc}, [(k, TARGET) for k in graphs])
        return float(np.sqrt(np.mean((np.log(pred) - np.log(list(truth.values()))) ** 2)))

    tuned, again = start(), start()
    before, history = error(tuned), list(tuned.predictor_.history_)
    for cost in (tuned, again):
        cost._train()
    assert error(tuned) < 0.5 * before, (before, error(tuned))
    assert tuned.predictor_.history_ == history  # online steps are not epochs of the recorded training
    weights = again.predictor_.model_.state_dict()
    assert all(torch.equal(v, weights[k]) for k, v in tuned.predictor_.model_.state_dict().items())


def test_online_schedule_trains_often_first_then_every_k():
    cfg = OnlineConfig(retrain_first=3, retrain_every=4)
    assert [u for u in range(1, 16) if cfg.due(u)] == [1, 2, 3, 7, 11, 15]


# ------------------------------------------------------------------ LeDGCostModel (TuneContext)


@pytest.fixture(scope="module")
def context():
    """One TuneContext for the whole module (its construction imports tensor_intrin)."""
    return ms.TuneContext(mod=matmul(), target=target_of(targets.load(TARGET)), task_name="main")


@pytest.fixture(scope="module")
def toy():
    """24 schedules of one 64^3 matmul with given run times: parallel 2x and vectorized 4x faster, ti=8 best."""
    func = matmul()
    args = ms.arg_info.ArgInfo.from_prim_func(func)
    candidates, seconds = [], []
    for ti, tj, par, vec in itertools.product((2, 8, 32), (4, 16), (False, True), (False, True)):
        candidates.append(ms.search_strategy.MeasureCandidate(tiled(func, ti, tj, par, vec), args))
        speedup = (2 if par else 1) * (4 if vec else 1) / (1.1 if tj == 4 else 1)
        seconds.append(1e-3 * (1 + abs(np.log2(ti) - 3)) / speedup)
    return candidates, np.array(seconds)


@pytest.fixture(scope="module")
def trained(context, toy):
    """A cold LeDGCostModel, its scores before any update, then updated once with the toy measurements."""
    candidates, seconds = toy
    model = LeDGCostModel(TARGET, online=OnlineConfig(retrain_first=1, steps=60))
    before = model.predict(context, candidates)
    model.update(context, candidates, [ms.runner.RunnerResult([s], None) for s in seconds])
    return model, before


@pytest.mark.slow
def test_predict_gives_one_finite_score_per_candidate(context, toy, trained):
    candidates, _ = toy
    pretrained = LeDGCostModel(TARGET, checkpoint=PROGRAM_CHECKPOINT)
    for scores in (trained[1], pretrained.predict(context, candidates), trained[0].predict(context, candidates)):
        assert scores.dtype == np.float64 and scores.shape == (len(candidates),)
        assert np.isfinite(scores).all()
    again = LeDGCostModel(TARGET).predict(context, candidates)
    np.testing.assert_array_equal(again, trained[1])  # the cold-start order is fixed, not random


@pytest.mark.slow
def test_update_improves_ranking_on_a_toy_task(context, toy, trained):
    candidates, seconds = toy
    model, before = trained
    after = model.predict(context, candidates)
    rho_before = spearmanr(before, -seconds).statistic
    rho_after = spearmanr(after, -seconds).statistic
    assert rho_after > max(rho_before, 0.0) + 0.3 and rho_after > 0.8
    assert len(model.records_) == len(candidates) and model.updates_ == 1


@pytest.mark.slow
def test_update_skips_failed_runs(context, toy):
    candidates, _ = toy
    model = LeDGCostModel(TARGET)
    failed = [ms.runner.RunnerResult(None, "timeout"), ms.runner.RunnerResult([], None)]
    model.update(context, candidates[:2], failed)
    assert model.records_ == [] and model.predictor_ is None and model.updates_ == 1


@pytest.mark.slow
def test_update_skips_metaschedules_failure_sentinel(context, toy):
    """A run committed with MetaSchedule's failure time (1e9 s and above) is not a measurement."""
    candidates, _ = toy
    model = LeDGCostModel(TARGET)
    model.update(context, candidates[:2], [ms.runner.RunnerResult([1e9], None), ms.runner.RunnerResult([1e10], None)])
    assert model.records_ == [] and model.predictor_ is None and model.updates_ == 1


@pytest.mark.slow
def test_save_load_round_trip(context, toy, trained, tmp_path):
    candidates, _ = toy
    model = trained[0]
    model.save(str(tmp_path / "ledg"))
    assert (tmp_path / "ledg" / "tuning_records.json").is_file()
    assert (tmp_path / "ledg" / "predictor" / "model.safetensors").is_file()
    loaded = LeDGCostModel(TARGET)
    loaded.load(str(tmp_path / "ledg"))
    np.testing.assert_array_equal(loaded.predict(context, candidates), model.predict(context, candidates))
    assert loaded.records_ == model.records_ and loaded.updates_ == model.updates_
    other = LeDGCostModel("local-zen3-tvm-untuned-znver3")
    with pytest.raises(RuntimeError, match="records of target 'local-zen3-tvm-tuned-znver3-t2'"):
        other.load(str(tmp_path / "ledg"))  # MetaSchedule's FFI turns the CheckpointError into a RuntimeError


@pytest.mark.slow
def test_tune_tir_with_ledg_cost_model_and_the_cpu_pair_writes_a_database(context, tmp_path):
    desc = targets.load(TARGET)
    runner = make_runner(desc.threads, quiet=QuietPolicy(max_slowdown=None))  # a slow CI host must not stall it
    assert runner.runner.pool.submit(functools.partial(os.getenv, "TVM_NUM_THREADS")).result() == "2"
    model = LeDGCostModel(desc, online=OnlineConfig(steps=20))
    ms.tune_tir(matmul(), target_of(desc), str(tmp_path), 8, num_trials_per_iter=8, builder=make_builder(),
                runner=runner, cost_model=model, seed=0,
                strategy=ms.search_strategy.EvolutionarySearch(population_size=64))
    lines = (tmp_path / "database_tuning_record.json").read_text().splitlines()
    run_secs = [json.loads(line)[1][1] for line in lines]
    assert len(lines) == 8 and all(secs and 0 < secs[0] < 1.0 for secs in run_secs)  # built, run, measured
    assert len(model.records_) == 8 and model.predictor_ is not None  # update() saw the measurements and trained
    best = best_schedule(tmp_path)  # the fastest record, kept as JSON lines and read back as a tuning record
    assert json.loads(json.dumps(best)) == best
    assert mean_run_secs(schedule_record(best).run_secs) == min(mean_run_secs(secs) for secs in run_secs)


def test_predict_reuses_the_program_graph_of_a_structurally_equal_schedule(context, toy, monkeypatch):
    candidates, _ = toy
    model = LeDGCostModel(TARGET)
    first = model.predict(context, candidates[:4])
    assert len(set(first)) == 4  # four different programs, four different cache entries
    built: list[object] = []

    def spy(func):
        built.append(func)
        return program_graph(func)

    monkeypatch.setattr("tvm_ledg.tuning.cost_model.program_graph", spy)
    func, args = matmul(), candidates[0].args_info  # a fresh PrimFunc, structurally equal to the toy's
    again = [ms.search_strategy.MeasureCandidate(tiled(func, 2, 4, par, vec), args)
             for par, vec in itertools.product((False, True), (False, True))]  # = candidates[:4]
    np.testing.assert_array_equal(model.predict(context, again), first)
    assert built == []  # all four came from the cache
    model.predict(context, [ms.search_strategy.MeasureCandidate(tiled(func, 4, 4, False, False), args)])
    assert len(built) == 1  # a new program is built


@pytest.mark.slow
def test_tune_relax_with_ledg_cost_model_tunes_every_task_and_compiles(tmp_path):
    from tvm import relax
    from tvm.script import relax as R

    @R.function
    def main(x: R.Tensor((32, 64), "float32"), w: R.Tensor((64, 48), "float32")) -> R.Tensor((32, 48), "float32"):
        with R.dataflow():
            y = R.nn.relu(R.matmul(x, w))
            z = R.nn.softmax(y, axis=-1)
            R.output(z)
        return z

    mod = relax.transform.LegalizeOps()(tvm.IRModule({"main": main}))
    desc = targets.load(TARGET)
    target = target_of(desc)
    model = LeDGCostModel(desc, online=OnlineConfig(steps=10))
    database = ms.relax_integration.tune_relax(
        mod, {}, target, str(tmp_path), max_trials_global=12, num_trials_per_iter=4, builder=make_builder(),
        runner=make_runner(desc.threads, quiet=None), cost_model=model, seed=0,
        strategy=ms.search_strategy.EvolutionarySearch(population_size=16))
    tasks = ms.relax_integration.extract_tasks(mod, target)
    assert len({w for w, _, _ in model.records_}) == len(tasks) >= 2  # one shared model saw every task
    assert model.predictor_ is not None
    exe = ms.relax_integration.compile_relax(database, mod, target, params={})
    vm = relax.VirtualMachine(exe, tvm.cpu())
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((32, 64), dtype=np.float32), rng.standard_normal((64, 48), dtype=np.float32)
    got = vm["main"](tvm.runtime.tensor(x), tvm.runtime.tensor(w)).numpy()
    ref = torch.softmax(torch.relu(torch.from_numpy(x @ w)), dim=-1).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_predicted_runner_tunes_without_running_any_candidate(context, trained, tmp_path):
    model = trained[0]
    predicted: list[float] = []
    latency_ms = model._inst.latency_ms

    def spy(funcs):
        out = latency_ms(funcs)
        predicted.extend(out / 1e3)
        return out

    model._inst.latency_ms = spy
    try:
        tune_with_predictions(matmul(), TARGET, tmp_path, 16, model=model, num_trials_per_iter=8, seed=0,
                              strategy=ms.search_strategy.EvolutionarySearch(population_size=64))
    finally:
        del model._inst.latency_ms
    records = [json.loads(line) for line in (tmp_path / "database_tuning_record.json").read_text().splitlines()]
    assert len(records) == 16 == len(predicted)
    assert sorted(r[1][1][0] for r in records) == pytest.approx(sorted(predicted))
    assert model.updates_ == 1  # not trained on its own predictions


def test_predicted_runner_needs_a_trained_model():
    with pytest.raises(CheckpointError, match="no predictor"):
        PredictedRunner(LeDGCostModel(TARGET))


# ----------------------------------------------------------------------- ranking and globals


@pytest.fixture(scope="module")
def graph_store(tmp_path_factory):
    """``$TVM_LEDG_CACHE_DIR/graphs`` for a cache dir of this module: NB201 is lowered once."""
    return tmp_path_factory.mktemp("cache") / "graphs"


def test_rank_targets_orders_by_predicted_latency(graph_store):
    ranked = rank_targets(NB201, RANK_TARGETS, graph_store=graph_store, top_ops=2)
    assert [r.latency_ms for r in ranked] == sorted(r.latency_ms for r in ranked)
    assert sorted(r.target for r in ranked) == sorted(RANK_TARGETS)
    assert all(r.std_log is not None and 0 < len(r.operators) <= 2 for r in ranked)
    with pytest.raises(DataError, match="one model"):
        rank_targets([NB201, NB201], RANK_TARGETS, graph_store=graph_store)


def test_rank_cli_prints_targets_in_predicted_order(graph_store, capsys):
    assert main(["rank", NB201, "-t", *RANK_TARGETS, "--graph-store", str(graph_store), "--top", "1"]) == 0
    text = capsys.readouterr().out
    expected = [r.target for r in rank_targets(NB201, RANK_TARGETS, graph_store=graph_store)]
    assert sorted(RANK_TARGETS, key=text.index) == expected
    assert main(["rank", NB201, "-t", *RANK_TARGETS, "--graph-store", str(graph_store), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["target"] for r in rows] == expected and [r["rank"] for r in rows] == [1, 2, 3]


def test_global_functions_are_callable_through_tvm(graph_store, monkeypatch):
    monkeypatch.setenv("TVM_LEDG_CACHE_DIR", str(graph_store.parent))
    register_globals()
    latency = get_global_func("tvm_ledg.predict_latency")(NB201, TARGET, "")
    assert latency == pytest.approx(predict_latency(NB201, TARGET)[0].latency_ms)
    ranked = json.loads(get_global_func("tvm_ledg.rank_targets")(NB201, RANK_TARGETS, str(DEFAULT_CHECKPOINT), 2))
    assert [r["target"] for r in ranked] == [r.target for r in rank_targets(NB201, RANK_TARGETS)]
    assert all(len(r["operators"]) <= 2 and r["latency_ms"] > 0 for r in ranked)


def test_a_network_level_checkpoint_is_refused_for_tuning():
    if not DEFAULT_CHECKPOINT.is_dir():
        pytest.skip("no shipped checkpoint in this checkout")
    with pytest.raises(CheckpointError, match=r"kind 'ledgformer-latency/network' .*expected "
                                              r"'ledgformer-latency/program'"):
        LeDGCostModel(TARGET, checkpoint=DEFAULT_CHECKPOINT)
    with pytest.raises(CheckpointError, match="network-level, expected a program-level one"):
        LeDGCostModel(TARGET, checkpoint=LatencyPredictor())
