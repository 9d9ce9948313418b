"""LatencyPredictor end to end on a toy task: it learns, round-trips, and refuses bad checkpoints."""

import numpy as np
import torch
import pytest

import targets
from cost_model.graph import OpGraph, OpNode, TensorSpec
from cost_model.predictor import LatencyPredictor, TrainConfig
from targets.errors import CheckpointError

TARGETS = {name: targets.load(name) for name in ("gtx1080ti-pytorch-fp32-b1", "pixel3-tflite")}
SCALE = {"gtx1080ti-pytorch-fp32-b1": 0.05, "pixel3-tflite": 2.0}


def _chain(widths: list[int]) -> OpGraph:
    nodes = []
    for i, c in enumerate(widths):
        t_in, t_out = TensorSpec((1, c, 16, 16), "float32"), TensorSpec((1, c, 16, 16), "float32")
        macs = c * c * 9 * 256
        nodes.append(OpNode(i, "nn.conv2d", attrs={"strides": [1, 1]}, inputs=[t_in, TensorSpec((c, c, 3, 3), "float32")],
                            outputs=[t_out], flops=2 * macs, macs=macs, params=c * c * 9))
    return OpGraph(nodes=nodes, edges=[(i, i + 1) for i in range(len(widths) - 1)], output_nodes=[len(widths) - 1])


def _data(seed: int):
    rng = np.random.default_rng(seed)
    graphs, rows = {}, []
    for g in range(40):
        widths = [int(w) for w in rng.choice([8, 16, 32, 64], size=int(rng.integers(2, 6)))]
        key = f"g{seed}-{g}"
        graphs[key] = _chain(widths)
        for t, s in SCALE.items():
            rows.append((key, t, s * graphs[key].total_flops / 1e6))
    return graphs, rows


def test_fit_learns_and_round_trips(tmp_path):
    graphs, rows = _data(0)
    val_graphs, val_rows = _data(1)
    graphs.update(val_graphs)
    cfg = TrainConfig(epochs=25, batch_size=16, lr=3e-3, seed=0)
    model = LatencyPredictor(encoder={"kind": "builtin", "dim": 16, "vocab_size": 256},
                             model={"dim": 32, "layers": 2, "heads": 4, "dropout": 0.0}, train=cfg)
    model.fit(graphs, TARGETS, rows, val_rows)
    pairs = [(r[0], r[1]) for r in val_rows]
    truth = np.array([r[2] for r in val_rows])
    pred = model.predict(graphs, TARGETS, pairs)
    log_rmse = float(np.sqrt(np.mean((np.log(pred) - np.log(truth)) ** 2)))
    first = model.history_[0]["val_log_rmse"]
    print("val log-RMSE first epoch", first, "final", log_rmse)
    assert log_rmse < 0.5 * first, (first, log_rmse)
    assert log_rmse < 0.5  # within a factor ~1.6 on unseen graphs; targets differ by 40x
    model.save_pretrained(tmp_path / "ckpt")
    again = LatencyPredictor.from_pretrained(tmp_path / "ckpt")
    np.testing.assert_allclose(again.predict(graphs, TARGETS, pairs), pred, rtol=1e-5)


def test_unfitted_and_corrupted(tmp_path):
    with pytest.raises(CheckpointError, match="not fitted"):
        LatencyPredictor().predict({}, TARGETS, [])
    (tmp_path / "ckpt").mkdir()
    with pytest.raises(CheckpointError, match="missing"):
        LatencyPredictor.from_pretrained(tmp_path / "ckpt")


def _small(epochs: int = 4, **train) -> LatencyPredictor:
    return LatencyPredictor(encoder={"kind": "builtin", "dim": 16, "vocab_size": 256},
                            model={"dim": 16, "layers": 1, "heads": 2, "dropout": 0.1},
                            train=TrainConfig(epochs=epochs, batch_size=16, lr=3e-3, seed=3, **train))


def test_interrupted_training_resumes_to_the_same_weights(tmp_path):
    graphs, rows = _data(0)
    val_graphs, val_rows = _data(1)
    graphs.update(val_graphs)
    pairs = [(r[0], r[1]) for r in val_rows]
    straight = _small().fit(graphs, TARGETS, rows, val_rows).predict(graphs, TARGETS, pairs)

    resume = tmp_path / "resume"
    partial = _small()
    calls = []
    original = partial.predict

    def crash_after_two(*args, **kwargs):  # validation runs once per epoch
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    partial.predict = crash_after_two
    with pytest.raises(KeyboardInterrupt):
        partial.fit(graphs, TARGETS, rows, val_rows, resume_dir=resume)
    resumed = _small()
    validations = []
    original_resumed = resumed.predict

    def counting(*args, **kwargs):
        validations.append(1)
        return original_resumed(*args, **kwargs)

    resumed.predict = counting
    resumed.fit(graphs, TARGETS, rows, val_rows, resume_dir=resume)
    assert len(validations) == 2  # epochs 0 and 1 were not trained again
    assert [h["epoch"] for h in resumed.history_] == [0, 1, 2, 3]
    np.testing.assert_array_equal(resumed.predict(graphs, TARGETS, pairs), straight)


