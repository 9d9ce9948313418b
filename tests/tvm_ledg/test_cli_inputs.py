"""What users hand the CLI (model files, output paths, options) ends in a result or a one-line error."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from tvm_ledg.cli import EXIT_USER_ERROR, main


def _onnx(path: Path, nodes: list, inputs: list, outputs: list) -> Path:
    path.write_bytes(helper.make_model(helper.make_graph(nodes, "g", inputs, outputs)).SerializeToString())
    return path


def _relu(path: Path, op: str = "Relu", batch: int | str = 1) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 8])
    return _onnx(path, [helper.make_node(op, ["x"], ["y"])], [x], [y])


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize("command", ["graph", "graphs"])
def test_an_empty_onnx_graph_is_an_error_naming_the_file(tmp_path, capsys, command):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])
    for model in (_onnx(tmp_path / "empty.onnx", [], [], []), _onnx(tmp_path / "through.onnx", [], [x], [x])):
        extra = ["--store", str(tmp_path / "store")] if command == "graphs" else []
        assert main([command, str(model), *extra]) == EXIT_USER_ERROR
        err = capsys.readouterr().err
        assert str(model) in err and "no operators" in err and "Traceback" not in err


def test_graphs_keys_onnx_files_by_content(tmp_path, capsys):
    from cost_model.graph_store import GraphStore
    from tvm_ledg.networks import model_key

    model, store = _relu(tmp_path / "m.onnx"), tmp_path / "store"
    assert main(["graphs", str(model), "--store", str(store)]) == 0
    assert "built 1, already stored 0" in capsys.readouterr().out
    _relu(model, "Sigmoid")  # edited in place: the old graph must not be served
    assert main(["graphs", str(model), "--store", str(store)]) == 0
    assert "built 1, already stored 0" in capsys.readouterr().out
    assert [n.op for n in GraphStore(store)[model_key(str(model))].nodes] == ["sigmoid"]
    renamed = model.rename(tmp_path / "renamed.onnx")  # same content, new name: found again
    assert main(["graphs", str(renamed), "--store", str(store)]) == 0
    assert "built 0, already stored 1" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["graph", "m.onnx", "--limit", "-3"], ["graph", "m.onnx", "--limit", "x"]])
def test_graph_limit_must_be_a_non_negative_count(argv, capsys):
    assert main(argv) == EXIT_USER_ERROR and "--limit" in capsys.readouterr().err


def test_graph_limit_zero_prints_every_node(tmp_path, capsys):
    assert main(["graph", str(_relu(tmp_path / "m.onnx")), "--limit", "0"]) == 0
    assert "more nodes" not in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["graph", "m.onnx", "--json"], ["predict", "m.onnx", "-t", "pixel3-tflite", "--csv"]])
def test_a_folder_as_output_file_is_refused_before_any_work(tmp_path, capsys, argv):
    assert main([*argv, str(tmp_path)]) == EXIT_USER_ERROR and f"{tmp_path} is a folder" in capsys.readouterr().err


def test_graph_json_creates_missing_folders_and_names_a_path_it_cannot_write(tmp_path, capsys):
    model = _relu(tmp_path / "m.onnx")
    out = tmp_path / "new" / "dir" / "g.json"
    assert main(["graph", str(model), "--json", str(out)]) == 0 and out.is_file()
    blocked = model / "sub" / "g.json"  # a file where a folder should be
    assert main(["graph", str(model), "--json", str(blocked)]) == EXIT_USER_ERROR
    err = _error(capsys)
    assert f"{blocked}: cannot write" in err and str(model / "sub") in err


def test_prediction_csv_on_a_folder_is_a_one_line_error(tmp_path):
    from targets.errors import OutputError
    from tvm_ledg.cli_output import write_predictions_csv as _write_predictions_csv

    with pytest.raises(OutputError, match="is a folder"):
        _write_predictions_csv(tmp_path, [], breakdown=False)


def test_a_dynamic_batch_error_names_the_cli_option(tmp_path, capsys):
    model = _relu(tmp_path / "dyn.onnx", batch="N")
    assert main(["graph", str(model)]) == EXIT_USER_ERROR
    err = _error(capsys)
    assert "dynamic dimension 0 (N)" in err and "--batch-size N" in err and "input_shapes=" in err
    assert main(["graph", str(model), "--batch-size", "2"]) == 0
    assert "2x8" in capsys.readouterr().out


_NO_TVM = """
import sys
from tvm_ledg.cli import main
code = main(sys.argv[1:])
assert code == 2, code
assert "tvm" not in sys.modules and "onnx" not in sys.modules, "imported before the MODEL was checked"
"""


@pytest.mark.parametrize("argv, fragment", [
    (["graph", "missing.onnx"], "missing.onnx: no such ONNX file"),
    (["graph", "nb201:bogus"], "nb201 cell 'bogus'"),
    (["graph", "resnet18"], "not an ONNX file"),
    (["graph", "m.onnx"], "m.onnx: not a file"),  # a folder named like a model
    (["graphs", "fbnet:1,2", "--store", "s"], "fbnet"),
    (["predict", "missing.onnx", "-t", "help:pixel3"], "missing.onnx: no such ONNX file"),
    (["predict", "ofa:{bad", "-t", "help:pixel3"], "ofa"),
    (["rank", "zoo:nosuchfamily:1", "-t", "help:pixel3"], "nosuchfamily"),
    (["collect", "@missing.txt", "-t", "help:pixel3", "--db", "m.sqlite"], "missing.txt: cannot read model list"),
    (["adapt", "--target", "help:pixel3", "--measurements", "ms.csv", "--out", "o"], "missing.onnx: no such ONNX"),
    (["predict", "@list.txt", "-t", "help:pixel3"], "list.txt:2: 'resnet18': not an ONNX file"),
])
def test_models_are_checked_before_tvm_is_imported(tmp_path, argv, fragment):
    import subprocess
    import sys

    (tmp_path / "m.onnx").mkdir()
    (tmp_path / "ms.csv").write_text("model,latency_ms\nmissing.onnx,1.0\n")
    (tmp_path / "list.txt").write_text("# models\nresnet18\n")
    out = subprocess.run([sys.executable, "-c", _NO_TVM, *argv], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stderr.startswith("error:") and fragment in out.stderr and len(out.stderr.splitlines()) == 1


def test_graphs_store_must_be_a_folder(tmp_path, capsys):
    model, store = _relu(tmp_path / "m.onnx"), tmp_path / "store.txt"
    store.write_text("not a store")
    assert main(["graphs", str(model), "--store", str(store)]) == EXIT_USER_ERROR
    assert f"{store} is a file" in capsys.readouterr().err


def test_batch_size_must_be_positive(tmp_path, capsys):
    assert main(["graph", str(_relu(tmp_path / "m.onnx", batch="N")), "--batch-size", "0"]) == EXIT_USER_ERROR
    assert "batch size must be a positive integer, got 0" in _error(capsys)
