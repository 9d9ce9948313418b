"""What a CLI user expects: no two targets under one name, help and version, readable tables, plots."""

from __future__ import annotations

import pytest
import yaml

import targets
from targets.errors import TargetError
from tvm_ledg.cli import EXIT_USER_ERROR, main
from tvm_ledg.predict import predict_latency

NB201 = "nb201:|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def _user_copy(tmp_path, name: str = "pixel3-tflite", **changes) -> str:
    """A user YAML of a shipped target, under its name, with ``changes`` applied."""
    data = targets.load(name).to_dict() | changes
    path = tmp_path / f"my-{name}-{len(changes)}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_a_user_yaml_cannot_take_over_a_shipped_targets_name(tmp_path, capsys):
    mine = _user_copy(tmp_path, tdp_w=99.0)
    with pytest.raises(TargetError, match="same name 'pixel3-tflite'"):
        predict_latency(NB201, ["help:pixel3", mine], graph_store=tmp_path / "g")
    for argv in (["predict", NB201, "-t", "help:pixel3", mine], ["rank", NB201, "-t", "help:pixel3", mine]):
        assert main([*argv, "--graph-store", str(tmp_path / "g")]) == EXIT_USER_ERROR
        err = capsys.readouterr().err
        assert err.startswith("error: 'help:pixel3' and ") and mine in err and len(err.strip().splitlines()) == 1


def test_the_same_target_named_twice_is_kept_once(tmp_path):
    same = _user_copy(tmp_path)
    descs = targets.load_many(["pixel3-tflite", "help:pixel3", same, "gtx1080ti-pytorch-fp32-b1", "pixel3-tflite"])
    assert [d.name for d in descs] == ["pixel3-tflite", "gtx1080ti-pytorch-fp32-b1"]
    with pytest.raises(TargetError, match="descriptor 'pixel3-tflite' and "):
        targets.load_many([targets.load("pixel3-tflite"), _user_copy(tmp_path, clock_ghz=1.0)])
