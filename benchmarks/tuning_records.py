"""Tuning-record database for the program-level cost model: MetaSchedule on the workload suite.

For every workload of ``tvm_ledg.tuning.workloads`` and every local CPU target,
``ms.tune_tir`` measures ``--trials`` candidates with the project's CPU
builder/runner pair (``make_builder`` / ``make_runner(desc.threads)``, whose
busy-machine check times a candidate again when other processes used the CPU
meanwhile; the wait is left out of ``tune_seconds``) and the chosen search
(``xgb``: MetaSchedule's evolutionary search guided by its XGBoost model;
``random``: the same search with random scores, for a wider spread of
schedule quality). XGBoost scores at random until it holds
``num_warmup_samples`` measurements: MetaSchedule's default of 100 would leave
a 128-trial search random for its first four rounds of 32, so ``--xgb-warmup``
defaults to one round. At the first pair whose machine stayed busy (``MachineBusy``:
other processes kept using the CPU; ``--max-wait``) the run ends with exit
code 3 without writing ``--out``, leaving that pair and the later ones
unfinished; run it again (``run_measured.sh`` loops on exit code 3). Each
(workload, target) pair tunes in its own work_dir,
``<work-dir>/<target>/<workload>/``; once it finishes, its successful
records become program records (``program_records.jsonl.gz``) and
``finished.json`` marks the pair done, so an interrupted run resumes at the
first unfinished pair (an unfinished pair starts over: MetaSchedule cannot
resume a search).

Finally every pair's records are exported to ``--out`` (gzip JSON lines, one
``cost_model.tuning_records.ProgramRecord`` per line: workload, target,
program graph of the scheduled PrimFunc, run times; written atomically) and
``<out>.manifest.json`` records the command, machine, settings and per-pair
counts. Collection command of the committed file::

    python -m benchmarks.tuning_records --trials 128 --max-wait 0 --work-dir .cache/tuning-records \\
        --out datasets/tuning-records.jsonl.gz
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from benchmarks.common import environment, parser, start, stop_when_busy

import targets as target_registry
from cost_model.io import write_text_atomic
from cost_model.tuning_records import ProgramRecord, read_tuning_records, write_tuning_records
from targets.errors import DataError
from tvm_ledg.measure.quiet import QuietPolicy
from tvm_ledg.tuning import database_records, get_workload, list_workloads, make_builder, make_runner
from tvm_ledg.tuning.search import SEARCH_COST_MODELS, search_cost_model, tune

TARGETS = ("local-zen3-tvm-tuned-znver3-t1", "local-zen3-tvm-tuned-znver3-t2")
FINISHED = "finished.json"
PAIR_RECORDS = "program_records.jsonl.gz"


def add_search_arguments(ap: argparse.ArgumentParser) -> None:
    """The options of the search both tuning benchmarks run: rounds, XGBoost's warm-up, the wait for a quiet
    machine, and the evolutionary search's population."""
    ap.add_argument("--trials-per-round", type=int, default=32)
    ap.add_argument("--xgb-warmup", type=int, default=None,
                    help="measurements before XGBoost scores by its model (default: one round)")
    ap.add_argument("--max-wait", type=float, default=600.0,
                    help="seconds one candidate may wait for a quiet machine (0: no limit)")
    ap.add_argument("--population", type=int, default=512, help="evolutionary search population")


