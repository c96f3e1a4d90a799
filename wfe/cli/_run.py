"""``wfe run WORKFLOW``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from . import EXIT_FAILED, EXIT_OK, add_common_flags, add_store_argument, store_from_args


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
    add_common_flags(parser)
    parser.set_defaults(handler=main)


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def main(args: argparse.Namespace) -> int:
    from .._functions import allow_modules
    from .._runner import run

    store = store_from_args(args)
    allow_modules(args.allow_module)
    clock = time.perf_counter()
    printer = None if args.json else _print_node
    result = run(args.workflow, store, force=args.force, on_event=printer)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        counts = result.manifest.counts()
        summary = ", ".join(f"{counts[s]} {s}" for s in ("ran", "cached", "failed", "skipped") if counts.get(s))
        print(
            f"{result.status}: run {result.run_id}, {len(result.manifest.nodes)} nodes ({summary}) "
            f"in {time.perf_counter() - clock:.2f} s"
        )
        for node_id, record in result.manifest.nodes.items():
            if record.status == "failed" and record.traceback:
                print(f"\n--- node {node_id} failed ---\n{record.traceback.rstrip()}", file=sys.stderr)
    return EXIT_OK if result.ok else EXIT_FAILED


def _print_node(node_id: str, record: Any) -> None:
    if record.status in ("failed", "skipped"):
        print(f"  {record.status:<7} {node_id:<20} {record.error}")
        return
    for artifact in record.outputs:
        print(f"  {record.status:<7} {node_id:<20} {artifact.mime:<26} {human_size(artifact.size):>10}  {artifact.digest}")
    if not record.outputs:
        print(f"  {record.status:<7} {node_id:<20} (no outputs)")
    sys.stdout.flush()
