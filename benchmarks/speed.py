"""What a user gets: prediction speed from spec strings, next to the cost of measuring the same networks.

For each architecture space (NB201, FBNet, OFA: specs never seen before, an
empty cache root) and for zoo networks (``zoo:<family>:<i>``, lowered through
TVM), on ``--threads`` torch threads:

* the stages: spec -> model inputs (as ``predict_table`` builds them; also through
  the operator graph, for comparison), collate, model forward (the shipped
  checkpoint on featurized graphs, collate subtracted), and everything but the
  forward, in specs per second, each from cold in-process caches;
* end to end: ``predict_table(specs, target)`` with the model loaded, specs per second;
* measuring a sample of the same networks on this machine with onnxruntime, one
  thread (``tvm_ledg.measure``: ONNX export, session, timing protocol), and the
  ratio of the end-to-end prediction rate to the measuring rate;
* cold processes: ``tvm-ledg predict`` of one spec (empty cache root, then with
  the block templates cached) and of all 15,625 NB201 cells from an ``@list``
  with an empty cache root (wall time and peak resident memory).

Block templates are lowered through TVM once per cache root; that one-time cost
is reported on its own, before the per-spec timings.

Usage::

    python -m benchmarks.speed --out docs/results/speed
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, md_table, write_results

TARGET = "local-zen3-onnxruntime-t1"  # the target the measured sample runs on
GOALS = {"nb201_but_forward": 10_000, "fbnet_but_forward": 2_000, "ofa_but_forward": 2_000,
         "nb201_end_to_end": 1_000, "all_nb201_cli_s": 60.0, "all_nb201_cli_rss_mib": 2048.0}
CHUNK = 1024


def _nb201_cells(n: int, seed: int) -> list[str]:
    """``n`` distinct NB201 cells (of all 15,625), seeded."""
    from tvm_ledg.spaces import nb201

    cells = [f"nb201:{nb201.NB201Cell(tuple(tuple(ops[sum(range(j)):sum(range(j + 1))]) for j in (1, 2, 3))).to_text()}"
             for ops in itertools.product(nb201.OPS, repeat=6)]
    if n >= len(cells):
        return cells
    return random.Random(seed).sample(cells, n)


def _specs(space: str, n: int, seed: int) -> list[str]:
    from benchmarks.space_synth_reference import random_specs

    if space == "nb201":
        return _nb201_cells(n, seed)
    return list(dict.fromkeys(random_specs(space, n, seed=seed)))


def _zoo_specs(n: int) -> list[str]:
    from tvm_ledg.spaces.zoo import FAMILIES

    return [f"zoo:{family}:{seed}" for seed, family in
            itertools.islice(((s, f) for s in itertools.count(1000) for f in FAMILIES), n)]


def _cold_caches() -> None:
    """Forget what this process derived from the space templates (block features, cell layouts, chain
    structures, operator kinds) and read the templates again, untimed: each timed run starts like a
    fresh process whose templates are cached on disk."""
    from cost_model import chain_tensors, featurize
    from tvm_ledg.spaces import synth

    loaded = list(synth._LOADED)
    synth._LOADED.clear()
    for space in loaded:
        synth._space(space)
    chain_tensors._CHAINS.clear()
    chain_tensors.block_structure.cache_clear()
    featurize._KINDS.clear()


def _space_inputs(spec: str) -> Any:
    """A space spec's model inputs, as ``predict_table`` builds them."""
    from tvm_ledg import spaces
    from tvm_ledg.spaces.synth import synthesize_tensors

    parsed = spaces.parse(spec)
    return synthesize_tensors(spec, parsed.arch, parsed.space)


