"""predict / adapt / train / eval through the CLI and ``predict_latency``, on tiny real graphs."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import yaml

import targets
from cost_model.predictor import LatencyPredictor
from tvm_ledg.cli import EXIT_USER_ERROR, main
from tvm_ledg.networks import network_graph
from tvm_ledg.predict import DEFAULT_CHECKPOINT, predict_latency

from tiny_checkpoint import train_tiny_checkpoint

CELLS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    "|nor_conv_1x1~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|avg_pool_3x3~2|",
    "|skip_connect~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|",
]
SPECS = [f"nb201:{c}" for c in CELLS]
TARGETS = ["pixel3-tflite", "gtx1080ti-pytorch-fp32-b1"]


@pytest.fixture(scope="module")
def graphs():
    return {spec: network_graph(spec) for spec in SPECS}


@pytest.fixture(scope="module")
def checkpoint(graphs, tmp_path_factory):
    return train_tiny_checkpoint(graphs, TARGETS, tmp_path_factory.mktemp("ckpt") / "tiny", epochs=3)


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_predict_cli_prints_writes_csv_and_breakdown_sums(checkpoint, tmp_path, capsys):
    store = tmp_path / "graphs"
    out = tmp_path / "pred.csv"
    argv = ["predict", SPECS[0], SPECS[1], "-t", *TARGETS, "--checkpoint", str(checkpoint),
            "--graph-store", str(store), "--csv", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "pixel3-tflite" in text and "gtx1080ti-pytorch-fp32-b1" in text
    rows = _read_csv(out)
    assert [(r["model"], r["target"]) for r in rows] == [(s, t) for s in SPECS[:2] for t in TARGETS]
    assert all(float(r["latency_ms"]) > 0 for r in rows)

    ops_csv = tmp_path / "ops.csv"
    assert main([*argv[:-1], str(ops_csv), "--breakdown"]) == 0
    ops = _read_csv(ops_csv)
    for spec in SPECS[:2]:
        for t in TARGETS:
            mine = [r for r in ops if r["model"] == spec and r["target"] == t]
            total = float(mine[0]["latency_ms"])
            assert len(mine) == network_graph(spec).num_nodes
            assert math.isclose(sum(float(r["op_ms"]) for r in mine), total, rel_tol=1e-4)
    api = predict_latency(SPECS[:2], TARGETS, checkpoint=checkpoint, graph_store=store)
    np.testing.assert_allclose([p.latency_ms for p in api], [float(r["latency_ms"]) for r in rows], rtol=1e-5)


def test_predict_accepts_graphs_and_list_files(checkpoint, graphs, tmp_path):
    listing = tmp_path / "models.txt"
    listing.write_text("# two models\n" + SPECS[2] + "\n\n" + SPECS[3] + "\n")
    from_list = predict_latency(f"@{listing}", "help:pixel3", checkpoint=checkpoint, graph_store=tmp_path / "g")
    direct = predict_latency([graphs[SPECS[2]], graphs[SPECS[3]]], "help:pixel3", checkpoint=checkpoint)
    assert [p.model for p in from_list] == SPECS[2:]
    np.testing.assert_allclose([p.latency_ms for p in from_list], [p.latency_ms for p in direct], rtol=1e-6)


def test_adapt_cli_writes_an_adapted_checkpoint(checkpoint, graphs, tmp_path, capsys):
    new = "galaxy-a50-tflite"
    truth = {s: 5.0 * graphs[s].total_flops / 1e7 for s in SPECS}
    meas = tmp_path / "m.csv"
    meas.write_text("model,latency_ms\n" + "".join(f'"{s}",{ms}\n' for s, ms in truth.items()))
    out = tmp_path / "adapted"
    store = tmp_path / "graphs"
    assert main(["adapt", "--checkpoint", str(checkpoint), "--target", new, "--measurements", str(meas),
                 "--out", str(out), "--graph-store", str(store)]) == 0
    assert "galaxy-a50-tflite" in capsys.readouterr().out
    before = predict_latency(SPECS, new, checkpoint=checkpoint, graph_store=store)
    after = predict_latency(SPECS, new, checkpoint=out, graph_store=store)
    assert all(p.adapted for p in after) and not any(p.adapted for p in before)
    err = lambda ps: np.sqrt(np.mean([(math.log(p.latency_ms / truth[p.model])) ** 2 for p in ps]))  # noqa: E731
    assert err(after) <= err(before) + 1e-9
    # other targets are untouched by the adaptation
    np.testing.assert_allclose([p.latency_ms for p in predict_latency(SPECS, TARGETS[0], checkpoint=out, graph_store=store)],
                               [p.latency_ms for p in predict_latency(SPECS, TARGETS[0], checkpoint=checkpoint,
                                                                      graph_store=store)], rtol=1e-6)


@pytest.mark.parametrize("content, fragment", [
    ("model,ms\nx,1\n", "missing column(s) ['latency_ms']"),
    ("model,latency_ms\n" + f'"{SPECS[0]}",-3\n', "m.csv:2: latency_ms '-3'"),
    ("model,latency_ms\n", "no measurements"),
    ("model,latency_ms\n" + f'"{SPECS[0]}",5,1\n', "m.csv:2: 3 fields, the header has 2; write decimals with a point"),
    ("model,latency_ms\n" + f'"{SPECS[0]}"\n', "m.csv:2: 1 fields, the header has 2"),
    ("model,latency_ms,notes\n" + f'"{SPECS[0]}",5,1\n', "m.csv:1: unknown column(s) ['notes']"),
    ("model,latency_ms\n ,3\n", "m.csv:2: empty model name"),
    ("model,latency_ms\n" + f'"{SPECS[0]}",3\n"{SPECS[1]}",2\n"{SPECS[0]}",4\n',
     f"m.csv:4: model '{SPECS[0]}' is measured again (first on line 2)"),
])
def test_adapt_rejects_bad_measurements(checkpoint, tmp_path, capsys, content, fragment):
    """Ambiguous rows (a decimal comma, extra or missing fields, repeated models) are refused, naming file:line."""
    meas = tmp_path / "m.csv"
    meas.write_text(content)
    code = main(["adapt", "--checkpoint", str(checkpoint), "--target", "help:pixel3", "--measurements", str(meas),
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == EXIT_USER_ERROR and fragment in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_predict_with_a_missing_checkpoint_names_it(tmp_path, capsys):
    assert main(["predict", SPECS[0], "-t", "help:pixel3", "--checkpoint", str(tmp_path / "nope")]) == EXIT_USER_ERROR
    assert "nope: checkpoint directory not found" in capsys.readouterr().err


@pytest.mark.skipif(not DEFAULT_CHECKPOINT.is_dir(), reason="no shipped checkpoint in this checkout")
def test_shipped_checkpoint_predicts_out_of_the_box(tmp_path):
    res = predict_latency(SPECS[0], ["help:pixel3", "help:1080ti_1"], graph_store=tmp_path)
    assert len(res) == 2 and all(0 < p.latency_ms < 1e4 for p in res)


@pytest.mark.data
def test_train_and_eval_cli_on_public_data(tmp_path, capsys):
    """A tiny real training run from a config: resumable state is cleaned up, eval reports every device."""
    from cost_model.data import load_device

    archs = list(load_device("oneproxy", "true_a76").archs[:24])
    store = tmp_path / "graphs"
    assert main(["graphs", *archs, "--store", str(store)]) == 0
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"graph_store": str(store), "sources": ["oneproxy"],
                 "devices": ["oneproxy:true_a76", "oneproxy:eagle_jetson", "oneproxy:true_vpu"],
                 "holdout_targets": ["oneproxy:true_vpu"], "split": {"seed": 0, "test_fraction": 0.3,
                                                                     "val_fraction": 0.2}},
        "encoder": {"kind": "builtin", "dim": 16, "vocab_size": 256},
        "model": {"dim": 16, "layers": 1, "heads": 2},
        "train": {"epochs": 2, "batch_size": 8},
    }))
    out = tmp_path / "ckpt"
    capsys.readouterr()
    assert main(["train", "--config", str(config), "--out", str(out)]) == 0
    assert (out / "config.json").is_file() and not (tmp_path / "ckpt.resume").exists()
    # few-shot adaptation may predict a new target as one of the training targets: the checkpoint names them
    from cost_model.predictor import LatencyPredictor
    assert sorted(LatencyPredictor.from_pretrained(out).reference_targets()) == ["oneproxy:eagle_jetson",
                                                                                 "oneproxy:true_a76"]
    assert main(["eval", "--checkpoint", str(out), "--config", str(config), "--json", str(tmp_path / "e.json")]) == 0
    table = capsys.readouterr().out
    assert "oneproxy:true_a76" in table and "oneproxy:eagle_jetson" in table and "oneproxy:true_vpu" not in table
    assert main(["eval", "--checkpoint", str(out), "--config", str(config), "--split", "holdout"]) == 0
    assert "oneproxy:true_vpu" in capsys.readouterr().out
    config.write_text("data: {graph_store: x}\ntrain: {epochz: 3}\n")
    assert main(["train", "--config", str(config), "--out", str(out)]) == EXIT_USER_ERROR
    assert "unknown training settings ['epochz']" in capsys.readouterr().err


def test_adapt_and_train_refuse_an_out_directory_that_is_not_a_checkpoint(checkpoint, tmp_path, capsys, monkeypatch):
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "a.txt").write_text("keep")
    meas = tmp_path / "m.csv"
    meas.write_text("model,latency_ms\n" + "".join(f'"{s}",{i + 1}\n' for i, s in enumerate(SPECS)))
    for out in (str(project), "."):
        monkeypatch.chdir(project)
        code = main(["adapt", "--checkpoint", str(checkpoint), "--target", "help:pixel3", "--measurements",
                     str(meas), "--out", out, "--graph-store", str(tmp_path / "g")])
        err = capsys.readouterr().err
        assert code == EXIT_USER_ERROR and f"{project}: not empty and not a checkpoint" in err
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"data": {"graph_store": str(tmp_path / "no-store")}}))
    assert main(["train", "--config", str(config), "--out", str(project)]) == EXIT_USER_ERROR
    assert f"{project}: not empty and not a checkpoint" in capsys.readouterr().err  # refused before the data is read
    (tmp_path / "ckpt.resume").mkdir()
    (tmp_path / "ckpt.resume" / "notes.txt").write_text("mine")
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "ckpt"), "--restart"]) == EXIT_USER_ERROR
    assert "ckpt.resume: not empty and not a checkpoint" in capsys.readouterr().err
    assert (tmp_path / "ckpt.resume" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in project.iterdir()) == ["a.txt", "src"] and (project / "a.txt").read_text() == "keep"


@pytest.mark.parametrize("command", ["predict", "rank", "adapt"])
def test_the_program_level_checkpoint_is_refused_for_networks(tmp_path, capsys, command):
    program = DEFAULT_CHECKPOINT.parent / "ledg-program"
    if not program.is_dir():
        pytest.skip("no shipped program-level checkpoint in this checkout")
    meas = tmp_path / "m.csv"
    meas.write_text(f'model,latency_ms\n"{SPECS[0]}",3\n')
    argv = {"predict": ["predict", SPECS[0], "-t", "help:pixel3"], "rank": ["rank", SPECS[0], "-t", "help:pixel3"],
            "adapt": ["adapt", "--target", "help:pixel3", "--measurements", str(meas), "--out", str(tmp_path / "o")]}
    assert main([*argv[command], "--checkpoint", str(program), "--graph-store", str(tmp_path / "g")]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert (f"{program.resolve()}: a checkpoint of kind 'ledgformer-latency/program'" in err
            and "expected 'ledgformer-latency/network'" in err), err
    assert not (tmp_path / "o").exists() and not (tmp_path / "g").exists()


def test_measurements_with_a_byte_order_mark_and_padded_header_are_read(tmp_path):
    from tvm_ledg.predict import read_measurements

    meas = tmp_path / "m.csv"
    meas.write_text("\ufefflatency_ms , model\n5.1,nb201:a\n0.25,\"nb201:b,c\"\n", encoding="utf-8")
    assert read_measurements(meas) == [("nb201:a", 5.1), ("nb201:b,c", 0.25)]


def test_adapt_from_one_measurement_says_it_scaled(checkpoint, graphs, tmp_path, capsys):
    meas = tmp_path / "m.csv"
    meas.write_text(f'model,latency_ms\n"{SPECS[0]}",7.5\n')
    out, store = tmp_path / "adapted", tmp_path / "graphs"
    assert main(["adapt", "--checkpoint", str(checkpoint), "--target", "galaxy-a50-tflite", "--measurements",
                 str(meas), "--out", str(out), "--graph-store", str(store)]) == 0
    said = capsys.readouterr().out
    assert "galaxy-a50-tflite: scale-only calibration from 1 measurement (not cross-validated): every prediction x" in said
    (after,) = predict_latency(SPECS[0], "galaxy-a50-tflite", checkpoint=out, graph_store=store)
    assert after.adapted and after.latency_ms == pytest.approx(7.5, rel=1e-5)


def test_an_adaptation_that_changes_nothing_is_not_reported_and_a_stale_one_is_warned(checkpoint, tmp_path, caplog):
    from cost_model.predictor import Adaptation

    desc = targets.load("galaxy-a50-tflite")
    model = LatencyPredictor.from_pretrained(checkpoint)
    model.adaptations_[desc.content_hash()] = Adaptation(desc.to_dict(), samples=3, method="zero-shot")
    edited = {**desc.to_dict(), "notes": "an older version of this descriptor"}
    model.adaptations_["0123456789abcdef"] = Adaptation(edited, scale_a=1.0, samples=4, method="calibrated")
    model.save_pretrained(tmp_path / "ckpt")
    (pred,) = predict_latency(SPECS[0], desc, checkpoint=tmp_path / "ckpt", graph_store=tmp_path / "g")
    assert not pred.adapted
    assert not caplog.records  # the current descriptor has its own (no-op) entry
    del model.adaptations_[desc.content_hash()]
    model.save_pretrained(tmp_path / "stale")
    with caplog.at_level("WARNING"):
        (pred,) = predict_latency(SPECS[0], desc, checkpoint=tmp_path / "stale", graph_store=tmp_path / "g")
    assert not pred.adapted
    assert any("target galaxy-a50-tflite" in r.getMessage() and "0123456789abcdef" in r.getMessage()
               and "not applied" in r.getMessage() for r in caplog.records), caplog.text


def test_breakdown_says_what_limits_each_operator(checkpoint, tmp_path, capsys):
    from cost_model.roofline import BOUND_LABELS

    argv = ["predict", SPECS[0], "-t", TARGETS[1], "--checkpoint", str(checkpoint), "--graph-store",
            str(tmp_path / "g"), "--breakdown", "--top", "3"]
    assert main(argv) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.rstrip().endswith(BOUND_LABELS)]
    assert len(lines) == 3 and all(line.split()[-1] in BOUND_LABELS for line in lines)
    api = predict_latency(SPECS[0], TARGETS[1], checkpoint=checkpoint, graph_store=tmp_path / "g", breakdown=True,
                          top_ops=3)
    assert sorted(api[0].bounds) == sorted(n for n, _, _ in api[0].operators)
