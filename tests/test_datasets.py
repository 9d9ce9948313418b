"""The committed measured dataset: `tvm-ledg db import` loads it, it holds what the docs say, and
its networks are the ones the zoo builds today (so a zoo change that would silently re-label it fails here)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cost_model.measurement_store import MeasurementStore
from tvm_ledg.cli import main
from tvm_ledg.spaces.zoo import FAMILIES

DATASET = Path(__file__).resolve().parents[1] / "datasets" / "local-zen3.jsonl.gz"
TARGETS = {"local-zen3-onnxruntime-t1", "local-zen3-onnxruntime-t2", "local-zen3-pytorch-t1",
           "local-zen3-pytorch-t2", "local-zen3-tvm-untuned-generic", "local-zen3-tvm-untuned-znver3"}


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dataset") / "m.sqlite"
    assert main(["db", "import", str(DATASET), "--db", str(path)]) == 0
    return path


def test_the_dataset_has_1500_networks_on_six_targets(db: Path) -> None:
    stats = MeasurementStore(db, readonly=True).stats()
    assert stats["graphs"] >= 1500 and stats["networks"] >= 1500
    assert set(stats["per_family"]) == set(FAMILIES) and min(stats["per_family"].values()) >= 100
    assert set(stats["per_target"]) == TARGETS
    assert all(t["measurements"] >= 1500 for t in stats["per_target"].values())


def test_every_network_is_measured_on_every_target_once(db: Path) -> None:
    con = sqlite3.connect(db)
    per_graph = con.execute("SELECT graph_hash, COUNT(*), COUNT(DISTINCT target_hash) FROM measurements "
                            "GROUP BY graph_hash").fetchall()
    assert {(n, k) for _, n, k in per_graph} == {(6, 6)}
    assert con.execute("SELECT COUNT(DISTINCT protocol) FROM measurements").fetchone()[0] == 1


def test_measurements_are_sane_and_carry_their_environment(db: Path) -> None:
    for m in MeasurementStore(db, readonly=True).measurements():
        assert 0 < m.min_ms <= m.median_ms and m.runs >= 3 and 0 <= m.cv < 1, m
        env = m.environment
        assert env["cores"] == 2 and env["versions"]["apache-tvm"] == "0.27.0.post1" and "avx2" in env["cpu_flags"]


def test_networks_are_the_ones_the_zoo_builds(db: Path) -> None:
    """The smallest network of three families, rebuilt and lowered now, has the stored graph hash."""
    from tvm_ledg.networks import network_graph

    con = sqlite3.connect(db)
    for family in ("nb201", "squeezenet", "transformer"):
        spec, graph_hash = con.execute(
            "SELECT n.spec, n.graph_hash FROM networks n JOIN graphs g ON g.hash = n.graph_hash "
            "WHERE n.family = ? ORDER BY g.num_nodes, n.spec LIMIT 1", (family,)).fetchone()
        assert network_graph(spec).content_hash() == graph_hash, spec  # at the batch the spec carries


def test_the_committed_export_is_whole_and_is_what_db_export_writes(db: Path, tmp_path: Path) -> None:
    """It ends with the end record (import requires it) and re-exporting its store gives the same bytes, so the
    committed file is reproducible and a re-export after new measurements only changes with the data."""
    out = tmp_path / DATASET.name
    assert main(["db", "export", str(out), "--db", str(db)]) == 0
    assert out.read_bytes() == DATASET.read_bytes()
