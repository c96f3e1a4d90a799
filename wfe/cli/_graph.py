"""``wfe graph WORKFLOW`` (Mermaid or DOT text) and ``wfe report RUN -o report.html``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from . import EXIT_OK, add_common_flags, add_store_argument, store_from_args


def register(subparsers: Any) -> None:
    graph = subparsers.add_parser("graph", help="print a workflow's graph as Mermaid or DOT")
    graph.add_argument("workflow", nargs="?", help="workflow file (default with --run: the run's own workflow)")
    graph.add_argument("--format", choices=["mermaid", "dot"], default="mermaid",
                       help="output format (default mermaid)")
    graph.add_argument("--run", metavar="RUN", help="colour nodes by this run's status (id, prefix or 'latest')")
    graph.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    add_store_argument(graph)
    add_common_flags(graph)
    graph.set_defaults(handler=graph_main)

    report = subparsers.add_parser("report", help="write a self-contained HTML page about a run")
    report.add_argument("run", help="run id, a unique prefix of one, or 'latest'")
    report.add_argument("-o", "--output", metavar="FILE", default="report.html", help="HTML file (default report.html)")
    add_store_argument(report)
    add_common_flags(report)
    report.set_defaults(handler=report_main)


def graph_main(args: argparse.Namespace) -> int:
    from .._errors import WfeError
    from ..graph._load import load_workflow
    from ..ops._history import load_run, run_workflow
    from ..report._graphviz import render

    statuses = None
    graph = load_workflow(args.workflow) if args.workflow else None
    if args.run:
        store = store_from_args(args)
        manifest = load_run(store, args.run)
        statuses = {node_id: record.status for node_id, record in manifest.nodes.items()}
        graph = graph or run_workflow(store, manifest)
    if graph is None:
        raise WfeError("give a workflow file, or --run RUN to draw the workflow that run ran")
    text = render(graph, args.format, statuses)
    _write(text, args.output)
    return EXIT_OK


def report_main(args: argparse.Namespace) -> int:
    from ..ops._history import load_run
    from ..report._html import build_report

    store = store_from_args(args)
    manifest = load_run(store, args.run)
    _write(build_report(store, manifest), args.output)
    print(f"wrote {args.output} (run {manifest.run_id}, {len(manifest.nodes)} nodes)", file=sys.stderr)
    return EXIT_OK


def _write(text: str, output: str | None) -> None:
    if not output or output == "-":
        sys.stdout.write(text)
        return
    import os

    partial = output + ".partial"
    with open(partial, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(partial, output)