def test_a_second_fit_starts_clean():
    from cost_model.adapt import adapt

    graphs, rows = _data(0)
    fresh = _small(epochs=2).fit(graphs, TARGETS, rows)
    again = _small(epochs=2).fit(graphs, TARGETS, rows[:20])
    new = targets.load("galaxy-a50-tflite")
    keys = sorted(graphs)[:3]
    adapt(again, new, [(k, 2.0 * graphs[k].total_flops / 1e6) for k in keys], graphs, offset=False)
    assert again.adaptations_
    again.fit(graphs, TARGETS, rows)
    assert again.adaptations_ == {} and [h["epoch"] for h in again.history_] == [0, 1]
    assert again.history_ == fresh.history_ and again.data_summary_ == fresh.data_summary_
    for key, value in fresh.model_.state_dict().items():
        assert torch.equal(value, again.model_.state_dict()[key]), key


def test_constructor_parameters_keep_their_names():
    cfg = TrainConfig(epochs=3)
    cache = {}
    model = LatencyPredictor(encoder={"kind": "builtin", "dim": 16}, model={"dim": 16}, train=cfg,
                             feature_cache=cache, granularity="program")
    assert model.get_params() == {"encoder": {"kind": "builtin", "dim": 16}, "model": {"dim": 16}, "train": cfg,
                                  "feature_cache": cache, "granularity": "program", "device": "auto"}
    assert LatencyPredictor(**model.get_params()).get_params() == model.get_params()


def test_a_loaded_checkpoint_reports_the_parameters_that_rebuild_it(tmp_path):
    graphs, rows = _data(0)
    _small(epochs=1).fit(graphs, TARGETS, rows).save_pretrained(tmp_path / "c")
    loaded = LatencyPredictor.from_pretrained(tmp_path / "c")
    rebuilt = LatencyPredictor(**loaded.get_params()).fit(graphs, TARGETS, rows)
    assert rebuilt.model_.config == loaded.model_.config and loaded.model["dim"] == 16


def test_resume_state_of_another_run_is_refused(tmp_path):
    graphs, rows = _data(0)
    _small(epochs=1).fit(graphs, TARGETS, rows, resume_dir=tmp_path / "r")
    with pytest.raises(CheckpointError, match="another run"):
        _small(epochs=1).fit(graphs, TARGETS, rows[:-1], resume_dir=tmp_path / "r")


def test_breakdown_sums_to_the_total_and_rows_are_validated():
    from targets.errors import DataError

    graphs, rows = _data(0)
    model = _small(epochs=1).fit(graphs, TARGETS, rows)
    pairs = [(r[0], r[1]) for r in rows[:10]]
    detailed = model.predict_detailed(graphs, TARGETS, pairs, breakdown=True)
    assert len(detailed.per_op_ms) == 10
    for key_target, ops, total in zip(pairs, detailed.per_op_ms, detailed.latency_ms):
        assert len(ops) == graphs[key_target[0]].num_nodes and (ops > 0).all()
        assert ops.sum() == pytest.approx(total, rel=1e-6)
    with pytest.raises(DataError, match="no graph for 'nope'"):
        _small().fit(graphs, TARGETS, [("nope", "pixel3-tflite", 1.0)])
    with pytest.raises(DataError, match="finite and > 0"):
        _small().fit(graphs, TARGETS, [(rows[0][0], "pixel3-tflite", -1.0)])
    with pytest.raises(DataError, match="no target descriptor named 'tpu'"):
        model.predict(graphs, TARGETS, [(rows[0][0], "tpu")])


