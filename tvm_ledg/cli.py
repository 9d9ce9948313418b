"""The tvm-ledg command line: thin drivers over the public API.

Domain errors (LedgError) are caught once in main and printed as one
"error: ..." line with exit code 2, as are usage errors; anything else is a bug
and keeps its traceback. Exit codes are listed in docs/cli.md.

Longer than 400 lines on purpose: every command's driver (``_cmd_<name>``) sits
next to the options that feed it (``_add_<name>_parser``), each a few dozen
lines, and the library modules are imported inside the drivers, so ``tvm-ledg``
starts without TVM or torch. Tables, labels, progress bars and CSV output are in
:mod:`tvm_ledg.cli_output`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeAlias

from targets.errors import ArgumentError, LedgError
from tvm_ledg.cli_output import (
    MAX_PRINTED_ROWS,
    MODEL_WIDTH,
    format_graph_table,
    prediction_labels,
    print_predictions,
    progress_bar,
    write_predictions_csv,
)

__all__ = ["main", "build_parser"]

EXIT_USER_ERROR = 2

_DESCRIPTION = """\
Predict the latency of neural networks on hardware targets with a LeDG-Former
cost model: lower a network with TVM to its operator graph, then predict its
end-to-end latency (and per-operator breakdown) on any target described by a
YAML file, measured or not. Also lowers, measures and trains."""

_EPILOG = """\
examples:
  tvm-ledg predict model.onnx "nb201:|...|" -t help:pixel3 my_board.yaml --breakdown
  tvm-ledg rank zoo:resnet:3 -t help:pixel3 jetson-nano-gpu-fp16 --plot ranking.png
  tvm-ledg graph zoo:vit:3 --fused
  tvm-ledg targets list

