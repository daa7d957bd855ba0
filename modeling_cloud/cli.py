"""The `cloud-crystal` command line.

Each subcommand lives in its own function and imports what it needs when it runs, so `cloud-crystal --help` and
`cloud-crystal <command> --help` import neither torch nor pymatgen (`benchmarks/bench_cli_startup.py` times it).

Output rows (`--jsonl`): one JSON object per crystal, `{"source", ...}` on success and `{"source", "error": {"source",
"reason", "type", "message"}}` on failure (the failure record of `ScopeError.to_dict`); `"notes"` lists what a reader
changed on the way (e.g. an occupancy of 0.9999 counted as full) when it changed anything.

Exit codes: 0 success, 1 some inputs failed (reported per input), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from .loading import load_property_pipeline  # noqa: F401 (re-exported: `from modeling_cloud.cli import ...`)
from .scope_defaults import (
    DEFAULT_ANGLE_TOLERANCE,
    DEFAULT_MAX_LENGTH,
    DEFAULT_SCOPE_VERSION,
    DEFAULT_SYMPREC,
)

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2
#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130
#: Show a progress bar on stderr from this many inputs on.
PROGRESS_MIN_ITEMS = 5


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def _add_command(
    subparsers, name: str, handler: Callable[[argparse.Namespace], int], help_text: str, example: str
) -> argparse.ArgumentParser:
    escaped = help_text.replace("%", "%%")  # argparse %-formats help strings
    parser = subparsers.add_parser(
        name,
        help=escaped,
        description=escaped,
        epilog=f"example:\n  {example}",
        formatter_class=_HelpFormatter,
    )
    parser.set_defaults(handler=handler)
    return parser


def _write_row(row: dict, jsonl: bool, summary: Callable[[dict], str]) -> None:
    """One output line per input: the JSON row, or `source<TAB>summary` / `source<TAB>ERROR reason (type): message`."""
    if jsonl:
        line = json.dumps(row)
    elif "error" in row:
        error = row["error"]
        line = f"{row['source']}\tERROR {error['reason']} ({error['type']}): {error['message']}"
    else:
        line = f"{row['source']}\t{summary(row)}"
        if row.get("notes"):
            line += "\tnotes: " + "; ".join(row["notes"])
    sys.stdout.write(line + "\n")


def failure_row(source: str, error: dict) -> dict:
    """`{"source", "error"}` with the failure record `error` named after the row's `source`."""
    return {"source": source, "error": {**error, "source": source}}


def _scope_and_notes(tokenizer, item, source: str, scope_version: str, max_length: int | None):
    """``(SCOPE string, reader notes)`` of one input: read and validated once; a string too long for ``max_length``
    is refused at its first symmetry search."""
    analyzer = tokenizer.analyze(item, source=source, max_length=max_length)
    return analyzer.get_scope(scope_version), analyzer.reader_notes


#: The tokenizer of the `encode` run in progress: its forked worker process inherits it, so that each item does not
#: pickle it again (1 ms, a third of encoding a CIF).
_WORKER_TOKENIZER = None


def _scope_and_notes_in_worker(item, source: str, scope_version: str, max_length: int | None):
    """:func:`_scope_and_notes` with the run's tokenizer, in the worker process."""
    return _scope_and_notes(_WORKER_TOKENIZER, item, source, scope_version, max_length)