def main() -> None:
    ap = parser(__doc__, Path("datasets/tuning-records.jsonl.gz"), seed=0)
    ap.add_argument("--workloads", nargs="+", default=list_workloads(), help="default: the whole suite")
    ap.add_argument("--targets", nargs="+", default=list(TARGETS))
    ap.add_argument("--trials", type=int, default=128, help="measured candidates per (workload, target)")
    add_search_arguments(ap)
    ap.add_argument("--cost-model", choices=SEARCH_COST_MODELS, default="xgb")
    ap.add_argument("--work-dir", type=Path, default=Path(".cache/tuning-records"))
    args, started = start(ap)
    workloads = [get_workload(name) for name in args.workloads]
    descs = [target_registry.load(name) for name in args.targets]
    xgb_warmup = args.trials_per_round if args.xgb_warmup is None else args.xgb_warmup
    settings = {"trials": args.trials, "trials_per_round": args.trials_per_round, "population": args.population,
                "cost_model": args.cost_model, "seed": args.seed,
                "xgb_warmup": xgb_warmup if args.cost_model == "xgb" else None}
    quiet = QuietPolicy(max_wait_s=args.max_wait or None)
    builder = make_builder()
    pairs = [(w, d) for d in descs for w in workloads]
    summary: list[dict[str, Any]] = []
    with tqdm(pairs, desc="tuning", unit="task", dynamic_ncols=True) as bar:
        runners: dict[int, Any] = {}
        for workload, desc in bar:
            bar.set_postfix_str(f"{workload.name} on {desc.name}")
            work_dir = args.work_dir / desc.name / workload.name
            marker = _finished(work_dir, settings)
            if marker is None:
                if work_dir.exists():
                    tqdm.write(f"{work_dir}: unfinished run, starting it over")
                    shutil.rmtree(work_dir)
                work_dir.mkdir(parents=True)
                if desc.threads not in runners:
                    runners[desc.threads] = make_runner(desc.threads, quiet=quiet)
                runner = runners[desc.threads]
                earlier_waits, t0 = len(runner.waits), time.time()
                with stop_when_busy(f"{workload.name} on {desc.name}"):
                    tune(workload.build(), desc, work_dir, args.trials,
                         cost_model=search_cost_model(args.cost_model, args.seed, xgb_warmup), seed=args.seed,
                         trials_per_round=args.trials_per_round, population=args.population, builder=builder,
                         runner=runner)
                retakes = runner.waits[earlier_waits:]  # busy-machine retakes: waiting is not tuning time
                tune_s = time.time() - t0 - sum(s for _, s in retakes)
                records = database_records(work_dir, workload.name, desc.name)
                write_tuning_records(work_dir / PAIR_RECORDS, records)
                committed = sum(1 for line in (work_dir / "database_tuning_record.json").open() if line.strip())
                marker = {**settings, "workload": workload.name, "target": desc.name, "committed": committed,
                          "measured": len(records), "best_ms": min((r.mean_run_secs for r in records),
                                                                  default=float("nan")) * 1e3,
                          "tune_seconds": round(tune_s, 1), "busy_retakes": len(retakes)}
                write_text_atomic(work_dir / FINISHED, json.dumps(marker, indent=1))
                tqdm.write(f"{workload.name} on {desc.name}: {len(records)}/{committed} measured, best "
                           f"{marker['best_ms']:.4g} ms, {tune_s:.0f} s")
            summary.append(marker)
    records: list[ProgramRecord] = []
    for marker in summary:
        records += read_tuning_records(args.work_dir / marker["target"] / marker["workload"] / PAIR_RECORDS)
    count = write_tuning_records(args.out, records)
    manifest = {"environment": environment(), "settings": settings, "records": count, "pairs": summary,
                "wall_seconds": round(time.time() - started, 1)}
    write_text_atomic(_manifest_path(args.out), json.dumps(manifest, indent=1))
    print(f"{count} records of {len(summary)} (workload, target) pairs -> {args.out}")


def _finished(work_dir: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The pair's finished marker; None if it has not finished. A pair finished with other settings is an error."""
    path = work_dir / FINISHED
    if not path.is_file():
        return None
    marker = json.loads(path.read_text())
    differing = [f"{k} {marker.get(k)!r}, now {v!r}" for k, v in settings.items() if marker.get(k) != v]
    if differing:
        raise DataError(f"{path}: finished with other settings ({'; '.join(differing)}); "
                        f"delete {work_dir} or use another --work-dir")
    return marker


def _manifest_path(out: Path) -> Path:
    name = out.name.removesuffix(".gz").removesuffix(".jsonl")
    return out.with_name(name + ".manifest.json")


if __name__ == "__main__":
    main()