def _stages(specs: list[str], forward_n: int) -> dict[str, float]:
    """Seconds per spec of each stage, each from cold in-process caches; the forward on the first
    ``forward_n`` specs only. ``via_graph_s`` is the one-at-a-time path (``predict_latency``):
    spec -> ``OpGraph`` -> ``graph_tensors``; ``but_forward_cpu_s`` the CPU time of spec -> inputs and
    collate (near the wall time unless the process waited for a core)."""
    import targets
    from cost_model.batch import collate
    from cost_model.featurize import graph_tensors
    from cost_model.graph import paused_gc
    from cost_model.predictor import LatencyPredictor
    from tvm_ledg.networks import network_graph
    from tvm_ledg.predict import DEFAULT_CHECKPOINT

    cache: dict[str, Any] = {}
    model = LatencyPredictor.from_pretrained(DEFAULT_CHECKPOINT, feature_cache=cache)
    relations = model.model_.config.relations
    desc = targets.load(TARGET)
    inputs_s = collate_s = predict_s = cpu_s = 0.0
    forward_specs = 0
    _cold_caches()
    for start in range(0, len(specs), CHUNK):
        chunk = specs[start:start + CHUNK]
        t0, c0 = time.perf_counter(), time.process_time()
        with paused_gc():  # as predict_table builds a chunk's inputs
            tensors = [_space_inputs(spec) for spec in chunk]
        t1 = time.perf_counter()
        for i in range(0, len(tensors), 256):  # the predictor's batch
            collate(tensors[i:i + 256], relations)
        t2 = time.perf_counter()
        inputs_s, collate_s, cpu_s = inputs_s + t1 - t0, collate_s + t2 - t1, cpu_s + time.process_time() - c0
        if forward_specs < forward_n:
            n = min(len(chunk), forward_n - forward_specs)
            cache.clear()
            cache.update(zip(chunk[:n], tensors[:n]))
            t3 = time.perf_counter()
            model.predict({}, {desc.name: desc}, [(spec, desc.name) for spec in chunk[:n]])
            predict_s += time.perf_counter() - t3
            forward_specs += n
            predict_s -= (t2 - t1) * n / len(chunk)  # the predictor collates too: leave the forward alone
        del tensors
    _cold_caches()
    via_graph_s = 0.0
    for start in range(0, len(specs), CHUNK):
        t0 = time.perf_counter()
        with paused_gc():
            graphs = [network_graph(spec) for spec in specs[start:start + CHUNK]]
        [graph_tensors(g) for g in graphs]
        via_graph_s += time.perf_counter() - t0
        del graphs
    per = len(specs)
    out = {"spec_to_inputs_s": inputs_s / per, "collate_s": collate_s / per, "forward_s": predict_s / forward_specs,
           "via_graph_s": via_graph_s / per, "but_forward_cpu_s": cpu_s / per}
    out["but_forward_s"] = out["spec_to_inputs_s"] + out["collate_s"]
    return out


def _end_to_end(specs: list[str]) -> float:
    """Seconds per spec of ``predict_table`` with the model already loaded, from cold in-process caches."""
    from tvm_ledg.predict import load_predictor, predict_table

    load_predictor()
    _cold_caches()
    t0 = time.perf_counter()
    table = predict_table(specs, TARGET)
    elapsed = time.perf_counter() - t0
    assert table.latency_ms.shape == (len(specs), 1)
    return elapsed / len(specs)


def _zoo(specs: list[str]) -> dict[str, float]:
    """Seconds per network of each stage for zoo networks (lowered through TVM; TVM imported before timing)."""
    import targets
    from cost_model.featurize import graph_tensors
    from tvm_ledg import _tvm  # noqa: F401  (TVM's own import is a one-time cost)
    from tvm_ledg.networks import network_graph
    from tvm_ledg.predict import load_predictor

    desc = targets.load(TARGET)
    model = load_predictor()
    graph_s = featurize_s = forward_s = 0.0
    nodes = 0
    for spec in specs:
        t0 = time.perf_counter()
        graph = network_graph(spec)
        t1 = time.perf_counter()
        graph_tensors(graph)
        t2 = time.perf_counter()
        model.predict({spec: graph}, {desc.name: desc}, [(spec, desc.name)])  # featurizes again, then forward
        t3 = time.perf_counter()
        graph_s, featurize_s, forward_s = graph_s + t1 - t0, featurize_s + t2 - t1, forward_s + (t3 - t2) - (t2 - t1)
        nodes += graph.num_nodes
    n = len(specs)
    return {"spec_to_graph_s": graph_s / n, "featurize_s": featurize_s / n, "forward_s": max(forward_s, 0.0) / n,
            "mean_nodes": nodes / n}


def _measuring(specs: list[str]) -> float:
    """Seconds per network to measure ``specs`` here: ONNX export + onnxruntime session + timing protocol."""
    import targets
    from tvm_ledg.measure import MeasureProtocol, Network, measure

    desc = targets.load(TARGET)
    t0 = time.perf_counter()
    for spec in specs:
        measure(Network.from_spec(spec), desc, MeasureProtocol())
    return (time.perf_counter() - t0) / len(specs)


def _run_cli(argv: list[str], cache_root: Path) -> tuple[float, float]:
    """Wall seconds and peak resident MiB of one ``tvm-ledg`` process with its own cache root.

    The peak is the child's ``VmHWM``, polled until it exits: ``wait4``'s ``ru_maxrss``
    would report this (larger) process's peak, inherited through ``fork``.
    """
    env = {**os.environ, "TVM_LEDG_CACHE_DIR": str(cache_root)}
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "tvm_ledg.cli", *argv], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
        peak_kib = 0
        while proc.poll() is None:
            peak_kib = max(peak_kib, _vm_hwm_kib(proc.pid))
            time.sleep(0.05)
        elapsed = time.perf_counter() - t0
        if proc.returncode:
            err.seek(0)
            raise SystemExit(f"tvm-ledg {' '.join(argv[:3])} ... failed ({proc.returncode}): "
                             f"{err.read().decode()[-2000:]}")
    return elapsed, peak_kib / 1024


