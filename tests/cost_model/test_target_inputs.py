"""What the target conditioning reads: the whole descriptor, or the descriptor without its throughput."""

import dataclasses
from types import MappingProxyType

import numpy as np
import pytest

import targets
from cost_model.featurize import FEATURE_NAMES
from cost_model.ledgformer import LeDGFormerConfig
from cost_model.predictor import LatencyPredictor, TrainConfig
from cost_model.target_inputs import THROUGHPUT_FEATURES, conditioning_features, conditioning_text
from targets.schema import FEATURE_NAMES as TARGET_FEATURE_NAMES

from test_predictor import _data

ONE = targets.load("local-zen3-onnxruntime-t1")
TWO = targets.load("local-zen3-onnxruntime-t2")  # the same CPU and runtime on 2 threads, twice the peak
GPU = targets.load("gtx1080ti-pytorch-fp32-b1")


def test_without_throughput_two_thread_counts_read_alike():
    assert conditioning_text(ONE) != conditioning_text(TWO)
    assert conditioning_features(ONE) != conditioning_features(TWO)
    assert conditioning_text(ONE, "no-throughput") == conditioning_text(TWO, "no-throughput")
    assert conditioning_features(ONE, "no-throughput") == conditioning_features(TWO, "no-throughput")
    assert "thread" not in conditioning_text(ONE, "no-throughput").split(";")[1]
    assert "TFLOP/s" not in conditioning_text(GPU, "no-throughput")
    values, mask = conditioning_features(GPU, "no-throughput")
    for name in THROUGHPUT_FEATURES:
        i = TARGET_FEATURE_NAMES.index(name)
        assert values[i] == mask[i] == 0.0
    # the bandwidth, class, runtime and the rest stay
    assert conditioning_features(GPU, "no-throughput") != conditioning_features(ONE, "no-throughput")
    # features only: one text for every target
    assert conditioning_text(GPU, "features-no-throughput") == conditioning_text(ONE, "features-no-throughput")
    with pytest.raises(ValueError, match="target inputs 'peaks'"):
        conditioning_text(ONE, "peaks")


def test_config_checks_and_keeps_the_choice_and_old_configs_read_all():
    base = dict(text_dim=8, num_node_features=len(FEATURE_NAMES), num_target_features=len(TARGET_FEATURE_NAMES))
    with pytest.raises(ValueError, match="target_inputs='peaks'"):
        LeDGFormerConfig(**base, target_inputs="peaks")
    config = LeDGFormerConfig(**base, target_inputs="no-throughput")
    assert LeDGFormerConfig.from_dict(config.to_dict()).target_inputs == "no-throughput"
    old = config.to_dict()
    del old["target_inputs"]
    assert LeDGFormerConfig.from_dict(old).target_inputs == "all"


@pytest.mark.parametrize("inputs", ["all", "no-throughput"])
def test_the_thread_count_reaches_predictions_only_when_read(tmp_path, inputs):
    """The roofline reads peak compute, never the thread count: without throughput inputs, a descriptor
    that differs only in its thread count is predicted the same; with them, not."""
    graphs, rows = _data(0)
    names = {"gtx1080ti-pytorch-fp32-b1": targets.load("gtx1080ti-pytorch-fp32-b1"),
             "pixel3-tflite": targets.load("pixel3-tflite")}
    model = LatencyPredictor(encoder={"kind": "builtin", "dim": 16, "vocab_size": 256},
                             model={"dim": 16, "layers": 1, "heads": 4, "dropout": 0.0, "factors": 4,
                                    "target_inputs": inputs},
                             train=TrainConfig(epochs=3, batch_size=16, lr=3e-3, seed=0, target_offsets=None))
    model.fit(graphs, names, rows)
    model.save_pretrained(tmp_path / "ckpt")
    model = LatencyPredictor.from_pretrained(tmp_path / "ckpt")
    assert model.model_.config.target_inputs == inputs
    one, two = dataclasses.replace(ONE, threads=1), dataclasses.replace(ONE, threads=2)
    assert one.peak_tops == two.peak_tops == MappingProxyType(dict(ONE.peak_tops))
    keys = sorted(graphs)[:6]
    pred = [model.predict(graphs, {d.name: d}, [(k, d.name) for k in keys]) for d in (one, two)]
    if inputs == "all":
        assert not np.allclose(pred[0], pred[1], rtol=1e-4)
    else:
        np.testing.assert_allclose(pred[0], pred[1], rtol=1e-6)