MODEL is an ONNX file, a space string (nb201:..., fbnet:..., ofa:...), a generated
network (zoo:FAMILY:SEED) or, where several are accepted, @FILE listing one MODEL
per line. Exit codes: 0 ok, 2 user error, 3 machine too busy to measure, 130
interrupted. 'tvm-ledg COMMAND -h' describes a command."""

_SPACE_FORMS = "nb201:..., fbnet:..., ofa:..., zoo:FAMILY:SEED"
_Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"  # what add_subparsers returns


def _cmd_graph(args: argparse.Namespace) -> int:
    from tvm_ledg.networks import network_graph

    graph = network_graph(args.model, fused=args.fused, batch_size=args.batch_size)
    if args.json:
        graph.save(args.json)
    print(format_graph_table(graph, limit=args.limit))
    return 0


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
    from targets.peaks import roofline_gaps

    for gap in roofline_gaps(desc):
        print(f"warning: {gap}", file=sys.stderr)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    """Also under ``torchrun --nproc_per_node N``: the processes train data-parallel, rank 0 writes and prints."""
    from cost_model import distributed
    from cost_model.training import load_run_config, train_from_config

    from cost_model.device import resolve_device

    config = load_run_config(args.config)
    if args.device is not None:
        config.device = args.device
    device = resolve_device(config.device, "--device" if args.device is not None else f"{args.config}: train.device")
    distributed.init_from_environment(device.type)
    writes = distributed.is_main_process()
    try:
        predictor, data = train_from_config(config, args.out, resume=not args.restart)
    except BaseException:
        distributed.shutdown(wait=False)
        raise
    distributed.shutdown()
    if not writes:
        return 0
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
        from cost_model.io import write_text_atomic

        write_text_atomic(args.json, json.dumps(report, indent=1))
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    import targets
    from tvm_ledg.networks import expand_model_args
    from tvm_ledg.predict import predict_latency, predict_table

    if args.plot:
        from tvm_ledg.plots import MAX_PANELS, check_plot_path

        check_plot_path(args.plot)
        if not args.breakdown:
            raise ArgumentError("--plot draws the per-operator breakdown: add --breakdown")
        n = len(dict.fromkeys(expand_model_args(args.models))) * len(targets.load_many(args.target))
        if n > MAX_PANELS:
            raise ArgumentError(f"--plot draws one panel per prediction, at most {MAX_PANELS}; these models and "
                                f"targets make {n}: plot fewer, or write them all with --csv")
    options = dict(checkpoint=args.checkpoint, graph_store=args.graph_store, batch_size=args.batch_size,
                   workers=args.workers, device=args.device)
    with progress_bar("lowering", "net") as lowering:
        if args.breakdown:
            results = predict_latency(args.models, args.target, breakdown=True, progress=lowering, **options)
            table = None
        else:
            with progress_bar("predicting", "model") as predicting:
                table = predict_table(args.models, args.target, progress=predicting, lowering_progress=lowering,
                                      **options)
            results = table.predictions() if args.show or len(table) <= MAX_PRINTED_ROWS else []
    if results:
        print_predictions(results, wide=args.wide, top=args.top)
    elif table is not None and not (args.csv or args.json):
        print(f"{len(table)} predictions ({len(table.models)} models x {len(table.targets)} targets) not printed "
              f"(more than {MAX_PRINTED_ROWS}): write them with --csv/--json, or print them with --show",
              file=sys.stderr)
    if args.csv:
        if table is not None:
            table.to_csv(args.csv)
        else:
            write_predictions_csv(args.csv, results, args.breakdown)
        print(f"wrote {args.csv}")
    if args.json:
        from cost_model.io import write_text_atomic

        records = table.records() if table is not None else [
            {"model": r.model, "target": r.target, "latency_ms": r.latency_ms, "std_log": r.std_log,
             "adapted": r.adapted, "operators": [{"id": n, "op": op, "ms": ms, "bound": r.bounds.get(n)}
                                                    for n, op, ms in r.operators]}
            for r in results]
        write_text_atomic(args.json, json.dumps(records, indent=1))
        print(f"wrote {args.json}")
    if args.plot:
        from tvm_ledg.plots import plot_breakdown

        plot_breakdown(results, args.plot, labels=prediction_labels(results, args.wide))
        print(f"wrote {args.plot}")
    return 0


def _cmd_rank(args: argparse.Namespace) -> int:
    from tvm_ledg.tuning.ranking import rank_targets

    if args.plot:
        from tvm_ledg.plots import check_plot_path

        check_plot_path(args.plot)
    ranked = rank_targets(args.model, args.target, checkpoint=args.checkpoint, top_ops=args.top,
                          graph_store=args.graph_store, device=args.device)
    if args.json:
        print(json.dumps([{"rank": i, "target": r.target, "latency_ms": r.latency_ms, "std_log": r.std_log,
                           "adapted": r.adapted,
                           "operators": [{"id": n, "op": op, "ms": ms, "bound": r.bounds.get(n)}
                                                    for n, op, ms in r.operators]}
                          for i, r in enumerate(ranked, start=1)], indent=1))
    else:
        target_w = max([6, *(len(r.target) for r in ranked)])
        print(f"{'rank':>4}  {'target':<{target_w}} {'latency ms':>11} {'x/ std':>7}")
        for i, r in enumerate(ranked, start=1):
            spread = "-" if r.std_log is None else f"{math.exp(r.std_log):.2f}"
            print(f"{i:>4}  {r.target:<{target_w}} {r.latency_ms:>11.4f} {spread:>7}"
                  + ("  (adapted)" if r.adapted else ""))
            for node_id, op, ms in r.operators:
                print(f"        {node_id:>5} {op:<34} {ms:>11.4f} ms  {100 * ms / r.latency_ms:5.1f}%")
    if args.plot:
        from tvm_ledg.collect import default_store_path
        from tvm_ledg.plots import plot_ranking

        store = args.db or default_store_path()
        measured = _measured_ms(store, args.model, args.target, args.graph_store)
        plot_ranking(ranked[0].model, ranked, args.plot, measured_ms=measured)
        source = f"from {store}" if store.is_file() else f"no measurement store at {store}"
        print(f"wrote {args.plot} (measured latency for {len(measured)} of {len(ranked)} targets, {source})",
              file=sys.stderr if args.json else sys.stdout)
    return 0


def _measured_ms(store_path: Path, model: str, target_refs: Sequence[str], graph_store: Path | None
                 ) -> dict[str, float]:
    """Target name -> measured median ms of ``model`` in the store at ``store_path`` (read only; none: no store).

    Measurements are keyed by the network's graph content hash and the target's
    content hash (as ``collect`` stores them), so a target YAML that changed since
    it was measured has no measurement. Of several protocols the latest is shown.
    """
    if not store_path.is_file():
        return {}
    import targets
    from cost_model.measurement_store import MeasurementStore
    from tvm_ledg.predict import resolve_graphs

    names, graphs = resolve_graphs([model], graph_store=graph_store)
    graph_hash = graphs[names[0]].content_hash()
    by_hash = {d.content_hash(): d.name for d in targets.load_many(target_refs)}
    found: dict[str, float] = {}
    with MeasurementStore(store_path, readonly=True) as store:
        for m in store.measurements():  # oldest first: a later protocol's measurement wins
            if m.graph_hash == graph_hash and m.target_hash in by_hash:
                found[by_hash[m.target_hash]] = m.median_ms
    return found


def _cmd_adapt(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    import targets
    from cost_model.adapt import adapt
    from cost_model.checkpoint import check_replaceable
    from tvm_ledg.predict import load_predictor, read_measurements, resolve_graphs

    check_replaceable(args.out)  # before any work: --out must not be a folder of the user's
    predictor = load_predictor(args.checkpoint, cached=False)
    desc = targets.load(args.target)
    measured = read_measurements(args.measurements)
    names, graphs = resolve_graphs([m for m, _ in measured], graph_store=args.graph_store, workers=args.workers)
    samples = list(zip(names, [ms for _, ms in measured]))
    # delay: k = 1 fits no offset, so no bar flashes by; disable=None: off when stderr is not a terminal
    with tqdm(desc="fine-tuning the target offset", unit="step", file=sys.stderr, leave=False, delay=1.0,
              disable=None) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        adaptation = adapt(predictor, desc, samples, graphs, progress=progress)
    predictor.save_pretrained(args.out)
    print(f"{desc.name}: {adaptation.describe()} -> {args.out}")
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
        raise ArgumentError("collect: name models (MODEL... or @list) or --families with --count")
    descs = targets.load_many(args.target)
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


def _non_negative_int(text: str) -> int:
    """argparse type of ``--limit``: a count of rows, where 0 means all."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (all) or more, got {value}")
    return value