def _vm_hwm_kib(pid: int) -> int:
    """Peak resident set of a running process (``/proc/PID/status``), 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _goal(value: float, goal: float, higher_is_better: bool = True) -> str:
    met = value >= goal if higher_is_better else value <= goal
    return f"{'met' if met else 'not met'} (goal {'>=' if higher_is_better else '<'} {goal:,.0f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("docs/results/speed"))
    ap.add_argument("--nb201", type=int, default=10_000)
    ap.add_argument("--fbnet", type=int, default=2_000)
    ap.add_argument("--ofa", type=int, default=2_000)
    ap.add_argument("--zoo", type=int, default=50)
    ap.add_argument("--forward", type=int, default=2_048, help="specs per space whose forward is timed on its own")
    ap.add_argument("--measure", default="20,10,10,10", help="networks measured per nb201,fbnet,ofa,zoo")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--all-nb201", action=argparse.BooleanOptionalAction, default=True,
                    help="time `tvm-ledg predict` of all 15,625 NB201 cells (about a minute)")
    args = ap.parse_args()
    started = time.time()
    scratch = Path(tempfile.mkdtemp(prefix="ledg-speed-"))
    os.environ["TVM_LEDG_CACHE_DIR"] = str(scratch / "cache")  # empty: nothing seen before
    import torch

    torch.set_num_threads(args.threads)
    from tvm_ledg.networks import network_graph

    counts = {"nb201": args.nb201, "fbnet": args.fbnet, "ofa": args.ofa}
    specs = {space: _specs(space, n, seed=19) for space, n in counts.items()}
    template_s = {}
    for space, listed in specs.items():  # one-time: block templates lowered through TVM into the cache root
        t0 = time.perf_counter()
        network_graph(listed[0])
        template_s[space] = time.perf_counter() - t0
        print(f"{space}: templates {template_s[space]:.1f} s", flush=True)
    results: dict[str, dict[str, float]] = {}
    for space, listed in specs.items():
        e2e = _end_to_end(listed)
        results[space] = {"specs": len(listed), "end_to_end_s": e2e, **_stages(listed, args.forward)}
        print(space, {k: round(v, 6) for k, v in results[space].items()}, flush=True)
    zoo_specs = _zoo_specs(args.zoo)
    results["zoo"] = {"specs": len(zoo_specs), **_zoo(zoo_specs)}
    zoo = results["zoo"]
    zoo["spec_to_inputs_s"] = zoo["spec_to_graph_s"] + zoo["featurize_s"]
    zoo["end_to_end_s"] = zoo["spec_to_inputs_s"] + zoo["forward_s"]
    print("zoo", zoo, flush=True)
    sample = dict(zip(("nb201", "fbnet", "ofa", "zoo"), (int(x) for x in args.measure.split(","))))
    for space, n in sample.items():
        listed = zoo_specs if space == "zoo" else specs[space]
        results[space]["measure_s"] = _measuring(listed[:n])
        results[space]["measured"] = n
        print(space, "measure", results[space]["measure_s"], flush=True)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    one = specs["nb201"][0]
    cold_root = scratch / "cold"
    cold = {"empty_cache_s": _run_cli(["predict", one, "-t", TARGET], cold_root)[0],
            "templates_cached_s": _run_cli(["predict", one, "-t", TARGET], cold_root)[0]}
    all_nb201: dict[str, float] = {}
    if args.all_nb201:
        listing = scratch / "nb201-all.txt"
        listing.write_text("\n".join(_nb201_cells(15_625, 0)) + "\n")
        seconds, rss = _run_cli(["predict", f"@{listing}", "-t", TARGET, "--csv", str(scratch / "all.csv")],
                                scratch / "all-cache")
        all_nb201 = {"seconds": seconds, "peak_rss_mib": rss}

    rows = []
    for space, r in results.items():
        rate = 1 / r["end_to_end_s"]
        but = r.get("but_forward_s")
        via = r.get("via_graph_s")
        cpu = r.get("but_forward_cpu_s")
        rows.append([space, r["specs"], 1 / r["spec_to_inputs_s"], "-" if via is None else 1 / via,
                     "-" if "collate_s" not in r else 1 / r["collate_s"],
                     1 / r["forward_s"] if r["forward_s"] else float("inf"), "-" if but is None else 1 / but,
                     "-" if cpu is None else 1 / cpu, rate, 1 / r["measure_s"], rate * r["measure_s"]])
    nb = results["nb201"]
    goals = [
        *[[f"{'NB201' if s == 'nb201' else s.upper() if s == 'ofa' else s.capitalize()} everything but the forward",
           f"{1 / results[s]['but_forward_s']:,.0f} specs/s ({1 / results[s]['but_forward_cpu_s']:,.0f} per CPU "
           "second)", _goal(1 / results[s]["but_forward_s"], GOALS[f"{s}_but_forward"])]
          for s in ("nb201", "fbnet", "ofa")],
        ["NB201 end to end, shipped checkpoint", f"{1 / nb['end_to_end_s']:,.0f} predictions/s",
         _goal(1 / nb["end_to_end_s"], GOALS["nb201_end_to_end"])],
    ]
    if all_nb201:
        goals += [["all 15,625 NB201 cells, `tvm-ledg predict`, empty cache", f"{all_nb201['seconds']:.1f} s",
                   _goal(all_nb201["seconds"], GOALS["all_nb201_cli_s"], higher_is_better=False)],
                  ["peak resident memory of that run", f"{all_nb201['peak_rss_mib']:,.0f} MiB",
                   _goal(all_nb201["peak_rss_mib"], GOALS["all_nb201_cli_rss_mib"], higher_is_better=False)]]
    load = os.getloadavg()
    body = [
        f"Shipped checkpoint, target `{TARGET}`, {args.threads} torch threads, an empty cache root (specs never "
        f"seen before; NB201 cells distinct, drawn from all 15,625); every timed run starts from empty "
        "in-process caches (block features, cell layouts, chain structures, operator kinds) with the block "
        "templates read from disk. Load average when done: "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min) on {os.cpu_count()} cores: with "
        "other jobs (training runs) sharing the machine, these rates are lower bounds of an idle machine's.",
        "",
        "Rates per second. *spec -> inputs* is what `predict_table` does before batching: parse the spec and "
        "assemble its model inputs from per-block features (`tvm_ledg.spaces.synth.synthesize_tensors`; zoo: "
        "lowering through TVM, then `featurize.graph_tensors`); *via graph* is the same through the operator "
        "graph (`network_graph` then `graph_tensors`, the one-at-a-time path of `predict_latency`), for "
        "comparison; *collate* is batching into batches of 256; *forward* is the model on featurized graphs "
        f"(timed on the first {args.forward} specs of a space, collation subtracted); *but forward* is *spec -> "
        "inputs* plus *collate*, in wall time, and *per CPU s* the same per second of this process's CPU time "
        "(close to the wall-time rate when the process did not wait for a core; jobs sharing the cores slow "
        "both); *end to end* is "
        "`predict_table(specs, target)` with the model loaded. "
        "*measure* is this machine measuring one network with onnxruntime on "
        "one thread through `tvm_ledg.measure` (ONNX export, session, timing protocol), on the first "
        f"{args.measure} networks (nb201, fbnet, ofa, zoo); *x measure* is how many predictions fit in the time "
        "of one measurement. Zoo networks are lowered through TVM (TVM imported before timing); their rates "
        f"are per network ({results['zoo']['mean_nodes']:.0f} operators on average).",
        "",
        md_table(["space", "specs", "spec -> inputs", "via graph", "collate", "forward", "but forward",
                  "per CPU s", "end to end", "measure", "x measure"], rows),
        "",
        "One-time block-template lowering (first use of a space per cache root, TVM import included in the "
        "first): " + ", ".join(f"{s} {t:.1f} s" for s, t in template_s.items()) + ".",
        "",
        md_table(["cold process", "seconds"], [
            ["`tvm-ledg predict` one NB201 spec, empty cache root (TVM import + template lowering + load + "
             "predict)", cold["empty_cache_s"]],
            ["`tvm-ledg predict` one NB201 spec, templates cached", cold["templates_cached_s"]],
            *([["`tvm-ledg predict @all-15625-nb201.txt --csv`, empty cache root", all_nb201["seconds"]]]
              if all_nb201 else []),
        ]),
        "",
        md_table(["goal", "measured", "status"], goals),
        "",
        f"Peak resident memory of the benchmark process: {peak_mib:,.0f} MiB.",
    ]
    write_results(args.out, "Speed", "\n".join(body),
                  {"target": TARGET, "threads": args.threads, "spaces": results, "template_s": template_s,
                   "cold_predict": cold, "all_nb201_cli": all_nb201, "peak_rss_mib": peak_mib, "goals": GOALS,
                   "load_average": load}, started)
    shutil.rmtree(scratch, ignore_errors=True)
    print("\n".join(body))


if __name__ == "__main__":
    main()
