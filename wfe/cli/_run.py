"""``wfe run WORKFLOW``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from .._humanize import human_size
from . import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, add_common_flags, add_store_argument, one_line, store_from_args
from ._logging_setup import add_logging_flags, configure_logging
from ._progress import make_display

__all__ = ["add_execution_flags", "human_size", "register"]

LOG_TAIL_LINES = 40  # of a failed node's captured output, shown under its traceback


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("run", help="run a workflow", description="Run a workflow file.")
    parser.add_argument("workflow", help="workflow file (YAML or JSON)")
    add_store_argument(parser)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--force", action="store_true", help="ignore the action cache and run every node")
    parser.add_argument(
        "--allow-module", action="append", default=[], metavar="MODULE",
        help="import an installed module whose registered functions the workflow may use (repeatable)",
    )
    parser.add_argument(
        "--allow-path", action="append", default=[], metavar="PATH",
        help="let file nodes read this file, or files in this folder, outside the workflow's folder (repeatable)",
    )
    add_execution_flags(parser)
    add_logging_flags(parser)
    add_common_flags(parser)
    parser.set_defaults(handler=main)


def add_execution_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--executor", default="inline", metavar="KIND",
        help="inline (default), threads, processes, dask (a local cluster) or dask://HOST:PORT (a scheduler)",
    )
    parser.add_argument(
        "--jobs", "-j", type=int, default=None, metavar="N",
        help="workers for threads, processes or a local dask cluster (default: one per CPU)",
    )


def main(args: argparse.Namespace) -> int:
    from .._errors import StoreError
    from ..engine._executors import check_jobs, parse_executor
    from ..engine._runner import run
    from ..graph._functions import allow_modules
    from ..graph._load import load_workflow

    configure_logging(args.log_level, args.log_file)
    parse_executor(args.executor)  # a bad name is a usage error before the store is touched
    check_jobs(args.jobs)
    store = store_from_args(args)
    allow_modules(args.allow_module)
    graph = load_workflow(args.workflow)
    clock = time.perf_counter()
    display = make_display(len(graph.nodes), quiet=args.json)
    handed = [graph]  # run() then holds the only reference, and frees the graph once it is planned
    del graph
    try:
        result = run(handed.pop(), store, executor=args.executor, jobs=args.jobs, force=args.force,
                     on_event=display, base_dir=Path(args.workflow).resolve().parent, allow_paths=args.allow_path)
    except KeyboardInterrupt as exc:
        if display is not None:
            display.close()
        detail = str(exc) or "run interrupted"
        print(f"interrupted: {detail}; running it again resumes from the cache", file=sys.stderr)
        return EXIT_INTERRUPTED
    except StoreError as exc:  # the store failed once the run was under way: the run failed (a bad URL is 2)
        if display is not None:
            display.close()
        if args.debug:
            raise
        print(f"error: the run failed: {one_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    if display is not None:
        display.close()
    if args.json:
        if sys.stdout.isatty():
            print(json.dumps(result.to_json(), indent=2))  # for a person
        else:
            result.write_json(sys.stdout)  # for a program: compact, a node at a time
    else:
        counts = result.manifest.counts()
        summary = ", ".join(f"{counts[s]} {s}" for s in ("ran", "cached", "failed", "skipped") if counts.get(s))
        print(
            f"{result.status}: run {result.run_id}, {len(result.manifest.nodes)} nodes ({summary}) "
            f"in {time.perf_counter() - clock:.2f} s"
        )
    for node_id, record in result.manifest.nodes.items():
        if record.status == "failed":
            print(failure_block(node_id, record, store), file=sys.stderr)
    return EXIT_OK if result.ok else EXIT_FAILED


def failure_block(node_id: str, record: Any, store: Any) -> str:
    """One readable block: the error, its traceback, and the tail of what the node printed or logged."""
    lines = [f"\n--- node {node_id} failed ---"]
    lines.append((record.traceback or record.error or "no error recorded").rstrip())
    if record.log:
        try:
            text = store.blobs.get(record.log).decode("utf-8", "replace")
        except Exception as exc:  # the block is still worth printing without the log
            text = f"(cannot read the captured output {record.log}: {exc})"
        tail = text.rstrip("\n").splitlines()[-LOG_TAIL_LINES:]
        lines.append(f"--- node {node_id} output (last {len(tail)} lines; all of it: {record.log}) ---")
        lines.extend(tail)
    return "\n".join(lines)