def run_encode(args: argparse.Namespace) -> int:
    from contextlib import nullcontext

    from tqdm.auto import tqdm

    from tokenization import CloudTokenizerFast, ScopeError, typed_error
    from tokenization.isolated_worker import IsolatedWorker
    from tokenization.structure_files import iter_structure_inputs

    tokenizer = CloudTokenizerFast.from_scope_version(
        args.scope_version, symprec=args.symprec, angle_tolerance=args.angle_tolerance, disorder=args.disorder
    )
    items = list(iter_structure_inputs(args.inputs))
    failures = 0
    progress = tqdm(
        items, desc="encoding", unit="structure", file=sys.stderr, disable=len(items) < PROGRESS_MIN_ITEMS
    )
    # With --item-timeout or --item-memory-gb each item is encoded in a worker process (forked: it has the
    # tokenizer already) that is killed past the limit; the item gets a typed time_limit or resource_limit row.
    limited = args.item_timeout is not None or args.item_memory_gb is not None
    global _WORKER_TOKENIZER
    _WORKER_TOKENIZER = tokenizer
    worker = (
        IsolatedWorker(
            memory_limit=int(args.item_memory_gb * 2**30) if args.item_memory_gb is not None else None,
            timeout=args.item_timeout,
        )
        if limited
        else nullcontext()
    )
    with worker:
        for source, item in progress:
            row = _encode_row(
                tokenizer, source, item, args, worker if limited else None, ScopeError, typed_error
            )
            failures += "error" in row
            _write_row(row, args.jsonl, lambda row: row["scope"])
    if failures:
        print(f"{failures} of {len(items)} inputs failed to encode", file=sys.stderr)
    return EXIT_SOME_FAILED if failures else EXIT_OK


def _encode_row(tokenizer, source, item, args, worker, scope_error, typed_error) -> dict:
    """One `encode` row: `{"source", "scope", "input_ids"[, "notes"]}` or `{"source", "error"}`."""
    notes: list[str] = []
    try:
        if isinstance(item, scope_error):
            raise item
        if isinstance(item, dict) and "scope" in item:
            scope = item["scope"]  # a table row that already holds a SCOPE string
        elif worker is not None:
            scope, notes = worker.call(
                _scope_and_notes_in_worker, item, source, args.scope_version, args.max_length, source=source
            )
        else:
            scope, notes = _scope_and_notes(tokenizer, item, source, args.scope_version, args.max_length)
        input_ids = tokenizer(scope, truncation=False, max_length=args.max_length)["input_ids"]
    except scope_error as exc:
        return failure_row(source, exc.to_dict())
    except Exception as exc:  # MemoryError, or a bug: a typed row for this input, and the batch goes on
        return failure_row(source, typed_error(exc, source).to_dict())
    row = {"source": source, "scope": scope, "input_ids": input_ids}
    if notes:
        row["notes"] = notes
    return row


def _add_disorder_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--disorder",
        choices=("encode", "raise"),
        default="encode",
        help="partially occupied or mixed sites: encode them (default; SCOPE v2's disorder section) or refuse them",
    )


def _add_encode(subparsers) -> None:
    parser = _add_command(
        subparsers,
        "encode",
        run_encode,
        "Encode crystal structures (CIF, POSCAR, JSON/JSONL of pymatgen dicts or CIF strings, or directories) "
        "as SCOPE strings and token ids.",
        "cloud-crystal encode dataset_builders/data/examples --scope-version v2 --jsonl",
    )
    parser.add_argument("inputs", nargs="+", help="structure files or directories")
    parser.add_argument(
        "--scope-version", choices=("v1", "v2"), default=DEFAULT_SCOPE_VERSION, help="SCOPE encoding version"
    )
    parser.add_argument(
        "--symprec", type=float, default=DEFAULT_SYMPREC, help="symmetry tolerance in Angstrom"
    )
    parser.add_argument(
        "--angle-tolerance", type=float, default=DEFAULT_ANGLE_TOLERANCE, help="angle tolerance in degrees"
    )
    parser.add_argument(
        "--max-length", type=int, default=DEFAULT_MAX_LENGTH, help="maximum tokens; longer strings are errors"
    )
    _add_disorder_option(parser)
    parser.add_argument(
        "--jsonl",
        action="store_true",
        help='one JSON line per crystal: {"source","scope","input_ids"[,"notes"]} or {"source","error":{"source",'
        '"reason","type","message"}}',
    )
    parser.add_argument(
        "--item-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="encode each input in a worker process and give it this many seconds; past them the worker is killed "
        "and the input gets a time_limit row (TimeLimitError), the batch goes on (default: no limit, in-process)",
    )
    parser.add_argument(
        "--item-memory-gb",
        type=float,
        default=None,
        metavar="GB",
        help="encode each input in a worker process whose address space is limited to this (a resource_limit row "
        "past it)",
    )


