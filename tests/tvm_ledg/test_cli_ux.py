"""What a CLI user expects: no two targets under one name, help and version, readable tables, plots."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import targets
from targets.errors import ArgumentError, OutputError, TargetError
from tvm_ledg.cli import EXIT_USER_ERROR, main
from tvm_ledg.predict import predict_latency

from tiny_checkpoint import train_tiny_checkpoint

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


# -- predict with many models: labels, progress ---------------------------------------------------------------

TAIL = "|+|skip_connect~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
SHARED_TAIL = [f"nb201:|{op}~0{TAIL}" for op in ("nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")]
TARGETS = ["pixel3-tflite", "gtx1080ti-pytorch-fp32-b1"]


@pytest.fixture(scope="module")
def graphs():
    from tvm_ledg.networks import network_graph

    return {spec: network_graph(spec) for spec in SHARED_TAIL}


@pytest.fixture(scope="module")
def checkpoint(graphs, tmp_path_factory):
    return train_tiny_checkpoint(graphs, TARGETS, tmp_path_factory.mktemp("ckpt") / "tiny", epochs=2)


@pytest.fixture(scope="module")
def store(graphs, tmp_path_factory):
    """A graph store holding the fixture graphs, so predictions here lower nothing."""
    from cost_model.graph_store import GraphStore

    path = tmp_path_factory.mktemp("graphs")
    gs = GraphStore(path)
    for spec, graph in graphs.items():
        gs.put(spec, graph)
    return path


def test_model_labels_tell_apart_cells_that_share_their_tail():
    from tvm_ledg.cli_output import model_labels as _model_labels

    assert all(len(s) > 48 for s in SHARED_TAIL) and len({s[-45:] for s in SHARED_TAIL}) == 1
    labels = _model_labels(SHARED_TAIL, 48)
    assert len(set(labels.values())) == 3 and all(len(v) <= 48 for v in labels.values())
    assert all(op in labels[f"nb201:|{op}~0{TAIL}"] for op in ("nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3"))
    middle = [f"nb201:|none~0|+|none~0|none~1|+|skip_connect~0|{op}~1|none~2|" for op in ("none", "nor_conv_1x1")]
    assert len(set(_model_labels(middle, 40).values())) == 2
    assert _model_labels(["short.onnx", "nb201:x"], 48) == {"short.onnx": "short.onnx", "nb201:x": "nb201:x"}
    lone = "/a/very/long/directory/name/that/goes/on/and/on/resnet50.onnx"
    assert _model_labels([lone], 30)[lone].endswith("resnet50.onnx")


def test_predict_table_numbers_models_and_wide_prints_whole_names(checkpoint, store, capsys):
    argv = ["predict", *SHARED_TAIL, "-t", *TARGETS, "--checkpoint", str(checkpoint), "--graph-store", str(store)]
    assert main(argv) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert len(rows) == 6
    assert [r.split()[0] for r in rows] == ["1", "1", "2", "2", "3", "3"]
    assert len({r.split()[1] for r in rows}) == 3  # three distinct model labels
    assert main([*argv, "--wide"]) == 0
    wide = capsys.readouterr().out
    assert all(spec in wide for spec in SHARED_TAIL)


def test_predict_reports_progress_while_lowering(checkpoint, graphs, tmp_path):
    from cost_model.graph_store import GraphStore

    # at batch 2 space strings are lowered through TVM (batch 1 is assembled from templates, unstored)
    GraphStore(tmp_path).put(f"{SHARED_TAIL[0]}#batch=2", graphs[SHARED_TAIL[0]])  # the other two are lowered
    calls = []
    predict_latency(SHARED_TAIL, TARGETS[0], checkpoint=checkpoint, graph_store=tmp_path, batch_size=2,
                    progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 2), (1, 2), (2, 2)]
    predict_latency(SHARED_TAIL, TARGETS[0], checkpoint=checkpoint, graph_store=tmp_path, batch_size=2,
                    progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 2), (1, 2), (2, 2)]  # everything stored now: nothing to report


# -- pictures ---------------------------------------------------------------------------------------------------

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _has_color(png, hex_color: str) -> bool:
    """Whether any pixel of ``png`` is ``hex_color`` (bar interiors are drawn in exactly that colour)."""
    from matplotlib import colors, image

    rgb = (image.imread(png)[..., :3] * 255).round()
    want = [round(255 * c) for c in colors.to_rgb(hex_color)]
    return bool(((abs(rgb - want) <= 1).all(axis=-1)).any())


def test_plot_ranking_draws_one_bar_per_target_with_error_bars_and_measured(tmp_path):
    from tvm_ledg.plots import MEASURED_COLOR, plot_ranking
    from tvm_ledg.predict import LatencyPrediction

    ranked = [LatencyPrediction("m", "a", 1.5, 0.3), LatencyPrediction("m", "b", 12.0, None),
              LatencyPrediction("m", "c", 80.0, 0.5)]
    out = tmp_path / "r.png"
    ax = plot_ranking("m", ranked, out, measured_ms={"b": 10.0}).axes[0]
    assert out.read_bytes().startswith(PNG_MAGIC) and _has_color(out, MEASURED_COLOR)
    bars = {c.get_label(): c for c in ax.containers}
    assert len(bars["predicted"]) == 3 and len(bars["measured (median)"]) == 1
    errors = [c for label, c in bars.items() if label.startswith("x/ e^std_log")]
    assert len(errors) == 1 and len(errors[0].lines[2][0].get_segments()) == 2  # targets with a std only
    assert ax.get_xscale() == "log"
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temp file left behind


def test_plot_breakdown_sums_per_operator_kind_and_refuses_too_many_panels(tmp_path):
    from targets.errors import DataError
    from tvm_ledg.plots import MAX_PANELS, plot_breakdown
    from tvm_ledg.predict import LatencyPrediction

    p = LatencyPrediction("m", "a", 10.0, None, operators=[(0, "nn.conv2d", 4.0), (1, "add", 1.0),
                                                            (2, "nn.conv2d", 3.0), (3, "add", 2.0)])
    out = tmp_path / "b.png"
    fig = plot_breakdown([p], out)
    assert out.read_bytes().startswith(PNG_MAGIC)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["nn.conv2d", "add"]
    assert [round(b.get_width(), 6) for b in ax.containers[0]] == [7.0, 3.0]
    assert "70.0%" in " ".join(t.get_text() for t in ax.texts)
    assert len(plot_breakdown([p] * 3, out).axes) == 3
    with pytest.raises(ArgumentError, match=f"at most {MAX_PANELS}"):
        plot_breakdown([p] * (MAX_PANELS + 1), out)


def test_rank_plot_shows_the_measured_latency_from_the_store(checkpoint, store, graphs, tmp_path, capsys):
    from cost_model.measurement_store import Measurement, MeasurementStore
    from tvm_ledg.plots import MEASURED_COLOR

    spec = SHARED_TAIL[0]
    db = tmp_path / "m.sqlite"
    argv = ["rank", spec, "-t", *TARGETS, "--checkpoint", str(checkpoint), "--graph-store", str(store),
            "--plot", str(tmp_path / "rank.png"), "--db", str(db)]
    assert main(argv) == 0  # no store: predicted bars only, and the store is not created
    assert "measured latency for 0 of 2 targets" in capsys.readouterr().out and not db.exists()
    assert (tmp_path / "rank.png").read_bytes().startswith(PNG_MAGIC)
    assert not _has_color(tmp_path / "rank.png", MEASURED_COLOR)

    with MeasurementStore(db) as ms:
        graph_hash = ms.add_graph(graphs[spec])
        ms.add_network(spec, graph_hash, "nb201")
        target_hash = ms.add_target(targets.load(TARGETS[1]))
        ms.add_measurement(Measurement(spec, graph_hash, target_hash, "test-protocol", 3.0, 3.1, 0.1, 2.9, 0.03, 10))
    assert main(argv) == 0
    assert "measured latency for 1 of 2 targets" in capsys.readouterr().out
    assert _has_color(tmp_path / "rank.png", MEASURED_COLOR)


def test_predict_plot_writes_the_breakdown_or_says_what_is_missing(checkpoint, store, tmp_path, capsys):
    base = ["predict", SHARED_TAIL[0], "-t", *TARGETS, "--checkpoint", str(checkpoint), "--graph-store", str(store)]
    out = tmp_path / "ops.png"
    assert main([*base, "--plot", str(out)]) == EXIT_USER_ERROR
    assert "add --breakdown" in capsys.readouterr().err and not out.exists()
    assert main([*base, "--plot", str(tmp_path / "ops.svg"), "--breakdown"]) == EXIT_USER_ERROR
    assert "name the file *.png" in capsys.readouterr().err
    assert main([*base, "--plot", str(out), "--breakdown"]) == 0
    assert out.read_bytes().startswith(PNG_MAGIC) and f"wrote {out}" in capsys.readouterr().out
    many = tmp_path / "many.txt"
    many.write_text("\n".join(f"nb201:|none~0|+|none~0|none~1|+|none~0|none~1|{op}~2|" for op in
                              ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")))
    assert main(["predict", f"@{many}", "-t", *TARGETS, "pixel4-tflite-cpu", "--breakdown", "--plot", str(out),
                 "--checkpoint", str(checkpoint)]) == EXIT_USER_ERROR  # 15 panels, refused before lowering
    assert "at most 12" in capsys.readouterr().err


def test_exit_codes_follow_docs_cli_md(monkeypatch, tmp_path, capsys):
    import tvm_ledg.cli as cli

    assert main(["targets", "list"]) == 0
    assert main(["no-such-command"]) == EXIT_USER_ERROR  # usage errors: argparse's one-line message, code 2
    capsys.readouterr()
    (tmp_path / "file").write_text("")
    from tvm_ledg.plots import plot_ranking
    from tvm_ledg.predict import LatencyPrediction

    with pytest.raises(OutputError, match="cannot write the plot"):  # so the CLI says so in one line
        plot_ranking("m", [LatencyPrediction("m", "a", 1.0)], tmp_path / "file" / "r.png")

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_targets", interrupted)
    assert main(["targets", "list"]) == 130
    assert "interrupted" in capsys.readouterr().err
    doc = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    assert all(f"| {code} |" in doc for code in (0, 2, 3, 130))


def test_predict_progress_bar_stays_off_a_pipe(checkpoint, graphs, tmp_path, capsys):
    from cost_model.graph_store import GraphStore

    GraphStore(tmp_path).put(SHARED_TAIL[0], graphs[SHARED_TAIL[0]])  # SHARED_TAIL[1] is lowered, with a callback
    assert main(["predict", *SHARED_TAIL[:2], "-t", TARGETS[0], "--checkpoint", str(checkpoint),
                 "--graph-store", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and len(captured.out.splitlines()) == 3  # stderr is not a terminal here: no bar
