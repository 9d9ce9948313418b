"""``tvm-ledg`` command line: thin drivers over the public API.

Domain errors (``LedgError``) are caught once in ``main`` and printed as one
``error: ...`` line with exit code 2; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path
from typing import Callable, Sequence

from targets.errors import DataError, LedgError

__all__ = ["main", "build_parser"]

EXIT_USER_ERROR = 2


def _cmd_graph(args: argparse.Namespace) -> int:
    from tvm_ledg.networks import network_graph

    graph = network_graph(args.model, fused=args.fused, batch_size=args.batch_size)
    if args.json:
        graph.save(args.json)
    print(format_graph_table(graph, limit=args.limit))
    return 0


def format_graph_table(graph, limit: int | None = None) -> str:
    """Human summary of an ``OpGraph``: one row per node, then the totals."""
    rows = [f"{'id':>4}  {'op':<28} {'output':<22} {'MFLOPs':>10} {'params':>9}  inputs"]
    nodes = graph.nodes if limit is None else graph.nodes[:limit]
    for node in nodes:
        out = "x".join(str(d) for d in node.outputs[0].shape) if node.outputs else "-"
        op = node.op if not node.members else f"{node.op}[{'+'.join(node.members)}]"
        parents = ",".join(str(p) for p in graph.parents(node.id)) or "-"
        rows.append(f"{node.id:>4}  {op[:28]:<28} {out[:22]:<22} {node.flops / 1e6:>10.3f} {node.params:>9}  {parents}")
    if limit is not None and graph.num_nodes > limit:
        rows.append(f"  ... {graph.num_nodes - limit} more nodes (use --limit 0 for all)")
    s = graph.summary()
    rows.append("")
    rows.append(
        f"{s['name']}: {s['nodes']} {'fused kernels' if graph.fused else 'operators'}, {s['edges']} edges, "
        f"depth {s['depth']}, {s['flops'] / 1e6:.2f} MFLOPs ({s['macs'] / 1e6:.2f} MMACs), "
        f"{s['params'] / 1e6:.4f} M params, hash {s['hash']}"
    )
    return "\n".join(rows)


def _cmd_graphs(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from cost_model.graph_store import GraphStore
    from tvm_ledg.graph_builder import build_graphs
    from tvm_ledg.networks import expand_model_args

    specs = expand_model_args(args.models)
    with tqdm(total=len(set(specs)), desc="lowering", unit="net", disable=None) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        report = build_graphs(specs, GraphStore(args.store), workers=args.workers, fused=args.fused, progress=progress)
    print(f"built {report.built}, already stored {report.skipped}, failed {len(report.failed)} -> {args.store}")
    for spec, reason in report.failed.items():
        print(f"failed: {spec}: {reason}", file=sys.stderr)
    return EXIT_USER_ERROR if report.failed else 0


def _cmd_targets(args: argparse.Namespace) -> int:
    import targets

    if args.action == "list":
        descs = [targets.load(name) for name in targets.list_names()]
        if args.json:
            print(json.dumps([d.to_dict() for d in descs], indent=1))
            return 0
        print(f"{'name':<40} {'class':<13} {'runtime':<24} {'prec':<5} {'batch':>5}")
        for d in descs:
            runtime = " ".join(x for x in (d.runtime, d.runtime_version) if x)
            prec, batch = d.precision or "-", "-" if d.batch_size is None else d.batch_size
            print(f"{d.name:<40} {d.device_class:<13} {runtime[:24] or '-':<24} {prec:<5} {batch:>5}")
        print(f"\n{len(descs)} targets")
        return 0
    desc = targets.load(args.name)
    if args.action == "show":
        print(json.dumps(desc.to_dict(), indent=1) if args.json else desc.to_yaml())
        print(f"# text: {desc.to_text()}", file=sys.stderr)
        return 0
    print(f"{args.name}: valid ({desc.name}, hash {desc.content_hash()})")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from cost_model.training import load_run_config, train_from_config

    config = load_run_config(args.config)
    predictor, data = train_from_config(config, args.out, resume=not args.restart)
    summary = data.summary()
    last = predictor.history_[-1] if predictor.history_ else {}
    print(f"trained on {summary['train']['rows']} rows ({summary['train']['archs']} archs x "
          f"{summary['train']['targets']} targets), {len(predictor.history_)} epochs, last {last} -> {args.out}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from cost_model.evaluation import evaluate_checkpoint, format_metrics_table
    from cost_model.training import load_run_config

    report = evaluate_checkpoint(args.checkpoint, load_run_config(args.config), split=args.split)
    print(format_metrics_table(report))
    if args.json:
        from cost_model.graph import write_text_atomic

        write_text_atomic(args.json, json.dumps(report, indent=1))
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from tvm_ledg.predict import predict_latency

    results = predict_latency(args.models, args.target, checkpoint=args.checkpoint, breakdown=args.breakdown,
                              graph_store=args.graph_store, batch_size=args.batch_size, workers=args.workers)
    print(f"{'model':<48} {'target':<34} {'latency ms':>11} {'x/ std':>7}")
    for r in results:
        spread = "-" if r.std_log is None else f"{math.exp(r.std_log):.2f}"
        model = r.model if len(r.model) <= 48 else "..." + r.model[-45:]
        print(f"{model:<48} {r.target[:34]:<34} {r.latency_ms:>11.4f} {spread:>7}" + ("  (adapted)" if r.adapted else ""))
        for node_id, op, ms in r.operators[: args.top]:
            print(f"    {node_id:>5} {op:<36} {ms:>11.4f} ms  {100 * ms / r.latency_ms:5.1f}%")
    if args.csv:
        _write_predictions_csv(args.csv, results, args.breakdown)
        print(f"wrote {args.csv}")
    return 0


def _cmd_rank(args: argparse.Namespace) -> int:
    from tvm_ledg.tuning.ranking import rank_targets

    ranked = rank_targets(args.model, args.target, checkpoint=args.checkpoint, top_ops=args.top,
                          graph_store=args.graph_store)
    if args.json:
        print(json.dumps([{"rank": i, "target": r.target, "latency_ms": r.latency_ms, "std_log": r.std_log,
                           "adapted": r.adapted,
                           "operators": [{"id": n, "op": op, "ms": ms} for n, op, ms in r.operators]}
                          for i, r in enumerate(ranked, start=1)], indent=1))
        return 0
    print(f"{'rank':>4}  {'target':<40} {'latency ms':>11} {'x/ std':>7}")
    for i, r in enumerate(ranked, start=1):
        spread = "-" if r.std_log is None else f"{math.exp(r.std_log):.2f}"
        print(f"{i:>4}  {r.target[:40]:<40} {r.latency_ms:>11.4f} {spread:>7}" + ("  (adapted)" if r.adapted else ""))
        for node_id, op, ms in r.operators:
            print(f"        {node_id:>5} {op:<34} {ms:>11.4f} ms  {100 * ms / r.latency_ms:5.1f}%")
    return 0


def _write_predictions_csv(path: Path, results, breakdown: bool) -> None:
    import csv
    import io

    from cost_model.graph import write_text_atomic

    buf = io.StringIO()
    writer = csv.writer(buf)
    if breakdown:
        writer.writerow(["model", "target", "latency_ms", "node_id", "op", "op_ms"])
        for r in results:
            for node_id, op, ms in sorted(r.operators):
                writer.writerow([r.model, r.target, f"{r.latency_ms:.6g}", node_id, op, f"{ms:.6g}"])
    else:
        writer.writerow(["model", "target", "latency_ms", "std_log"])
        for r in results:
            writer.writerow([r.model, r.target, f"{r.latency_ms:.6g}", "" if r.std_log is None else f"{r.std_log:.4g}"])
    write_text_atomic(path, buf.getvalue())


def _cmd_adapt(args: argparse.Namespace) -> int:
    import targets
    from cost_model.adapt import adapt
    from tvm_ledg.predict import load_predictor, read_measurements, resolve_graphs

    predictor = load_predictor(args.checkpoint, cached=False)
    desc = targets.load(args.target)
    measured = read_measurements(args.measurements)
    names, graphs = resolve_graphs([m for m, _ in measured], graph_store=args.graph_store, workers=args.workers)
    samples = list(zip(names, [ms for _, ms in measured]))
    adaptation = adapt(predictor, desc, samples, graphs)
    predictor.save_pretrained(args.out)
    print(f"{desc.name}: {adaptation.method} from {adaptation.samples} measurements "
          f"(log y = {adaptation.scale_a:.3f} + {adaptation.scale_b:.3f} log y_model) -> {args.out}")
    return 0


def _cmd_collect(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    import targets
    from tvm_ledg.collect import collect, default_store_path
    from tvm_ledg.measure.protocol import MeasureProtocol
    from tvm_ledg.measure.quiet import QuietPolicy
    from tvm_ledg.networks import expand_model_args

    specs = expand_model_args(args.models or [])
    if args.families:
        from tvm_ledg.spaces.zoo import sample_specs

        specs += sample_specs(args.count, families=args.families, start_seed=args.start_seed)
    if not specs:
        raise DataError("collect: name models (MODEL... or @list) or --families with --count")
    descs = [targets.load(t) for t in args.target]
    protocol = MeasureProtocol(max_seconds=args.max_seconds)
    quiet = None if args.no_quiet_check else QuietPolicy(max_foreign=args.max_foreign_cpu,
                                                         max_slowdown=args.max_host_slowdown or None,
                                                         max_wait_s=args.max_wait or None)
    with tqdm(total=None, unit="pair", dynamic_ncols=True) as bar:
        def progress(done: int, total: int, last: str) -> None:
            bar.total = total
            bar.n = done
            bar.set_postfix_str(last[-60:], refresh=True)

        report = collect(specs, descs, args.db or default_store_path(), protocol=protocol, timeout_s=args.timeout,
                         tracker=args.tracker, key=args.key, parallel=args.parallel,
                         retry_failures=args.retry_failures, quiet=quiet, progress=progress)
    print(f"measured {report.measured}, already in the store {report.skipped}, failed {report.failed}, "
          f"left for a quieter machine {report.busy} ({report.seconds:.0f} s); networks flagged by the "
          f"numerical check: {len(report.flagged_networks)}")
    if report.restarts:
        print(f"workers restarted {report.restarts} times: their own process read the host as slow while a fresh "
              "process did not")
    for spec, target, stage, reason in report.failures[:20]:
        print(f"  failed: {spec} on {target} at {stage}: {reason}")
    if report.busy:
        print(f"stopped: other processes kept the machine busy; {report.busy} pairs are left for the next run "
              "(run the same command again on a quiet machine)", file=sys.stderr)
        return 3
    return 0


def _cmd_db(args: argparse.Namespace) -> int:
    from cost_model.measurement_store import MeasurementStore
    from tvm_ledg.collect import default_store_path

    path = args.db or default_store_path()
    if args.action == "stats":
        with MeasurementStore(path, readonly=True) as store:
            stats = store.stats()
        if args.json:
            print(json.dumps(stats, indent=1))
            return 0
        print(f"{stats['path']}: {stats['networks']} networks ({stats['numerics_flagged']} flagged), "
              f"{stats['targets']} targets, {stats['measurements']} measurements, failures {stats['failures']}")
        for name, t in sorted(stats["per_target"].items()):
            print(f"  {name:<40} {t['measurements']:>6} measurements, median CV {t['median_cv']:.3f}")
        for family, n in sorted(stats["per_family"].items()):
            print(f"  family {family:<20} {n:>6} networks")
        return 0
    if args.action == "export":  # reading: a missing store is an error, not a new empty one
        with MeasurementStore(path, readonly=True) as store:
            counts = store.export_jsonl(args.file, replace=args.force)
        print(f"export {args.file}: " + ", ".join(f"{n} {k}s" for k, n in counts.items()))
        return 0
    created = not Path(path).exists()
    try:
        with MeasurementStore(path) as store:
            counts = store.import_jsonl(args.file)
    except LedgError:
        if created:  # a refused import leaves no trace, not even the empty store it opened
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        raise
    print(f"import {args.file}: added " + ", ".join(f"{n} {k}s" for k, n in counts.items()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tvm-ledg", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("graph", help="lower a model to its operator DAG and print a summary")
    g.add_argument("model", help="ONNX file or space string (nb201:..., fbnet:..., ofa:...)")
    g.add_argument("--fused", action="store_true", help="show fused kernels (after FuseOps/FuseTIR)")
    g.add_argument("--json", type=Path, help="also write the graph as JSON to this path")
    g.add_argument("--batch-size", type=int, help="override the batch size")
    g.add_argument("--limit", type=int, default=40, help="rows to print (0 = all)")
    g.set_defaults(func=_cmd_graph)

    gb = sub.add_parser("graphs", help="lower many models into a graph store (parallel, resumable)")
    gb.add_argument("models", nargs="+", metavar="MODEL", help="ONNX files, space strings or @list files")
    gb.add_argument("--store", type=Path, required=True, help="graph store directory")
    gb.add_argument("--workers", type=int, default=1, help="worker processes (each imports TVM once)")
    gb.add_argument("--fused", action="store_true", help="store the fused-kernel view")
    gb.set_defaults(func=_cmd_graphs)

    tr = sub.add_parser("train", help="train a LeDG-Former checkpoint from a YAML config (resumable)")
    tr.add_argument("--config", type=Path, required=True, help="training config (see cost_model/training.py)")
    tr.add_argument("--out", type=Path, required=True, help="checkpoint directory to write")
    tr.add_argument("--restart", action="store_true", help="ignore an interrupted run's state and start over")
    tr.set_defaults(func=_cmd_train)

    ev = sub.add_parser("eval", help="metrics of a checkpoint on a config's test (or held-out) split")
    ev.add_argument("--checkpoint", type=Path, required=True)
    ev.add_argument("--config", type=Path, required=True, help="the data section picks devices and split")
    ev.add_argument("--split", choices=["test", "holdout", "val"], default="test")
    ev.add_argument("--json", type=Path, help="also write the metrics as JSON")
    ev.set_defaults(func=_cmd_eval)

    p = sub.add_parser("predict", help="predict latencies of models on targets")
    p.add_argument("models", nargs="+", metavar="MODEL", help="ONNX files, space strings or @list files")
    p.add_argument("--target", "-t", nargs="+", required=True, help="target names, aliases or YAML files")
    p.add_argument("--checkpoint", type=Path, help="checkpoint directory (default: the shipped one)")
    p.add_argument("--breakdown", action="store_true", help="per-operator latencies")
    p.add_argument("--top", type=int, default=5, help="operators to print per prediction with --breakdown")
    p.add_argument("--csv", type=Path, help="write all predictions (and the breakdown) as CSV")
    p.add_argument("--batch-size", type=int, help="override the models' batch size")
    p.add_argument("--graph-store", type=Path, help="where lowered graphs are cached (default: graphs/ in the cache root, ~/.cache/tvm-ledg)")
    p.add_argument("--workers", type=int, default=1, help="processes lowering uncached models")
    p.set_defaults(func=_cmd_predict)

    rk = sub.add_parser("rank", help="order targets by the predicted latency of one model")
    rk.add_argument("model", metavar="MODEL", help="ONNX file or space string")
    rk.add_argument("--target", "-t", nargs="+", required=True, help="target names, aliases or YAML files")
    rk.add_argument("--checkpoint", type=Path, help="checkpoint directory (default: the shipped one)")
    rk.add_argument("--top", type=int, default=3, help="slowest operators to show per target (0: none)")
    rk.add_argument("--json", action="store_true", help="print the ranking as JSON")
    rk.add_argument("--graph-store", type=Path, help="where lowered graphs are cached (default: graphs/ in the cache root, ~/.cache/tvm-ledg)")
    rk.set_defaults(func=_cmd_rank)

    ad = sub.add_parser("adapt", help="adapt a checkpoint to a new target from k measurements (few-shot)")
    ad.add_argument("--checkpoint", type=Path, help="checkpoint to start from (default: the shipped one)")
    ad.add_argument("--target", required=True, help="target name or YAML file")
    ad.add_argument("--measurements", type=Path, required=True, help="CSV with columns model,latency_ms")
    ad.add_argument("--out", type=Path, required=True, help="adapted checkpoint directory")
    ad.add_argument("--graph-store", type=Path, help="where lowered graphs are cached")
    ad.add_argument("--workers", type=int, default=1)
    ad.set_defaults(func=_cmd_adapt)

    co = sub.add_parser("collect", help="measure networks on local or RPC targets into a measurement store")
    co.add_argument("models", nargs="*", metavar="MODEL", help="space strings, ONNX files or @list files")
    co.add_argument("--families", nargs="+", help="generate networks of these zoo families (see tvm_ledg.spaces.zoo)")
    co.add_argument("--count", type=int, default=10, help="generated networks in all (round-robin over families)")
    co.add_argument("--start-seed", type=int, default=0)
    co.add_argument("--target", "-t", nargs="+", required=True, help="target names, aliases or YAML files")
    co.add_argument("--db", type=Path, help="SQLite store (default ~/.cache/tvm-ledg/measurements.sqlite)")
    co.add_argument("--timeout", type=float, default=600, help="seconds per network (all its targets)")
    co.add_argument("--max-seconds", type=float, default=3.0,
                    help="timed seconds per measurement, past which 3 samples suffice (part of the protocol id)")
    co.add_argument("--tracker", help="TVM RPC tracker HOST:PORT (TVM targets are measured on its devices)")
    co.add_argument("--key", help="RPC device key")
    co.add_argument("--parallel", type=int, default=1, help="RPC devices used at once (needs --tracker)")
    co.add_argument("--retry-failures", action="store_true", help="measure pairs that failed before again")
    co.add_argument("--max-foreign-cpu", type=float, default=0.05, metavar="CORES",
                    help="other processes may use at most this many cores during a local measurement, "
                         "else it is taken again once the machine is quiet")
    co.add_argument("--max-host-slowdown", type=float, default=1.35, metavar="RATIO",
                    help="a reference loop may run at most this much slower than its best around a kept sample "
                         "of a local measurement (other tenants of a virtual machine's host), else the sample is "
                         "dropped; 0 turns this probe off")
    co.add_argument("--max-wait", type=float, default=600.0, metavar="SECONDS",
                    help="how long one measurement may wait for a quiet machine before the run stops (exit code "
                         "3; the rest is measured by the next run); 0: wait as long as it takes (unattended runs)")
    co.add_argument("--no-quiet-check", action="store_true",
                    help="keep measurements taken while other processes use the CPU (not for datasets)")
    co.set_defaults(func=_cmd_collect)

    db = sub.add_parser("db", help="inspect a measurement store, or move it as gzip JSON lines")
    dsub = db.add_subparsers(dest="action", required=True)
    ds = dsub.add_parser("stats", help="counts per target and family, noise (median CV), failures")
    ds.add_argument("--json", action="store_true")
    dx = dsub.add_parser("export", help="write everything to FILE (.jsonl.gz), ending with a record count")
    dx.add_argument("file", type=Path)
    dx.add_argument("--force", action="store_true", help="replace FILE if it exists (atomically)")
    dx = dsub.add_parser("import", help="merge FILE into the store: all of it, or nothing if any record is bad")
    dx.add_argument("file", type=Path)
    for p_ in dsub.choices.values():
        p_.add_argument("--db", type=Path, help="SQLite store (default ~/.cache/tvm-ledg/measurements.sqlite)")
    db.set_defaults(func=_cmd_db)

    t = sub.add_parser("targets", help="list, show or validate target descriptors")
    tsub = t.add_subparsers(dest="action", required=True)
    tl = tsub.add_parser("list", help="list registered targets")
    tl.add_argument("--json", action="store_true")
    ts = tsub.add_parser("show", help="show one target (name, alias or YAML path)")
    ts.add_argument("name")
    ts.add_argument("--json", action="store_true")
    tv = tsub.add_parser("validate", help="validate a target YAML file")
    tv.add_argument("name", metavar="FILE")
    t.set_defaults(func=_cmd_targets)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "limit", None) == 0:
        args.limit = None
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except LedgError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:  # Ctrl-C: what is stored stays; graphs, train and collect resume when run again
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