# -- predict ------------------------------------------------------------------------------------------------------
def prediction_row(source: str, result: dict) -> dict:
    """One `--jsonl` row: `{"source", "scope", "predictions", "units"}` (ensembles add `std`, the predictive σ per
    property in its unit, calibrated when the checkpoint is, `std_raw`, the members' standard deviation, and for a
    calibrated checkpoint `interval_95`, the half-width of the 95 % interval; Debye models add `temperatures` and `basis`; readers' changes add `notes`),
    or `{"source", "error"}` with the failure record."""
    if "error" in result:
        return failure_row(source, result["error"])
    predictions, units = {}, {}
    uncertainty: dict[str, dict] = {"std": {}, "std_raw": {}, "interval_95": {}}
    for prop in result["properties"]:
        predictions[prop["name"]] = prop["value"]
        units[prop["name"]] = prop.get("unit")
        for key, values in uncertainty.items():
            if key in prop:
                values[prop["name"]] = prop[key]
    row = {"source": source, "scope": result.get("scope"), "predictions": predictions, "units": units}
    for key, values in uncertainty.items():
        if values:
            row[key] = values
    thermo = [p for p in result["properties"] if "temperatures" in p]
    if thermo:
        row["temperatures"] = thermo[0]["temperatures"]
        row["basis"] = thermo[0].get("basis")
    if result.get("notes"):
        row["notes"] = result["notes"]
    return row