def _output_file(text: str) -> Path:
    """argparse type of output paths: refused before any work when a folder is in the way.

    Missing folders are created when the file is written (``write_text_atomic``).
    """
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file path")
    return path


def _output_folder(text: str) -> Path:
    """argparse type of output folders: refused before any work when a file is in the way."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file; give a folder")
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tvm-ledg", description=_DESCRIPTION, epilog=_EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress at INFO level")
    sub = parser.add_subparsers(dest="command", required=True, title="commands", metavar="COMMAND",
                                help="what to do (COMMAND -h for its options)")
    for add in (_add_graph_parser, _add_graphs_parser, _add_train_parser, _add_eval_parser, _add_predict_parser,
                _add_rank_parser, _add_adapt_parser, _add_collect_parser, _add_db_parser, _add_targets_parser):
        add(sub)
    return parser


def _add_graph_parser(sub: _Commands) -> None:
    g = sub.add_parser("graph", help="lower a model to its operator DAG and print a summary")
    g.add_argument("model", help=f"ONNX file or space string ({_SPACE_FORMS})")
    g.add_argument("--fused", action="store_true", help="show fused kernels (after FuseOps/FuseTIR)")
    g.add_argument("--json", type=_output_file, help="also write the graph as JSON to this path "
                   "(missing folders are created)")
    g.add_argument("--batch-size", type=int, help="override the batch size")
    g.add_argument("--limit", type=_non_negative_int, default=40, help="rows to print (0 = all)")
    g.set_defaults(func=_cmd_graph)


def _add_graphs_parser(sub: _Commands) -> None:
    gb = sub.add_parser("graphs", help="lower many models into a graph store (parallel, resumable)")
    gb.add_argument("models", nargs="+", metavar="MODEL",
                    help=f"ONNX files, space strings ({_SPACE_FORMS}) or @list files (one MODEL a line)")
    gb.add_argument("--store", type=_output_folder, required=True, help="graph store directory (created if missing)")
    gb.add_argument("--workers", type=int, default=1, help="worker processes (each imports TVM once)")
    gb.add_argument("--fused", action="store_true", help="store the fused-kernel view")
    gb.set_defaults(func=_cmd_graphs)


def _add_train_parser(sub: _Commands) -> None:
    tr = sub.add_parser("train", help="train a LeDG-Former checkpoint from a YAML config (resumable; "
                        "data-parallel under torchrun --nproc_per_node N)")
    tr.add_argument("--config", type=Path, required=True, help="training config (see cost_model/training.py)")
    tr.add_argument("--out", type=Path, required=True, help="checkpoint directory to write")
    tr.add_argument("--restart", action="store_true", help="ignore an interrupted run's state and start over")
    tr.add_argument("--device", help="where to train: auto (CUDA when available, else the CPU; the default), cpu, "
                    "cuda or cuda:N; overrides the config's train.device")
    tr.set_defaults(func=_cmd_train)


def _add_eval_parser(sub: _Commands) -> None:
    ev = sub.add_parser("eval", help="metrics of a checkpoint on a config's test (or held-out) split")
    ev.add_argument("--checkpoint", type=Path, required=True, help="checkpoint directory to evaluate")
    ev.add_argument("--config", type=Path, required=True, help="the data section picks devices and split")
    ev.add_argument("--split", choices=["test", "holdout", "val"], default="test",
                    help="which split of the config's data to score (default: test)")
    ev.add_argument("--json", type=_output_file, help="also write the metrics as JSON")
    ev.set_defaults(func=_cmd_eval)


def _add_predict_parser(sub: _Commands) -> None:
    p = sub.add_parser("predict", help="predict latencies of models on targets")
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help=f"ONNX files, space strings ({_SPACE_FORMS}) or @list files (one MODEL a line)")
    p.add_argument("--target", "-t", nargs="+", required=True, help="target names, aliases or YAML files")
    p.add_argument("--checkpoint", type=Path, help="checkpoint directory (default: the shipped one)")
    p.add_argument("--device", default="cpu", help="where the model runs: cpu (default), auto, cuda or cuda:N")
    p.add_argument("--breakdown", action="store_true", help="per-operator latencies")
    p.add_argument("--top", type=int, default=5, help="operators to print per prediction with --breakdown")
    p.add_argument("--csv", type=_output_file, help="write all predictions (and the breakdown) as CSV")
    p.add_argument("--json", type=_output_file, help="write all predictions (and the breakdown) as JSON records")
    p.add_argument("--show", action="store_true",
                   help=f"print the table even when it has more than {MAX_PRINTED_ROWS} rows")
    p.add_argument("--batch-size", type=int, help="override the models' batch size")
    p.add_argument("--graph-store", type=Path, help="where lowered graphs are cached (default: graphs/ in the cache root, ~/.cache/tvm-ledg)")
    p.add_argument("--workers", type=int, default=1, help="processes lowering uncached models")
    p.add_argument("--wide", action="store_true",
                   help=f"print whole model names (default: at most {MODEL_WIDTH} characters, keeping the part "
                        "that differs between models; # numbers the models in the order given)")
    p.add_argument("--plot", type=Path, metavar="PNG",
                   help="with --breakdown: draw each prediction's latency per operator kind to this PNG "
                        "(one panel per model and target, at most 12)")
    p.set_defaults(func=_cmd_predict)


def _add_rank_parser(sub: _Commands) -> None:
    rk = sub.add_parser("rank", help="order targets by the predicted latency of one model")
    rk.add_argument("model", metavar="MODEL", help=f"ONNX file or space string ({_SPACE_FORMS})")
    rk.add_argument("--target", "-t", nargs="+", required=True, help="target names, aliases or YAML files")
    rk.add_argument("--checkpoint", type=Path, help="checkpoint directory (default: the shipped one)")
    rk.add_argument("--device", default="cpu", help="where the model runs: cpu (default), auto, cuda or cuda:N")
    rk.add_argument("--top", type=int, default=3, help="slowest operators to show per target (0: none)")
    rk.add_argument("--json", action="store_true", help="print the ranking as JSON")
    rk.add_argument("--graph-store", type=Path, help="where lowered graphs are cached (default: graphs/ in the cache root, ~/.cache/tvm-ledg)")
    rk.add_argument("--plot", type=Path, metavar="PNG",
                    help="draw the predicted latencies (log scale, error bars x/ e^std) beside the measured ones "
                         "where the measurement store has them, to this PNG")
    rk.add_argument("--db", type=Path,
                    help="measurement store read for --plot (default ~/.cache/tvm-ledg/measurements.sqlite; "
                         "never created)")
    rk.set_defaults(func=_cmd_rank)


def _add_adapt_parser(sub: _Commands) -> None:
    ad = sub.add_parser("adapt", help="adapt a checkpoint to a new target from k measurements (few-shot)")
    ad.add_argument("--checkpoint", type=Path, help="checkpoint to start from (default: the shipped one)")
    ad.add_argument("--target", required=True, help="target name or YAML file")
    ad.add_argument("--measurements", type=Path, required=True, help="CSV with columns model,latency_ms")
    ad.add_argument("--out", type=Path, required=True, help="adapted checkpoint directory")
    ad.add_argument("--graph-store", type=Path, help="where lowered graphs are cached")
    ad.add_argument("--workers", type=int, default=1, help="processes lowering uncached models")
    ad.set_defaults(func=_cmd_adapt)


def _add_collect_parser(sub: _Commands) -> None:
    co = sub.add_parser("collect", help="measure networks on local or RPC targets into a measurement store")
    co.add_argument("models", nargs="*", metavar="MODEL",
                    help=f"space strings ({_SPACE_FORMS}), ONNX files or @list files (one MODEL a line)")
    co.add_argument("--families", nargs="+", help="generate networks of these zoo families (see tvm_ledg.spaces.zoo)")
    co.add_argument("--count", type=int, default=10, help="generated networks in all (round-robin over families)")
    co.add_argument("--start-seed", type=int, default=0,
                    help="seed of the first generated network (continue a dataset with fresh networks)")
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


def _add_db_parser(sub: _Commands) -> None:
    db = sub.add_parser("db", help="inspect a measurement store, or move it as gzip JSON lines")
    dsub = db.add_subparsers(dest="action", required=True, help="what to do with the store")
    ds = dsub.add_parser("stats", help="counts per target and family, noise (median CV), failures")
    ds.add_argument("--json", action="store_true", help="print the statistics as JSON")
    dx = dsub.add_parser("export", help="write everything to FILE (.jsonl.gz), ending with a record count")
    dx.add_argument("file", type=Path, help="gzip JSON lines file to write (.jsonl.gz)")
    dx.add_argument("--force", action="store_true", help="replace FILE if it exists (atomically)")
    dx = dsub.add_parser("import", help="merge FILE into the store: all of it, or nothing if any record is bad")
    dx.add_argument("file", type=Path, help="gzip JSON lines file written by `tvm-ledg db export`")
    for p_ in dsub.choices.values():
        p_.add_argument("--db", type=Path, help="SQLite store (default ~/.cache/tvm-ledg/measurements.sqlite)")
    db.set_defaults(func=_cmd_db)


def _add_targets_parser(sub: _Commands) -> None:
    t = sub.add_parser("targets", help="list, show or validate target descriptors")
    tsub = t.add_subparsers(dest="action", required=True, help="what to do")
    tl = tsub.add_parser("list", help="list registered targets")
    tl.add_argument("--json", action="store_true", help="print every descriptor as JSON")
    ts = tsub.add_parser("show", help="show one target (name, alias or YAML path)")
    ts.add_argument("name", help="target name, alias (help:pixel3) or YAML file")
    ts.add_argument("--json", action="store_true", help="print the descriptor as JSON instead of YAML")
    tv = tsub.add_parser("validate", help="validate a target YAML file; warn (exit 0) when it lacks the peak "
                         "compute or memory bandwidth the latency model's roofline bound needs")
    tv.add_argument("name", metavar="FILE", help="target descriptor YAML file")
    t.set_defaults(func=_cmd_targets)


def _version() -> str:
    """The installed distribution's version, else (a source checkout on PYTHONPATH) the one setup.py declares."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tvm-ledg")
    except PackageNotFoundError:
        import re

        setup_py = Path(__file__).resolve().parent.parent / "setup.py"
        try:
            found = re.search(r'version="([^"]+)"', setup_py.read_text(encoding="utf-8"))
        except OSError:
            found = None
        return found.group(1) if found else "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # -h, --version (0) and usage errors (2): returned like every other outcome
        return exc.code if isinstance(exc.code, int) else EXIT_USER_ERROR
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
