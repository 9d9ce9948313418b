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


def _actions(parser, path=("tvm-ledg",)):
    """``(command path, action)`` for every action of ``parser`` and of its sub-commands, recursively."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        yield path, action
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:  # the one-line help of each sub-command
                yield (*path, choice.dest), choice
            for name, subparser in action.choices.items():
                yield from _actions(subparser, (*path, name))


def test_every_option_and_positional_has_help():
    from tvm_ledg.cli import build_parser

    missing = [f"{' '.join(path)} {action.option_strings or action.dest}"
               for path, action in _actions(build_parser()) if not (action.help or "").strip()]
    assert not missing, f"arguments without help: {missing}"


def test_version_help_and_usage_errors(capsys):
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"tvm-ledg {version('tvm-ledg')}"
    assert main(["-h"]) == 0
    text = capsys.readouterr().out
    assert "``" not in text and "examples:" in text and "zoo:FAMILY:SEED" in text and "Exit codes" in text
    assert main(["graph", "-h"]) == 0
    assert "zoo:FAMILY:SEED" in capsys.readouterr().out
    assert main(["predict", NB201]) == EXIT_USER_ERROR  # argparse usage error: -t is required
    assert "required: --target/-t" in capsys.readouterr().err
