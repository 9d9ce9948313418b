"""Shared pieces of the benchmark scripts: environment record, result files, data assembly."""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from cost_model.graph import write_text_atomic  # noqa: E402

PACKAGES = ("torch", "numpy", "scipy", "apache-tvm", "transformers")


def environment() -> dict[str, Any]:
    """Machine and library versions, recorded next to every result."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    import torch

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "versions": versions,
    }


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
