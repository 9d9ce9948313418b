"""`tvm-ledg db`: reading commands never create a store, import is all or nothing, export never clobbers."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

import targets
from cost_model.graph import OpGraph, OpNode, TensorSpec
from cost_model.measurement_store import Measurement, MeasurementStore
from tvm_ledg.cli import EXIT_USER_ERROR, main


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "m.sqlite"
    with MeasurementStore(path) as s:
        t = s.add_target(targets.load("local-zen3-onnxruntime-t1"))
        spec = TensorSpec((1, 4, 8, 8), "float32")
        g = s.add_graph(OpGraph(nodes=[OpNode(0, "nn.relu", inputs=[spec], outputs=[spec], flops=spec.numel)],
                                edges=[], output_nodes=[0], name="g"))
        s.add_network("a", g, "test")
        s.add_measurement(Measurement("a", g, t, "p1", 1.0, 1.0, 0.01, 0.9, 0.01, 10))
    return path


@pytest.mark.parametrize("argv", [["stats"], ["export", "out.jsonl.gz"]])
def test_reading_a_missing_store_is_an_error_and_creates_nothing(argv: list[str], tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["db", *argv, "--db", "typo.sqlite"]) == EXIT_USER_ERROR
    assert capsys.readouterr().err == "error: typo.sqlite: no measurement store here\n"
    assert list(tmp_path.iterdir()) == []


def test_export_refuses_an_existing_file_unless_forced(store: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.jsonl.gz"
    out.write_text("keep me")
    assert main(["db", "export", str(out), "--db", str(store)]) == EXIT_USER_ERROR
    assert capsys.readouterr().err == f"error: {out}: already exists (tvm-ledg db export --force replaces it)\n"
    assert out.read_text() == "keep me"
    assert main(["db", "export", str(out), "--db", str(store), "--force"]) == 0
    assert "1 measurements" in capsys.readouterr().out
    assert main(["db", "import", str(out), "--db", str(tmp_path / "new.sqlite")]) == 0
    assert MeasurementStore(tmp_path / "new.sqlite", readonly=True).stats()["measurements"] == 1


def test_a_refused_import_leaves_no_new_store(store: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.jsonl.gz"
    assert main(["db", "export", str(out), "--db", str(store)]) == 0
    with gzip.open(out, "rt") as f:
        lines = f.read().splitlines()
    cut = tmp_path / "cut.jsonl.gz"
    with gzip.open(cut, "wt") as f:
        f.write("\n".join(lines[:-1]) + "\n")
    capsys.readouterr()
    assert main(["db", "import", str(cut), "--db", str(tmp_path / "new.sqlite")]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.startswith(f"error: {cut}: ends at line {len(lines) - 1} without its end record") and err.count("\n") == 1
    assert not any(p.name.startswith("new.sqlite") for p in tmp_path.iterdir())
    null = tmp_path / "null.jsonl.gz"
    with gzip.open(null, "wt") as f:
        f.write("\n".join(line.replace('"median_ms":1.0', '"median_ms":null') for line in lines) + "\n")
    assert main(["db", "import", str(null), "--db", str(store)]) == EXIT_USER_ERROR
    assert f"{null}:{len(lines) - 1}: measurement field 'median_ms' is null" in capsys.readouterr().err
    assert store.exists()  # an existing store is kept as it was