def _format_value(value) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(f"{v:.4g}" for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _prediction_summary(row: dict) -> str:
    spreads = row.get("std", {})
    return "  ".join(
        f"{name}={_format_value(value)}"
        f"{' ± ' + _format_value(spreads[name]) if name in spreads else ''} {row['units'].get(name) or ''}".rstrip()
        for name, value in row["predictions"].items()
        if name != "embedding"
    )


def _screen_to_file(args: argparse.Namespace, task: str) -> int:
    """`predict --output` / `embed`: the screening runner, resumable; a summary line on stderr."""
    from .screening import MissingExtraError, ResumeMismatchError, embed_to_file, predict_to_file

    options = dict(
        disorder=args.disorder, id_column=args.id_column, num_proc=args.num_proc, batch_size=args.batch_size,
        chunk_size=args.chunk_size, trust_remote_code=args.trust_remote_code, device=args.device,
    )  # fmt: skip
    try:
        if args.ray is not None:  # the same file as a Ray Data job
            from .screening import screen_with_ray

            ray_options = (
                {"temperatures": args.temperatures, "basis": args.basis} if task == "predict" else {}
            )
            options.pop("num_proc")
            options.pop("device")  # Ray places the model: one actor per GPU of the cluster, else on CPUs
            summary = screen_with_ray(
                task, args.model, args.inputs, args.output, address=args.ray or None, **options, **ray_options
            )
        elif task == "predict":
            summary = predict_to_file(
                args.model,
                args.inputs,
                args.output,
                temperatures=args.temperatures,
                basis=args.basis,
                **options,
            )
        else:
            summary = embed_to_file(args.model, args.inputs, args.output, **options)
    except (ResumeMismatchError, MissingExtraError) as error:
        print(f"cloud-crystal {task}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as error:
        print(f"cloud-crystal {task}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:  # a model that cannot be loaded, an output folder that cannot be written
        print(f"cloud-crystal {task}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        from pathlib import Path

        from .screening.writers import parts_folder

        print(
            f"cloud-crystal {task}: interrupted; the rows written so far are kept in "
            f"{parts_folder(Path(args.output))}: run the same command again to continue",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    if summary.already_complete:
        print(f"{summary.output} is already complete ({summary.rows} rows); nothing to do", file=sys.stderr)
    else:
        print(
            f"{summary.output}: {summary.rows} rows ({summary.failed} failed); computed {summary.computed} in "
            f"{summary.seconds:.1f} s ({summary.rows_per_second:.1f} rows/s)",
            file=sys.stderr,
        )
    return EXIT_SOME_FAILED if summary.failed else EXIT_OK


def run_predict(args: argparse.Namespace) -> int:
    if args.output:
        return _screen_to_file(args, "predict")
    if args.num_proc != 1 or args.id_column is not None or args.device is not None or args.ray is not None:
        print(
            "cloud-crystal predict: --num-proc, --id-column, --device and --ray go with --output FILE",
            file=sys.stderr,
        )
        return EXIT_USAGE
    from tqdm.auto import tqdm

    from tokenization import ScopeError
    from tokenization.structure_files import iter_structure_inputs

    predictor = load_property_pipeline(args.model, trust_remote_code=args.trust_remote_code)
    items = list(iter_structure_inputs(args.inputs))
    call_options = {"errors": "return", "batch_size": args.batch_size, "disorder": args.disorder}
    if args.temperatures:
        call_options["temperatures"] = args.temperatures
    if predictor.is_debye:
        call_options["basis"] = args.basis
    failures = 0
    progress = tqdm(
        total=len(items), desc="predicting", unit="structure", file=sys.stderr,
        disable=len(items) < PROGRESS_MIN_ITEMS,
    )  # fmt: skip
    for start in range(0, len(items), args.chunk_size):
        chunk = items[start : start + args.chunk_size]
        readable = [(source, item) for source, item in chunk if not isinstance(item, ScopeError)]
        results = predictor([item for _, item in readable], **call_options) if readable else []
        by_source = dict(zip([source for source, _ in readable], results, strict=True))
        for source, item in chunk:
            result = {"error": item.to_dict(source)} if isinstance(item, ScopeError) else by_source[source]
            row = prediction_row(source, result)
            failures += "error" in row
            _write_row(row, args.jsonl, _prediction_summary)
        progress.update(len(chunk))
    progress.close()
    if failures:
        print(f"{failures} of {len(items)} inputs failed", file=sys.stderr)
    return EXIT_SOME_FAILED if failures else EXIT_OK


def _add_predict(subparsers) -> None:
    parser = _add_command(
        subparsers,
        "predict",
        run_predict,
        "Predict properties of crystals with a trained CLOUD checkpoint (folder or Hub repo). Inputs are structure "
        "files, directories, JSON/JSONL records, or CSV/Parquet tables with a 'structure' or 'scope' column.",
        "cloud-crystal predict --model cloud-demo/formation-energy dataset_builders/data/examples --jsonl",
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        help="structure files, directories or tables (with --output also dumps, corpus folders, hub:ORG/NAME)",
    )
    parser.add_argument("--model", required=True, help="checkpoint folder or Hub repo id")
    parser.add_argument("--temperatures", type=float, nargs="+", help="temperatures in K (Debye models)")
    parser.add_argument(
        "--basis",
        choices=("formula_unit", "atom", "cell"),
        default="formula_unit",
        help="Debye models: thermodynamic values per mole of formula units (reduced formula), atoms or input cells",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="structures per forward pass")
    parser.add_argument(
        "--chunk-size", type=int, default=256, help="structures handed to the pipeline at once"
    )
    _add_disorder_option(parser)
    parser.add_argument("--trust-remote-code", action="store_true", help="run the checkpoint's own code")
    _add_output_options(parser, required=False)
    parser.add_argument(
        "--jsonl",
        action="store_true",
        help='one JSON line per crystal: {"source","predictions","units"[,"std","std_raw","interval_95","basis",'
        '"temperatures","notes"]} ("std": an ensemble\'s σ per property, calibrated on held-out rows when the '
        'checkpoint is; "std_raw": the members\' spread; "interval_95": half-width of the 95 %% interval) or '
        '{"source","error":{"source","reason","type","message"}}',
    )


def _add_output_options(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument(
        "--output",
        required=required,
        metavar="FILE",
        help="write one row per crystal to FILE (.parquet, .jsonl or .csv, by suffix) in input order; the same "
        "command run again after a kill resumes it",
    )
    parser.add_argument(
        "--num-proc",
        type=int,
        default=1,
        help="with --output: processes that encode structures (1: this one)",
    )
    parser.add_argument(
        "--id-column",
        default=None,
        help="with --output: the table column naming rows, instead of id or material_id",
    )
    parser.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="with --output: run as a Ray Data job (extra 'ray') on the cluster at ADDRESS ('auto', host:6379, "
        "ray://host:10001), or on a local Ray without ADDRESS; the same file, resumed the same way",
    )
    parser.add_argument(
        "--device",
        default=None,
        help="with --output: where the model runs, e.g. cpu, cuda:1; unset: cuda when there is a GPU",
    )


def run_embed(args: argparse.Namespace) -> int:
    return _screen_to_file(args, "embed")


def _add_embed(subparsers) -> None:
    parser = _add_command(
        subparsers,
        "embed",
        run_embed,
        "Write the pooled embedding of each crystal (an ensemble: the mean of its members') with a CLOUD checkpoint, "
        "one row per crystal with the same names as 'predict --output'. The file is an index for 'similar'.",
        "cloud-crystal embed --model cloud-demo/formation-energy dataset_builders/data/examples --output emb.parquet",
    )
    parser.add_argument(
        "inputs", nargs="+", help="structure files, directories, tables, dumps or hub:ORG/NAME"
    )
    parser.add_argument("--model", required=True, help="checkpoint folder or Hub repo id")
    parser.add_argument("--batch-size", type=int, default=32, help="structures per forward pass")
    parser.add_argument("--chunk-size", type=int, default=256, help="structures per chunk (unit of resuming)")
    _add_disorder_option(parser)
    parser.add_argument("--trust-remote-code", action="store_true", help="run the checkpoint's own code")
    _add_output_options(parser, required=True)


def run_similar(args: argparse.Namespace) -> int:
    from datasets.utils.logging import disable_progress_bar

    from .screening import MissingExtraError, find_similar

    disable_progress_bar()  # no bar while the index is built
    if not args.queries and not args.row:
        print("cloud-crystal similar: give QUERY files or --row SOURCE", file=sys.stderr)
        return EXIT_USAGE
    try:
        answers, warning = find_similar(
            args.index, args.queries, args.row or [], k=args.k, model=args.model,
            trust_remote_code=args.trust_remote_code,
        )  # fmt: skip
    except KeyError as error:
        print(f"cloud-crystal similar: {error.args[0]}", file=sys.stderr)
        return EXIT_USAGE
    except (MissingExtraError, OSError, ValueError) as error:
        print(f"cloud-crystal similar: {error}", file=sys.stderr)
        return EXIT_USAGE
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    for answer in answers:
        if answer.error is not None:
            row = {"query": answer.query, **failure_row(answer.query, answer.error)}
            _write_row(row, args.jsonl, str)
        for neighbour in answer.neighbours:
            if args.jsonl:
                sys.stdout.write(json.dumps({"query": answer.query, **neighbour.to_dict()}) + "\n")
            else:
                sys.stdout.write(
                    f"{answer.query}\t{neighbour.rank}\t{neighbour.source}\t{neighbour.formula}\t"
                    f"SG{neighbour.space_group}\t{neighbour.distance:.6f}\n"
                )
    return EXIT_SOME_FAILED if any(answer.error for answer in answers) else EXIT_OK


def _add_similar(subparsers) -> None:
    parser = _add_command(
        subparsers,
        "similar",
        run_similar,
        "Find the crystals of an embedding file ('embed') nearest to each query by cosine distance (0 = same "
        "direction, 2 = opposite). A QUERY is a structure file, embedded with the index's model (or --model); "
        "--row SOURCE takes a row of the index itself. Needs the optional extra: pip install 'cloud-crystal[faiss]'.",
        "cloud-crystal similar --index emb.parquet dataset_builders/data/examples/NaCl.cif -k 5 --jsonl",
    )
    parser.add_argument("queries", nargs="*", metavar="QUERY", help="structure files to search for")
    parser.add_argument("--index", required=True, help="a Parquet file written by 'cloud-crystal embed'")
    parser.add_argument("-k", type=int, default=10, help="neighbours per query")
    parser.add_argument(
        "--row", action="append", metavar="SOURCE", help="query with the index's row SOURCE (repeatable)"
    )
    parser.add_argument(
        "--model", default=None, help="embed the queries with this model instead of the one the index records"
    )
    parser.add_argument("--trust-remote-code", action="store_true", help="run the checkpoint's own code")
    parser.add_argument(
        "--jsonl",
        action="store_true",
        help='one JSON line per neighbour, nearest first: {"query","rank","source","formula","space_group",'
        '"distance","row"}; a query that failed: {"query","source","error":{...}}',
    )


# -- evaluate -----------------------------------------------------------------------------------------------------
def run_evaluate(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from tokenization import ScopeError
    from tokenization.structure_files import iter_structure_inputs

    from .training.metrics import regression_metrics

    table = pd.read_parquet(args.data) if args.data.endswith(".parquet") else pd.read_csv(args.data)
    if args.target not in table.columns:
        print(
            f"{args.data}: no column {args.target!r} (columns: {', '.join(table.columns)})", file=sys.stderr
        )
        return EXIT_USAGE
    items = list(iter_structure_inputs([args.data]))
    predictor = load_property_pipeline(args.model, trust_remote_code=args.trust_remote_code)
    readable = [(row, item) for row, (_, item) in enumerate(items) if not isinstance(item, ScopeError)]
    results = predictor([item for _, item in readable], errors="return", batch_size=args.batch_size)
    predictions, truths, failures = [], [], len(items) - len(readable)
    for (row, _), result in zip(readable, results, strict=True):
        value = next((p["value"] for p in result.get("properties", []) if p["name"] == args.target), None)
        label = table[args.target].iloc[row]
        if "error" in result or value is None:
            failures += 1
        elif label == label:  # rows without a label are not scored
            predictions.append(value)
            truths.append(float(label))
    if not predictions:
        print(f"no row of {args.data} could be scored ({failures} failed)", file=sys.stderr)
        return EXIT_SOME_FAILED
    metrics = regression_metrics(np.array(predictions)[:, None], np.array(truths)[:, None], [args.target])
    report = {"model": args.model, "data": args.data, "target": args.target, "rows_scored": len(predictions),
              "rows_failed": failures, **metrics}  # fmt: skip
    print(json.dumps(report, indent=2))
    return EXIT_SOME_FAILED if failures else EXIT_OK


def _add_evaluate(subparsers) -> None:
    parser = _add_command(
        subparsers,
        "evaluate",
        run_evaluate,
        "Score a trained CLOUD checkpoint on a labelled table (CSV or Parquet with a 'structure' or 'scope' column): "
        "MAE, RMSE, R2 and MAE/MAD in the target's units (MAD is the MAE of predicting the table's mean).",
        "cloud-crystal evaluate --model cloud-demo/formation-energy --data cloud-demo/data/fe_test.parquet "
        "--target formation_energy_per_atom",
    )
    parser.add_argument("--model", required=True, help="checkpoint folder or Hub repo id")
    parser.add_argument("--data", required=True, help="CSV or Parquet table with labels")
    parser.add_argument("--target", required=True, help="label column, named as the model's target")
    parser.add_argument("--batch-size", type=int, default=32, help="structures per forward pass")
    parser.add_argument("--trust-remote-code", action="store_true", help="run the checkpoint's own code")


# -- demo ---------------------------------------------------------------------------------------------------------
def run_demo_command(args: argparse.Namespace) -> int:
    from .demo import run_demo
    from .training.engine import configure_logging

    configure_logging()
    run_demo(args.output_dir, size=args.size, seed=args.seed)
    return EXIT_OK


def _add_demo(subparsers) -> None:
    parser = _add_command(
        subparsers,
        "demo",
        run_demo_command,
        "Run CLOUD end to end on the bundled real data (about 10 minutes on 2 CPU cores): encode 6,317 Materials "
        "Project crystals, pretrain by masked-LM, fine-tune formation energy and a Debye model, compare with "
        "baselines, save Hub-layout checkpoints, reload them in a fresh process, predict known crystals, plot.",
        "cloud-crystal demo --output-dir cloud-demo",
    )
    parser.add_argument("--output-dir", default="cloud-demo", help="folder for data, checkpoints, plots")
    parser.add_argument(
        "--size", choices=("full", "smoke"), default="full", help="'smoke': a 1-minute run on 240 structures"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the splits, initialisation and data order"
    )


# -- serve / space (the web app, `modeling_cloud/app`; Gradio is imported only when they run) ------------------
def run_serve(args: argparse.Namespace) -> int:
    import importlib.util

    from .app.serving import demo_checkpoints, serve

    if importlib.util.find_spec("gradio") is None:
        print("cloud-crystal serve: the page needs Gradio: pip install 'cloud-crystal[app]'", file=sys.stderr)
        return EXIT_USAGE
    try:
        models = args.model or demo_checkpoints("cloud-demo")
    except FileNotFoundError as error:
        print(f"cloud-crystal serve: {error}", file=sys.stderr)
        return EXIT_USAGE
    serve(models, host=args.host, port=args.port, neighbours=args.neighbours, cache_dir=args.cache_dir)
    return EXIT_OK


def _add_serve(subparsers) -> None:
    parser = _add_command(
        subparsers,
        "serve",
        run_serve,
        "Serve the web page (Gradio) on checkpoints: upload, paste or pick a crystal; see its SCOPE string, each "
        "model's predictions (with the ensemble's std), Debye curves, a 3D view and similar bundled crystals. "
        "Without --model it uses the demo's checkpoints under cloud-demo/. Needs the `app` extra.",
        "cloud-crystal serve --model cloud-demo/formation-energy --model cloud-demo/debye --port 7860",
    )
    parser.add_argument(
        "--model",
        action="append",
        metavar="DIR_OR_REPO",
        help="checkpoint folder or Hub repo id (repeatable)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0: every one)")
    parser.add_argument("--port", type=int, default=7860, help="port")
    parser.add_argument(
        "--neighbours", type=int, default=5, help="similar bundled crystals to show (0: none, no index)"
    )
    parser.add_argument(
        "--cache-dir",
        default=None,
        help="where the neighbour index is kept (default <HF_HOME>/cloud-crystal)",
    )


def run_space(args: argparse.Namespace) -> int:
    from .app.space import publish_space, write_space

    try:
        folder = write_space(
            args.repo_id, args.model, args.output_dir, wheel=args.wheel, neighbours=args.neighbours
        )
    except (FileNotFoundError, RuntimeError) as error:
        print(f"cloud-crystal space: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(f"Space files written to {folder}")
    if not args.no_push:
        url = publish_space(folder, args.repo_id, private=args.private)
        print(f"published to {url}")
    return EXIT_OK


def _add_space(subparsers) -> None:
    parser = _add_command(
        subparsers,
        "space",
        run_space,
        "Write a Hugging Face Space that runs the web page on Hub models (app.py, requirements.txt, the Space card "
        "with sdk: gradio and the model repos, a wheel of this package) and publish it.",
        "cloud-crystal space my-org/cloud-demo --model my-org/cloud-formation-energy --model my-org/cloud-debye",
    )
    parser.add_argument("repo_id", metavar="ORG/NAME", help="the Space repository")
    parser.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="REPO",
        help="model repo id the Space loads (repeatable)",
    )
    parser.add_argument(
        "--output-dir", default=None, help="folder for the Space files (default: space-<name>)"
    )
    parser.add_argument("--wheel", default=None, help="a wheel of this package to ship (default: build one)")
    parser.add_argument("--neighbours", type=int, default=5, help="similar bundled crystals the page shows")
    parser.add_argument("--private", action="store_true", help="create the Space private")
    parser.add_argument("--no-push", action="store_true", help="write the files only")


# -- corpus -------------------------------------------------------------------------------------------------------
def run_corpus(args: argparse.Namespace) -> int:
    from dataset_builders.corpus import CorpusFetchError, build_corpus

    try:
        summary = build_corpus(
            optimade=args.optimade,
            files=args.dump,
            output_dir=args.output_dir,
            filter=args.filter,
            page_size=args.page_size,
            scope_version=args.scope_version,
            num_proc=args.num_proc,
            shard_size=args.shard_size,
            limit=args.limit,
            symprec=args.symprec,
            angle_tolerance=args.angle_tolerance,
            push_to_hub=args.push_to_hub,
            private=args.private,
        )
    except CorpusFetchError as error:
        print(f"{error}\nthe state is saved: run the same command again to resume", file=sys.stderr)
        return EXIT_SOME_FAILED
    except (ValueError, FileNotFoundError) as error:
        print(f"cloud-crystal corpus: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(summary.to_dict(), indent=2))
    return EXIT_OK


def _add_corpus(subparsers) -> None:
    parser = _add_command(
        subparsers,
        "corpus",
        run_corpus,
        "Build a pretraining corpus: structures from OPTIMADE providers (base URLs or provider ids such as mp, "
        "alexandria) and/or bulk dumps (Materials Project / Alexandria JSON, .json[l][.gz|.bz2|.xz], or any file "
        "'encode' reads) -> SCOPE strings deduplicated by canonical v2 string, with merged sources and counts -> "
        "Parquet shards, failures.jsonl (one failure record per skipped entry) and a dataset card. Running it again "
        "with the same --output-dir resumes. Exit 0 when the run completed (counted failures included), 1 when a "
        "provider failed (run again to resume), 2 on a usage error.",
        "cloud-crystal corpus --optimade https://optimade.materialsproject.org --filter 'nelements<=3' "
        "--num-proc 8 --output-dir mp-corpus --push-to-hub my-org/mp-scope",
    )
    parser.add_argument("--optimade", nargs="+", default=[], metavar="URL_OR_ID", help="OPTIMADE providers")
    parser.add_argument(
        "--dump", nargs="+", default=[], metavar="PATH", help="dump files, structure files, folders"
    )
    parser.add_argument(
        "--filter", default=None, help="OPTIMADE filter, e.g. 'elements HAS \"O\" AND nsites<=40'"
    )
    parser.add_argument(
        "--page-size", type=int, default=100, help="entries per OPTIMADE request (and per page of a file)"
    )
    parser.add_argument("--limit", type=int, default=None, help="at most this many entries per source")
    parser.add_argument(
        "--output-dir", required=True, help="folder of shards, failures.jsonl, README.md and state"
    )
    parser.add_argument(
        "--scope-version",
        choices=("v1", "v2"),
        default="v2",
        help="version of the 'scope' column (deduplication always uses the canonical v2 string)",
    )
    parser.add_argument("--num-proc", type=int, default=1, help="encoding processes")
    parser.add_argument("--shard-size", type=int, default=100_000, help="rows per Parquet shard")
    parser.add_argument(
        "--symprec", type=float, default=DEFAULT_SYMPREC, help="symmetry tolerance in Angstrom"
    )
    parser.add_argument(
        "--angle-tolerance", type=float, default=DEFAULT_ANGLE_TOLERANCE, help="angle tolerance in degrees"
    )
    parser.add_argument(
        "--push-to-hub", metavar="ORG/NAME", default=None, help="upload to this Hub dataset repo"
    )
    parser.add_argument("--private", action="store_true", help="create the Hub repository private")


# -- entry point --------------------------------------------------------------------------------------------------
def _add_training(subparsers) -> None:
    from .training.commands import add_training_commands

    add_training_commands(subparsers, _add_command)


_COMMAND_BUILDERS: list[Callable] = [
    _add_encode,
    _add_corpus,
    _add_training,
    _add_predict,
    _add_embed,
    _add_similar,
    _add_evaluate,
    _add_demo,
    _add_serve,
    _add_space,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cloud-crystal",
        description="CLOUD: a crystal language model over SCOPE strings (encode, train, predict, publish).",
        formatter_class=_HelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in _COMMAND_BUILDERS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "symprec", 1.0) <= 0:
        parser.error("--symprec must be positive")
    try:
        return args.handler(args)
    except BrokenPipeError:
        # Output piped into `head` and closed early: not an error of ours.
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