@pytest.mark.parametrize("k", [1, 3, 10, 20])
def test_adaptation_is_never_worse_than_zero_shot_on_its_samples(tmp_path, k):
    from cost_model.adapt import adapt

    graphs, rows = _data(0)
    model = _small(epochs=3).fit(graphs, TARGETS, [r for r in rows if r[1] == "gtx1080ti-pytorch-fp32-b1"])
    new = targets.load("galaxy-a50-tflite")  # never trained on; truth follows a different law
    test_graphs, _ = _data(2)
    graphs.update(test_graphs)
    keys = sorted(test_graphs)
    truth = {key: 3.0 * graphs[key].total_flops / 1e6 + 0.5 * graphs[key].num_nodes for key in keys}
    samples = [(key, truth[key]) for key in keys[:k]]
    tgt = {**TARGETS, new.name: new}
    zero = model.predict(graphs, tgt, [(key, new.name) for key, _ in samples])
    adaptation = adapt(model, new, samples, graphs, steps=20, folds=3)
    after = model.predict(graphs, tgt, [(key, new.name) for key, _ in samples])
    y = np.log([ms for _, ms in samples])
    err = lambda p: float(np.sqrt(np.mean((np.log(p) - y) ** 2)))  # noqa: E731
    assert err(after) <= err(zero) + 1e-9, (adaptation.method, err(zero), err(after))
    if k >= 10:  # zero-shot is far off in scale here, so adapting must actually help
        assert adaptation.method != "zero-shot" and err(after) < 0.5 * err(zero)
        held = [(key, new.name) for key in keys[k:]]
        held_truth = np.log([truth[key] for key in keys[k:]])
        held_before = np.log(_small(epochs=3).fit(graphs, TARGETS, [r for r in rows if r[1] == "gtx1080ti-pytorch-fp32-b1"]).predict(graphs, tgt, held))
        assert np.sqrt(np.mean((np.log(model.predict(graphs, tgt, held)) - held_truth) ** 2)) < np.sqrt(np.mean((held_before - held_truth) ** 2))
    model.save_pretrained(tmp_path / "adapted")
    again = LatencyPredictor.from_pretrained(tmp_path / "adapted")
    np.testing.assert_allclose(again.predict(graphs, tgt, [(key, new.name) for key, _ in samples]), after, rtol=1e-5)
    assert model.predict(graphs, tgt, [(keys[0], "pixel3-tflite")]) == pytest.approx(
        again.predict(graphs, tgt, [(keys[0], "pixel3-tflite")]))


def test_adaptation_can_predict_a_new_target_as_the_training_target_that_ranks_like_it(tmp_path):
    """Two training targets rank networks differently (FLOPs vs node count); a new target that ranks by
    node count is best predicted as the second one, calibrated: adapt picks it, ranks held-out networks
    better than without it, and the choice survives save/load."""
    from scipy.stats import spearmanr

    from cost_model.adapt import adapt

    graphs, _ = _data(0)
    by_flops, by_nodes = "gtx1080ti-pytorch-fp32-b1", "pixel3-tflite"
    law = {by_flops: lambda g: 0.05 * g.total_flops / 1e6, by_nodes: lambda g: 2.0 * g.num_nodes}
    rows = [(key, t, law[t](graphs[key])) for key in graphs for t in law]
    model = _small(epochs=12).fit(graphs, TARGETS, rows)
    new = targets.load("galaxy-a50-tflite")
    test_graphs, _ = _data(2)
    graphs.update(test_graphs)
    keys = sorted(test_graphs)
    truth = {key: 3.0 * law[by_nodes](graphs[key]) for key in keys}
    samples, held = [(key, truth[key]) for key in keys[:20]], keys[20:]
    tgt = {**TARGETS, new.name: new}
    rho = lambda: spearmanr(model.predict(graphs, tgt, [(k, new.name) for k in held]),  # noqa: E731
                            [truth[k] for k in held]).statistic
    without = adapt(model, new, samples, graphs, steps=20, folds=3, reference=False)
    rho_without = rho()
    adaptation = adapt(model, new, samples, graphs, steps=20, folds=3)
    assert adaptation.method == "reference" and adaptation.reference.name == by_nodes, adaptation
    assert "predicted as training target pixel3-tflite" in adaptation.describe()
    assert model._stand_ins([new])[0].content_hash() in model.known_targets_  # its learned row applies
    assert rho() > rho_without, (rho(), rho_without, without.method)
    before = model.predict(graphs, tgt, [(k, new.name) for k in held])
    model.save_pretrained(tmp_path / "adapted")
    again = LatencyPredictor.from_pretrained(tmp_path / "adapted")
    np.testing.assert_allclose(again.predict(graphs, tgt, [(k, new.name) for k in held]), before, rtol=1e-5)


