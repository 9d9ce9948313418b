"""Shared pieces of the benchmark scripts: command line, environment record, result files, data assembly.

Benchmarks run as modules from the repository root (``python -m benchmarks.<name>``), so the
repository's packages import without installing them and without touching ``sys.path``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import shlex
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from tqdm import tqdm

from cost_model.io import write_text_atomic
from targets.errors import DataError
from tvm_ledg.measure.environment import environment as measure_environment
from tvm_ledg.measure.quiet import MachineBusy

REPO = Path(__file__).resolve().parents[1]
EXIT_BUSY = 3  # the exit code that asks for the same command again on a quiet machine (run_measured.sh loops on it)

EXTRA_PACKAGES = ("scipy", "transformers")  # used by benchmarks, not by measurements

# The network model every accuracy benchmark trains, chosen on validation devices and validation
# architectures only (docs/results/validation_sweep/): without the ranking term and dropout the
# validation log-RMSE reaches 0.097 instead of stalling at 0.20. Epochs are each benchmark's option.
NETWORK_ENCODER: dict[str, Any] = {"kind": "builtin", "dim": 32}
NETWORK_MODEL: dict[str, Any] = {"dim": 32, "layers": 2, "heads": 4, "factors": 16, "dropout": 0.0}
NETWORK_TRAIN: dict[str, Any] = {"batch_size": 512, "lr": 3e-3, "rank_weight": 0.0}


def parser(doc: str, out: Path, *, threads: int | None = None, seed: int | None = None,
           data_root: bool = False) -> argparse.ArgumentParser:
    """A benchmark's argument parser: the first line of its docstring ``doc`` as description, ``--out`` (the
    report's path without suffix, default ``out``) and the options most benchmarks share, each only where
    asked for: ``--threads`` (torch threads), ``--seed`` and ``--data-root`` (the public data)."""
    ap = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    ap.add_argument("--out", type=Path, default=out, help="report path without suffix (.md and .json are written)")
    if threads is not None:
        ap.add_argument("--threads", type=int, default=threads, help="torch threads")
    if seed is not None:
        ap.add_argument("--seed", type=int, default=seed)
    if data_root:
        ap.add_argument("--data-root", default=None,
                        help="public data root (default: $TVM_LEDG_DATA_ROOT, then the documented default)")
    return ap


def start(ap: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, float]:
    """The parsed arguments and the start time (``write_results`` reports the wall time from it); torch runs
    on ``--threads`` threads where the benchmark has that option, set before any work."""
    args = ap.parse_args(argv)
    if getattr(args, "threads", None) is not None:
        import torch

        torch.set_num_threads(args.threads)
    return args, time.time()


@contextlib.contextmanager
def stop_when_busy(run: str) -> Iterator[None]:
    """End the process with ``EXIT_BUSY`` when ``run`` meets a busy machine, leaving it and every later run to the
    next invocation (finished runs are kept in their part files).

    Later runs are not tried in the same process: a process that once read the host as slow (the runner's
    worker, or this one: ``StaleProcess``) tends to go on reading it so, and a new invocation's fresh
    processes measure.
    """
    try:
        yield
    except MachineBusy as exc:
        tqdm.write(f"{run}: machine busy, left for the next run ({exc})")
        print("nothing written beyond the finished runs: run the same command again (they are kept) on a quiet "
              "machine", file=sys.stderr)
        sys.exit(EXIT_BUSY)


def command() -> str:
    """The command line that ran this process, as one would type it again (``python -m benchmarks.<name>``)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    argv = sys.argv[1:] if spec is not None else sys.argv
    prefix = ["-m", spec.name] if spec is not None else []
    return "python " + " ".join(shlex.quote(a) for a in [*prefix, *argv])


def environment() -> dict[str, Any]:
    """The measurement environment (CPU, cores, Python, library versions) plus what a benchmark run adds:
    date, command, torch threads and the versions of ``EXTRA_PACKAGES``."""
    import torch

    env = dict(measure_environment())  # a copy: the measurement record is cached and shared
    env["versions"] = {**env["versions"], **{name: _version(name) for name in EXTRA_PACKAGES}}
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command(),
        **env,
        "torch_threads": torch.get_num_threads(),
    }


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def write_results(out: Path, title: str, markdown_body: str, payload: Mapping[str, Any], started: float) -> None:
    """``<out>.md`` and ``<out>.json`` with the command, machine and versions in both."""
    env = environment()
    env["wall_seconds"] = round(time.time() - started, 1)
    payload = {"title": title, "environment": env, **payload}
    write_text_atomic(out.with_suffix(".json"), json.dumps(payload, indent=1, default=float))
    header = [
        f"# {title}",
        "",
        f"Command: `{env['command']}`  ",
        f"Machine: {env['cpu']}, {env['cores']} cores, torch threads {env['torch_threads']}; "
        f"Python {env['python']}; " + ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v) + "  ",
        f"Date: {env['date']}; wall time {env['wall_seconds']:.0f} s. Raw numbers: `{out.with_suffix('.json').name}`.",
        "",
    ]
    write_text_atomic(out.with_suffix(".md"), "\n".join(header) + "\n" + markdown_body.rstrip() + "\n")


def load_fold(path: Path, settings: Mapping[str, Any], out: Path) -> dict[str, Any] | None:
    """A finished fold's results; None when absent. A fold made with other settings is an error, not reused.

    Fold files written before folds recorded their settings are checked against the settings in
    ``<out>.json``, the report of the run that made them (those it records: the command-line ones).
    """
    if not path.is_file():
        return None
    done = json.loads(path.read_text())
    now = json.loads(json.dumps(settings))  # as they read back from a fold file
    if "settings" in done:
        then, source = done["settings"], str(path)
        differ = sorted(k for k in then.keys() | now.keys() if then.get(k) != now.get(k))
    else:
        report = out.with_suffix(".json")
        if not report.is_file():
            raise DataError(f"{path} records no settings, and {report}, which would, is missing; "
                            "delete the fold file or choose another --out")
        then, source = json.loads(report.read_text()).get("settings", {}), f"{path} (settings from {report})"
        differ = sorted(k for k in now if k in then and str(then[k]) != str(now[k]))  # older reports: str values
    if differ:
        changes = "; ".join(f"{k} {then.get(k)!r}, now {now.get(k)!r}" for k in differ)
        raise DataError(f"{source}: made with other settings ({changes}); delete it or choose another --out")
    return done


def open_store(path: Path, tmp: Path) -> Any:
    """A ``MeasurementStore`` on a store (read-only) or on an export (``.jsonl.gz``, imported into ``tmp``)."""
    from cost_model.measurement_store import MeasurementStore

    if path.name.endswith(".jsonl.gz"):
        store = MeasurementStore(tmp / "m.sqlite")
        store.import_jsonl(path)
        return store
    return MeasurementStore(path, readonly=True)


def md_table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
    return str(v)
