"""Where the model trains and predicts: "auto" needs no GPU, "cuda" without one fails in one line,
the CPU path is the default path, and a run may resume on another device."""

import numpy as np
import pytest
import torch

from cost_model.device import resolve_device
from cost_model.predictor import LatencyPredictor, TrainConfig
from cost_model.training import load_run_config
from targets.errors import ArgumentError
from tests.cost_model.test_predictor import TARGETS, _data
from tvm_ledg.cli import EXIT_USER_ERROR, main

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _predictor(**device) -> LatencyPredictor:
    return LatencyPredictor(encoder={"kind": "builtin", "dim": 16, "vocab_size": 256},
                            model={"dim": 16, "layers": 1, "heads": 2, "dropout": 0.1},
                            train=TrainConfig(epochs=2, batch_size=16, lr=3e-3, seed=3), **device)


@no_cuda
def test_auto_is_the_cpu_without_cuda():
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("CPU") == torch.device("cpu")


@no_cuda
@pytest.mark.parametrize("spec", ["cuda", "cuda:0"])
def test_asking_for_cuda_without_it_names_the_option(spec):
    with pytest.raises(ArgumentError, match=r"^--device '" + spec + "': CUDA is not available here"):
        resolve_device(spec, "--device")
    with pytest.raises(ArgumentError, match=r"^device '" + spec + "': CUDA is not available"):
        _predictor(device=spec).fit(*_fit_args())


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "", 0])
def test_unknown_devices_are_refused(spec):
    with pytest.raises(ArgumentError, match=r"^device: expected auto, cpu, cuda or cuda:N"):
        resolve_device(spec)


def _fit_args():
    graphs, rows = _data(0)
    val_graphs, val_rows = _data(1)
    return {**graphs, **val_graphs}, TARGETS, rows, val_rows


@no_cuda
def test_cpu_training_is_the_default_path_bit_for_bit(tmp_path):
    graphs, targets, rows, val_rows = _fit_args()
    pairs = [(r[0], r[1]) for r in val_rows]
    default = _predictor().fit(graphs, targets, rows, val_rows)
    on_cpu = _predictor(device="cpu").fit(graphs, targets, rows, val_rows)
    assert on_cpu.history_ == default.history_
    np.testing.assert_array_equal(on_cpu.predict(graphs, targets, pairs), default.predict(graphs, targets, pairs))
    on_cpu.save_pretrained(tmp_path / "c")
    loaded = LatencyPredictor.from_pretrained(tmp_path / "c")
    assert loaded.device == "cpu" and loaded.device_ == torch.device("cpu")
    np.testing.assert_array_equal(loaded.predict(graphs, targets, pairs), default.predict(graphs, targets, pairs))


def test_a_run_may_resume_on_another_device(tmp_path):
    graphs, targets, rows, val_rows = _fit_args()
    assert _predictor(device="cpu")._fingerprint(rows, val_rows) == \
        _predictor(device="cuda:1")._fingerprint(rows, val_rows)
    first = _predictor(device="cpu").fit(graphs, targets, rows, val_rows, resume_dir=tmp_path / "r")
    # the state says both epochs are done: a resumed fit loads it instead of refusing it
    resumed = _predictor(device="auto").fit(graphs, targets, rows, val_rows, resume_dir=tmp_path / "r")
    assert resumed.history_ == first.history_


@no_cuda
def test_loading_onto_cuda_without_it_fails(tmp_path):
    graphs, targets, rows, _ = _fit_args()
    _predictor(device="cpu").fit(graphs, targets, rows[:8]).save_pretrained(tmp_path / "c")
    with pytest.raises(ArgumentError, match="CUDA is not available"):
        LatencyPredictor.from_pretrained(tmp_path / "c", device="cuda")


def test_yaml_train_device_is_read_and_checked():
    config = load_run_config({"data": {"graph_store": "g"}, "train": {"device": "cpu", "epochs": 1}})
    assert config.device == "cpu" and config.train.epochs == 1
    assert load_run_config({"data": {"graph_store": "g"}}).device == "auto"
    with pytest.raises(ArgumentError, match="train.device must be a string"):
        load_run_config({"data": {"graph_store": "g"}, "train": {"device": 0}})


@no_cuda
def test_train_command_refuses_cuda_without_it(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("data: {graph_store: g}\ntrain: {device: cuda}\n")
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "o"), "--device", "cuda:0"]) \
        == EXIT_USER_ERROR
    assert capsys.readouterr().err.strip() == \
        "error: --device 'cuda:0': CUDA is not available here (choose cpu or auto)"
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "o")]) == EXIT_USER_ERROR
    assert f"{config}: train.device 'cuda'" in capsys.readouterr().err


@needs_cuda
def test_cuda_training_matches_the_cpu_closely(tmp_path):
    graphs, targets, rows, val_rows = _fit_args()
    pairs = [(r[0], r[1]) for r in val_rows]
    on_cpu = _predictor(device="cpu").fit(graphs, targets, rows, val_rows)
    on_gpu = _predictor(device="cuda").fit(graphs, targets, rows, val_rows)
    assert on_gpu.device_.type == "cuda"
    np.testing.assert_allclose(on_gpu.predict(graphs, targets, pairs), on_cpu.predict(graphs, targets, pairs),
                               rtol=0.05)
    on_gpu.save_pretrained(tmp_path / "c")
    loaded = LatencyPredictor.from_pretrained(tmp_path / "c")
    assert next(loaded.model_.parameters()).device.type == "cpu"
    np.testing.assert_allclose(loaded.predict(graphs, targets, pairs), on_gpu.predict(graphs, targets, pairs),
                               rtol=1e-4)