def test_granularity_is_saved_and_checked_on_load(tmp_path):
    import json

    graphs, rows = _data(0)
    program = LatencyPredictor(encoder={"kind": "builtin", "dim": 8, "vocab_size": 64}, model={"dim": 8, "layers": 1,
                               "heads": 2}, train=TrainConfig(epochs=1, batch_size=16), granularity="program")
    program.fit(graphs, TARGETS, rows[:16]).save_pretrained(tmp_path / "prog")
    assert LatencyPredictor.from_pretrained(tmp_path / "prog").granularity == "program"
    with pytest.raises(CheckpointError, match=r"prog: a checkpoint of kind 'ledgformer-latency/program' .*expected "
                                              r"'ledgformer-latency/network'"):
        LatencyPredictor.from_pretrained(tmp_path / "prog", granularity="network")
    # written before the field existed: a run config with tuning records made a program-level model
    config = json.loads((tmp_path / "prog" / "config.json").read_text())
    del config["granularity"]
    config["data"] = {"config": {"data": {"sources": [], "tuning_records": ["records.jsonl.gz"]}}}
    (tmp_path / "prog" / "config.json").write_text(json.dumps(config))
    assert LatencyPredictor.from_pretrained(tmp_path / "prog", granularity="program").granularity == "program"
    with pytest.raises(CheckpointError, match="kind 'ledgformer-latency/program'"):
        LatencyPredictor.from_pretrained(tmp_path / "prog", granularity="network")


@pytest.mark.parametrize("field, value, fragment", [
    ("schemas", [], "field 'schemas' is an array"),
    ("encoder", "builtin", "field 'encoder' is a string"),
    ("encoder", {"id": "x"}, "field 'encoder.config' is missing"),
    ("encoder", {"config": 3, "id": "x"}, "field 'encoder.config' is an integer 3, expected an object or a string"),
    ("model", {"dim": "wide"}, "field 'encoder' or 'model' does not describe a model"),
    ("adaptations", [], "field 'adaptations' is an array"),
    ("adaptations", {"h": {"descriptor": {}, "scale_a": "0", "scale_b": 1}}, "field 'adaptations.h.scale_a' is a string"),
    ("adaptations", {"h": 1}, "field 'adaptations.h' is not an object"),
    ("history", {}, "field 'history' is an object"),
    ("train", {"epochs": 1, "nope": 2}, "field 'train'"),
    ("granularity", "layer", "field 'granularity' is 'layer'"),
    ("format_version", "1", "field 'format_version' is a string"),
])
def test_config_fields_of_the_wrong_type_are_named(tmp_path, field, value, fragment):
    import json

    graphs, rows = _data(0)
    model = LatencyPredictor(encoder={"kind": "builtin", "dim": 8, "vocab_size": 64},
                             model={"dim": 8, "layers": 1, "heads": 2}, train=TrainConfig(epochs=1, batch_size=16))
    model.fit(graphs, TARGETS, rows[:8]).save_pretrained(tmp_path / "c")
    path = tmp_path / "c" / "config.json"
    config = json.loads(path.read_text())
    config[field] = value
    path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as info:
        LatencyPredictor.from_pretrained(tmp_path / "c")
    assert str(path) in str(info.value) and fragment in str(info.value), str(info.value)


def test_offsets_fitted_together_equal_separate_fits_and_report_progress():
    from cost_model.adapt import _fit_offsets, adapt

    graphs, rows = _data(0)
    model = _small(epochs=1).fit(graphs, TARGETS, rows[:16])
    new = targets.load("galaxy-a50-tflite")
    keys = sorted(graphs)[:6]
    y = np.array([graphs[k].total_flops / 1e6 for k in keys])
    subsets = [np.array([0, 1, 2]), np.array([2, 3, 4, 5])]
    calls = []
    together = _fit_offsets(model, new, keys, y, subsets, graphs, 8, 0.05, 1e-2, 0, lambda d, t: calls.append((d, t)))
    apart = [_fit_offsets(model, new, keys, y, [s], graphs, 8, 0.05, 1e-2, 0, None)[0] for s in subsets]
    np.testing.assert_allclose(together.numpy(), torch.stack(apart).numpy(), rtol=1e-4, atol=1e-6)
    assert calls == [(i, 8) for i in range(1, 9)]
    weights = {k: v.clone() for k, v in model.model_.state_dict().items()}
    model.model_.zero_grad(set_to_none=True)
    adaptation = adapt(model, new, list(zip(keys, y)), graphs, steps=5, progress=lambda d, t: None)
    assert all(torch.equal(v, model.model_.state_dict()[k]) for k, v in weights.items())
    assert all(p.grad is None for p in model.model_.parameters())
    assert adaptation.samples == 6 and "6 measurements" in adaptation.describe()
