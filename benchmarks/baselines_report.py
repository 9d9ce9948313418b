"""The bar the cost model must clear: baseline rows of every protocol in one report.

Reads the results the protocol benchmarks wrote with their baseline-only
options (``in_domain.py --protocol nb201-permutation``, ``hardware_transfer.py
--baselines-only`` with ``--grouping device`` and ``--grouping class``,
``measured_dataset.py --baselines-only``) from ``--parts`` and writes
``<out>.md`` and ``<out>.json``: a summary table per protocol, then each
protocol's own tables with the command, machine and date that produced them.
A protocol whose results are missing is listed as not run. Usage::

    python -m benchmarks.baselines_report --parts docs/results/baselines.parts --out docs/results/baselines
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.common import md_table, parser, start, write_results

# file stem in --parts -> section title
PARTS = {
    "in_domain_nb201": "In-domain NAS-Bench-201 (fixed permutation split, every HELP NB201 device)",
    "leave_one_device_out": "Leave-one-device-out (every device held out in turn)",
    "class_out": "Device-class-out (one device class held out per fold)",
    "measured_dataset": "Measured zoo (local-zen3): in-domain, leave-one-family-out, leave-one-target-out",
}
METHODS = (
    "Methods. `flops`: per device `log ms = a + b log FLOPs`; zero-shot, one pooled slope and the intercept "
    "from a ridge on the descriptor; k shots, fitted on the k samples. `proxy`: zero-shot, the training device "
    "with the most similar descriptor, its measurements rescaled by a descriptor ridge; k shots, the training "
    "device that ranks the k samples best, log-linearly calibrated on them. `additive` "
    "(`cost_model/linear_baselines.py`): per device, ridge of log latency on log1p of count, FLOPs and bytes per "
    "kernel kind (op name + kernel size), standardized and clipped to the training range, penalty chosen on the "
    "validation rows; k shots, ridge with penalty 10 (fixed, not tuned) toward the mean weights of the training "
    "devices; zero-shot not applicable. `onehot-ridge`: NB201 only, per device, ridge (lambda 1) of log latency "
    "on the 30 one-hot edge-op features and their 435 pairwise products.")
NOT_RUN = ("Not in these runs: GraphSAGE, NN-Former static masks and the one-hot MLP (torch baselines: a "
           "trained model per fold, too slow for 43 folds on the shared 2-core machine at the time; GraphSAGE's "
           "measured-zoo numbers are in `measured_dataset.md`), and LeDG-Former itself (each benchmark adds its "
           "row when run without the baseline-only option).")


def main() -> None:
    ap = parser(__doc__, Path("docs/results/baselines"))
    ap.add_argument("--parts", type=Path, default=Path("docs/results/baselines.parts"))
    args, started = start(ap)
    found = {stem: json.loads((args.parts / f"{stem}.json").read_text())
             for stem in PARTS if (args.parts / f"{stem}.json").is_file()}
    lines = ["Baseline rows of the protocols the cost model is judged on; a model row belongs in the same table "
             "(same splits, folds and metrics). MAPE and median APE are in %; `median APE` columns are means over "
             "devices of each device's median absolute percentage error unless said otherwise. `-`: not "
             "applicable (a per-device model has no rows of a device it never measured).", "", METHODS, "", NOT_RUN, "",
             "A protocol's folds may come from several processes of the same command, each given part of the "
             "devices with `--hold`; its tables are then written from the fold files with `--report-only` (the "
             "command shown). Every fold file records the settings it was made with.", "",
             "## Summary", ""]
    summary: dict[str, Any] = {}
    if "in_domain_nb201" in found:
        summary["in_domain_nb201"] = _nb201_summary(found["in_domain_nb201"], lines)
    for stem in ("leave_one_device_out", "class_out"):
        if stem in found:
            summary[stem] = _transfer_summary(PARTS[stem], found[stem], lines)
    if "measured_dataset" in found:
        summary["measured_dataset"] = _measured_summary(found["measured_dataset"], lines)
    missing = [PARTS[s] for s in PARTS if s not in found]
    if missing:
        lines += ["Not run: " + "; ".join(missing) + ".", ""]
    for stem, part in found.items():
        env = part["environment"]
        body = (args.parts / f"{stem}.md").read_text().split("\n", 6)[-1]  # drop the part's own header
        lines += [f"## {PARTS[stem]}", "", f"Command: `{env['command']}`  ",
                  f"Date: {env['date']}; wall time {env['wall_seconds']:.0f} s. Raw numbers: "
                  f"`{args.parts.name}/{stem}.json`.", "", *[_demote(line) for line in body.splitlines()], ""]
    write_results(args.out, "Baselines: the bar the cost model must clear", "\n".join(lines),
                  {"summary": summary, "parts": {s: str(args.parts / f"{s}.json") for s in found}}, started)
    print("\n".join(lines[:40]))


def _demote(line: str) -> str:
    """A part's headings one level down, under its section."""
    return "#" + line if line.startswith("#") else line


def _nb201_summary(part: dict[str, Any], lines: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for size, entry in part["results"].items():
        rows = []
        for method, rep in entry["methods"].items():
            m = rep["mean"]
            out[f"n{size}/{method}"] = {k: m[k] for k in ("spearman", "mape", "median_ape", "acc10")}
            rows.append([method, m["spearman"], m["mape"], m["median_ape"], m["acc10"]])
        lines += [f"In-domain NB201, N = {size}, mean over {len(next(iter(entry['methods'].values()))['per_target'])} "
                  "devices:", "", md_table(["method", "Spearman", "MAPE %", "median APE %", "Acc10"], rows), ""]
    return out


def _transfer_summary(title: str, part: dict[str, Any], lines: list[str]) -> dict[str, Any]:
    rows = [[key.split("/")[0].replace("_", "-"), key.split("/")[1], m["devices"], m["spearman"], m["mape"],
             m.get("median_ape", "-"), m.get("median_median_ape", "-")] for key, m in part["summary"].items()]
    lines += [f"{title}:", "", md_table(["setting", "method", "devices", "Spearman", "MAPE %", "median APE %",
                                         "median over devices of median APE %"], rows), ""]
    return part["summary"]


def _measured_summary(part: dict[str, Any], lines: list[str]) -> dict[str, Any]:
    methods = sorted({m for p in part["summary"].values() for m in p})
    rows = []
    for protocol, per_method in part["summary"].items():
        rows.append([protocol, *[_fmt(per_method.get(m), "mape") for m in methods],
                     *[_fmt(per_method.get(m), "spearman") for m in methods]])
    lines += ["Measured zoo (mean over folds):", "",
              md_table(["protocol", *[f"{m} MAPE %" for m in methods], *[f"{m} Spearman" for m in methods]], rows),
              ""]
    return part["summary"]


def _fmt(entry: dict[str, Any] | None, key: str) -> Any:
    return "-" if entry is None else entry[key]


if __name__ == "__main__":
    main()
