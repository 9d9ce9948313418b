"""The CLI through ``main(argv)``: output, exit codes, one-line errors."""

import json

import pytest

from tvm_ledg.cli import EXIT_USER_ERROR, main

NB201 = "nb201:|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def test_graph_of_a_space_string_prints_totals_and_writes_json(tmp_path, capsys):
    out_json = tmp_path / "g.json"
    assert main(["graph", NB201, "--json", str(out_json), "--limit", "3"]) == 0
    text = capsys.readouterr().out
    # 184.73 M multiply-adds: the count of this cell in the NAS-Bench-201 space tests (upstream counter)
    assert "184.73 MMACs" in text and "M params" in text and "more nodes" in text
    saved = json.loads(out_json.read_text())
    assert saved["name"] == NB201 and len(saved["nodes"]) > 100


def test_targets_list_show_validate(tmp_path, capsys):
    assert main(["targets", "list"]) == 0
    assert "gtx1080ti-pytorch-fp32-b1" in capsys.readouterr().out
    assert main(["targets", "show", "help:1080ti_1", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["name"] == "gtx1080ti-pytorch-fp32-b1"
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema_version: 1\nname: bad\ndevice_class: toaster\n")
    assert main(["targets", "validate", str(bad)]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.startswith("error:") and "bad.yaml" in err and len(err.strip().splitlines()) == 1


def test_targets_validate_warns_about_missing_roofline_inputs(tmp_path, capsys):
    board = tmp_path / "board.yaml"
    board.write_text("schema_version: 1\nname: board\ndevice_class: embedded-cpu\nmodel: Board\n"
                     "runtime: tflite\nprecision: int8\nbatch_size: 1\npeak_tops: {fp32: 0.1}\n")
    assert main(["targets", "validate", str(board)]) == 0
    captured = capsys.readouterr()
    assert "valid (board" in captured.out
    warnings = captured.err.strip().splitlines()
    assert len(warnings) == 2 and all(w.startswith("warning: board:") for w in warnings)
    assert "no peak_tops.int8" in warnings[0] and "learned estimate" in warnings[0] and "derive" in warnings[0]
    assert "no memory.bandwidth_gbps" in warnings[1] and "transfer rate x bus width" in warnings[1]
    board.write_text(board.read_text().replace("fp32: 0.1", "int8: 0.4") + "memory: {bandwidth_gbps: 12.8}\n")
    assert main(["targets", "validate", str(board)]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["graph", "missing.onnx"], "missing.onnx"),
        (["graph", "resnet18"], "not an ONNX file"),
        (["graph", "nb201:|bogus~0|"], "nb201"),
        (["targets", "show", "no-such-target"], "unknown target"),
    ],
)
def test_user_errors_are_one_line(argv, fragment, capsys):
    assert main(argv) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.startswith("error:") and fragment in err and "Traceback" not in err


def test_graphs_build_into_a_store_and_resume(tmp_path, capsys):
    cell = "nb201:|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
    listing = tmp_path / "models.txt"
    listing.write_text(f"# one model per line\n{cell}\n")
    store = tmp_path / "store"
    assert main(["graphs", f"@{listing}", "--store", str(store)]) == 0
    assert "built 1, already stored 0" in capsys.readouterr().out
    assert main(["graphs", cell, "--store", str(store)]) == 0
    assert "built 0, already stored 1" in capsys.readouterr().out
    assert main(["graphs", cell, "nb201:|bogus|", "--store", str(store)]) == EXIT_USER_ERROR  # checked first
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error:") and "bogus" in captured.err
