"""How much the host of this machine slows it down, with nothing else running in it (docs/measuring.md).

On a virtual machine, other tenants of the host share its cores' SMT siblings,
caches and memory bandwidth without showing in ``/proc/stat``. This benchmark
probes for them the way the collector's host gate does
(``tvm_ledg.measure.quiet.HostSpeed``): every ``--interval`` seconds, after
the sleep, a *cold* probe right away, then 5 ms of spinning and a *warm* probe
(the gate's probe). A probe is the best of 3 runs of a fixed 1 ms pure-Python
loop; its slowdown is its time over the fastest probe this boot has seen (the
memory the collector shares, so both read the same scale).

``ForeignCpu`` watches every interval: a probe during which other processes of
this machine used more than ``--max-foreign`` cores is marked and left out
(it would measure them, not the host). Steal time from ``/proc/stat`` is summed.

Reported: quantiles of the warm slowdown; the share of probes above the
collector's gate (``QuietPolicy.max_slowdown``); slow bursts (consecutive slow
probes: count, median and longest duration); the median cold / warm ratio
(an idle vCPU runs its first milliseconds slow, hence the gate's spin); steal
seconds. Probes are appended to ``<out>.probes.jsonl`` as they are taken, so
an interrupted run goes on where it stopped until ``--minutes`` of probes are
in. Plot: ``<out>.png``. Run it alone: anything else running makes probes
foreign. Usage::

    python -m benchmarks.host_noise --minutes 20 --out docs/results/host_noise
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import REPO, md_table, parser, start, write_results

from tvm_ledg.measure.quiet import HOST_SPEED, WARM_S, ForeignCpu, QuietPolicy

_STEAL_FIELD = 7  # user nice system idle iowait irq softirq steal (proc(5))


def main() -> None:
    ap = parser(__doc__, REPO / "docs" / "results" / "host_noise")
    ap.add_argument("--minutes", type=float, default=20.0, help="probing time in total, over resumed runs")
    ap.add_argument("--interval", type=float, default=0.5, help="seconds between probes (the gate's poll)")
    ap.add_argument("--max-foreign", type=float, default=0.05, help="other processes' cores that void a probe")
    args, started = start(ap)
    log = args.out.with_suffix(".probes.jsonl")
    log.parent.mkdir(parents=True, exist_ok=True)
    probes = _read(log)
    gate = QuietPolicy().max_slowdown
    HOST_SPEED.slowdown(WARM_S)  # calibrates (or recalls this boot's best time) before the first probe
    wanted = int(args.minutes * 60 / args.interval)
    from tqdm import tqdm

    with log.open("a") as sink, tqdm(total=wanted, initial=min(len(probes), wanted), unit="probe") as bar:
        while len(probes) < wanted:
            steal0 = _steal_s()
            with ForeignCpu() as cpu:
                time.sleep(args.interval)
                cold = HOST_SPEED.probe()
                spin_end = time.perf_counter() + WARM_S
                while time.perf_counter() < spin_end:
                    pass
                warm = HOST_SPEED.probe()
            best = HOST_SPEED.best
            probe = {"t": time.time(), "cold": cold / best, "warm": warm / best, "best_s": best,
                     "foreign_cores": cpu.cores, "steal_s": _steal_s() - steal0}
            sink.write(json.dumps(probe) + "\n")
            sink.flush()
            probes.append(probe)
            bar.update()
            bar.set_postfix(warm=f"{probe['warm']:.2f}x", refresh=False)
    HOST_SPEED.slowdown()  # stores an improved best time for the collector
    report(probes, args, gate, started)


def _read(path: Path) -> list[dict[str, Any]]:
    """Probes of earlier runs; a line cut short by an interruption is dropped."""
    if not path.is_file():
        return []
    probes = []
    for line in path.read_text().splitlines():
        try:
            probes.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return probes


def _steal_s() -> float:
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return 0.0
    return int(fields[1 + _STEAL_FIELD]) / 100 if len(fields) > 1 + _STEAL_FIELD else 0.0


def bursts(times: np.ndarray, slow: np.ndarray, max_gap_s: float) -> list[float]:
    """Durations of runs of consecutive slow probes (a gap longer than ``max_gap_s`` ends a run);
    a single slow probe counts as one interval."""
    out: list[float] = []
    start = prev = None
    for t, s in zip(times, slow):
        if s and start is not None and t - prev <= max_gap_s:
            prev = t
            continue
        if start is not None:
            out.append(prev - start + max_gap_s / 2)
            start = None
        if s:
            start = prev = t
    if start is not None:
        out.append(prev - start + max_gap_s / 2)
    return out


def report(probes: list[dict[str, Any]], args: argparse.Namespace, gate: float, started: float) -> None:
    kept = [p for p in probes if p["foreign_cores"] is None or p["foreign_cores"] <= args.max_foreign]
    times = np.array([p["t"] for p in kept])
    warm = np.array([p["warm"] for p in kept])
    cold = np.array([p["cold"] for p in kept])
    slow = warm > gate
    runs = bursts(times, slow, 2 * args.interval)
    q = {f"p{k}": float(np.percentile(warm, k)) for k in (5, 25, 50, 75, 95)}
    summary = {
        "probes": len(probes), "foreign_probes": len(probes) - len(kept),
        "hours": [time.strftime("%Y-%m-%d %H:%M", time.gmtime(t)) for t in (times.min(), times.max())],
        "gate": gate, "slow_share": float(slow.mean()), "warm_quantiles": q, "worst": float(warm.max()),
        "bursts": len(runs), "burst_median_s": float(np.median(runs)) if runs else 0.0,
        "burst_longest_s": float(max(runs)) if runs else 0.0,
        "cold_over_warm_median": float(np.median(cold / warm)),
        "cold_over_warm_p90": float(np.percentile(cold / warm, 90)),
        "steal_s": float(sum(p["steal_s"] for p in kept)),
        "best_ms": float(min(p["best_s"] for p in kept)) * 1e3,
    }
    _plot(times, warm, gate, args.out.with_suffix(".png"))
    body = [
        f"{len(kept)} probes over {summary['hours'][0]} to {summary['hours'][1]} UTC, one every "
        f"{args.interval} s ({summary['foreign_probes']} left out: other processes ran). Slowdown: probe "
        f"time over this boot's fastest probe ({summary['best_ms']:.3f} ms), after 5 ms of spinning.",
        "",
        md_table(["p5", "p25", "median", "p75", "p95", "worst", f"share > {gate}x (the gate)"],
                 [[*(f"{v:.2f}x" for v in q.values()), f"{summary['worst']:.2f}x", f"{summary['slow_share']:.1%}"]]),
        "",
        md_table(["slow bursts", "median length", "longest", "steal time", "cold / warm probe (median, p90)"],
                 [[summary["bursts"], f"{summary['burst_median_s']:.1f} s", f"{summary['burst_longest_s']:.0f} s",
                   f"{summary['steal_s']:.2f} s",
                   f"{summary['cold_over_warm_median']:.2f}, {summary['cold_over_warm_p90']:.2f}"]]),
        "",
        "A burst is a run of consecutive probes above the gate; its length is rounded to the probe interval. "
        "Cold probes run right after the sleep, before the spin. Plot: "
        f"`{args.out.with_suffix('.png').name}`.",
    ]
    write_results(args.out, "Host noise: a fixed loop's slowdown on an otherwise idle machine", "\n".join(body),
                  {"settings": {"interval": args.interval, "minutes": args.minutes, "max_foreign": args.max_foreign},
                   "summary": summary}, started)
    print("\n".join(body))


def _plot(times: np.ndarray, warm: np.ndarray, gate: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3))
    ax.plot((times - times.min()) / 60, warm, ".", markersize=2)
    ax.axhline(gate, color="red", linewidth=0.8, label=f"collector's gate ({gate}x)")
    ax.set_xlabel("minutes (gaps: resumed runs)")
    ax.set_ylabel("loop time / best")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
