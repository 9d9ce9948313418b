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
