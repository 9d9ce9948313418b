"""The pieces every benchmark shares: command line, recorded command, busy-machine exit, tuning part files."""

from __future__ import annotations

import argparse
import json
import sys
import types
from pathlib import Path

import pytest
import torch

import targets
from benchmarks.common import EXIT_BUSY, command, parser, start, stop_when_busy
from benchmarks.tuning_pretrain import pretrained_model
from benchmarks.tuning_results import CurveRun, PredictedRun
from cost_model.tuning_records import read_tuning_records
from targets.errors import DataError
from tvm_ledg.measure.quiet import MachineBusy

REPO = Path(__file__).resolve().parents[1]
PARTS = REPO / "docs" / "results" / "tuning_curves.parts"


def test_parser_adds_out_and_only_the_shared_options_asked_for() -> None:
    ap = parser("What it measures.\n\nMore text.", Path("docs/results/x"), threads=2, seed=0, data_root=True)
    assert ap.description == "What it measures."
    args = ap.parse_args([])
    assert (args.out, args.threads, args.seed, args.data_root) == (Path("docs/results/x"), 2, 0, None)
    bare = vars(parser("Doc.", Path("y")).parse_args(["--out", "z"]))
    assert bare == {"out": Path("z")}


def test_start_sets_torch_threads_from_the_option() -> None:
    before = torch.get_num_threads()
    try:
        args, started = start(parser("Doc.", Path("y"), threads=2), ["--threads", "1"])
        assert args.threads == 1 and torch.get_num_threads() == 1 and started > 0
    finally:
        torch.set_num_threads(before)


def test_command_is_recorded_as_it_was_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/repo/benchmarks/speed.py", "--out", "a b"])
    monkeypatch.setitem(sys.modules, "__main__", types.SimpleNamespace(__spec__=types.SimpleNamespace(
        name="benchmarks.speed")))
    assert command() == "python -m benchmarks.speed --out 'a b'"
    monkeypatch.setitem(sys.modules, "__main__", types.SimpleNamespace(__spec__=None))  # python path/to/script.py
    assert command() == "python /repo/benchmarks/speed.py --out 'a b'"


def test_a_busy_machine_ends_the_process_with_the_exit_code_that_asks_for_a_rerun() -> None:
    with pytest.raises(SystemExit) as info:
        with stop_when_busy("w xgb seed 0"):
            raise MachineBusy("still busy after 600 s")
    assert info.value.code == EXIT_BUSY == 3
    with pytest.raises(ValueError, match="not busy"):
        with stop_when_busy("w xgb seed 0"):
            raise ValueError("not busy")


@pytest.mark.parametrize("kind, folder", [(CurveRun, "curves"), (PredictedRun, "predicted")])
def test_kept_tuning_runs_read_back_and_write_the_same_json(kind: type, folder: str) -> None:
    """Runs in progress resume from part files written before the results were typed."""
    paths = sorted((PARTS / folder).glob("*.json"))
    assert paths
    for path in paths:
        data = json.loads(path.read_text())
        assert kind.from_json(data, path).to_json() == data


def test_a_part_file_missing_a_field_is_named(tmp_path: Path) -> None:
    path = PARTS / "curves" / "layer_norm_transformer__xgb__s0.json"
    data = json.loads(path.read_text())
    del data["run_secs"]
    with pytest.raises(DataError, match=r"x\.json: not a CurveRun part file \(missing run_secs\)"):
        CurveRun.from_json(data, tmp_path / "x.json")


def test_a_fold_model_is_saved_whole_and_reused_only_for_the_same_pre_training(tmp_path: Path) -> None:
    records = [r for r in read_tuning_records(REPO / "datasets" / "tuning-records.jsonl.gz")
               if r.workload == "softmax_attention"][:24]
    target = records[0].target
    args = argparse.Namespace(pretrain_epochs=1, pretrain_rows_per_epoch=16)
    path = tmp_path / "fold0"
    saved = pretrained_model(records, [target], {target: targets.load(target)}, path, {"id": 1}, args, {"fold": 0})
    assert saved["pretraining"] == {"id": 1} and saved["train_rows"] == 24 and saved["fold"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fold0"]  # no temporary or resume folder left
    again = pretrained_model(records, [target], {}, path, {"id": 1}, args, {"fold": 0})
    assert again == saved  # kept, not trained again (no descriptors were given to train with)
    with pytest.raises(DataError, match=r"fold0: pre-trained with \{'id': 1\}, now \{'id': 2\}"):
        pretrained_model(records, [target], {}, path, {"id": 2}, args, {"fold": 0})
