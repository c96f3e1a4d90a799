"""``wfe runs``, ``wfe show RUN[:NODE[:PORT]]``, ``wfe rerun RUN`` and ``wfe explain RUN NODE`` (or ``RUN:NODE``)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from . import EXIT_FAILED, EXIT_OK, add_common_flags, add_store_argument, store_from_args
from ._run import add_execution_flags

RUN_HELP = "run id, a unique prefix of one, or 'latest'"
ADDRESS_HELP = RUN_HELP + "; RUN:NODE[:PORT] for one node (and output)"


def register(subparsers: Any) -> None:
    runs = subparsers.add_parser("runs", help="list runs, newest first")
    runs.add_argument("--workflow", metavar="NAME", help="only runs of this workflow")
    runs.add_argument("--status", choices=["succeeded", "failed", "running", "interrupted", "died"],
                      help="only runs with this status")
    runs.add_argument("--limit", type=int, default=20, metavar="N", help="at most N runs (default 20; 0 for all)")
    runs.add_argument("--json", action="store_true", help="print JSON lines, one run per line")
    runs.add_argument("--all", action="store_true",
                      help="also list the inner runs of sub-workflows and loop iterations")
    add_store_argument(runs)
    add_common_flags(runs)
    runs.set_defaults(handler=runs_main)

    show = subparsers.add_parser("show", help="show a run: every node's status, key, inputs and outputs")
    show.add_argument("run", metavar="RUN[:NODE[:PORT]]", help=ADDRESS_HELP)
    show.add_argument("--json", action="store_true", help="print the run manifest as JSON")
    show.add_argument("--no-logs", action="store_true", help="do not print captured node logs")
    add_store_argument(show)
    add_common_flags(show)
    show.set_defaults(handler=show_main)

    rerun = subparsers.add_parser("rerun", help="run again exactly what a run ran")
    rerun.add_argument("run", help=RUN_HELP)
    rerun.add_argument("--force", action="store_true", help="recompute every node instead of using the cache")
    rerun.add_argument("--verify", action="store_true",
                       help="compare every output with the recorded one; exit 1 if any differs")
    rerun.add_argument("--base-dir", metavar="DIR",
                       help="folder of the workflow's modules and files (default: the current folder; "
                       "never the folder a run record names)")
    rerun.add_argument("--allow-module", action="append", default=[], metavar="MODULE",
                       help="import an installed module whose registered functions the run used (repeatable)")
    rerun.add_argument("--allow-path", action="append", default=[], metavar="PATH",
                       help="let a file node whose recorded blob is gone read this file or folder outside "
                       "the workflow's folder (repeatable)")
    rerun.add_argument("--json", action="store_true", help="print the result as JSON")
    add_execution_flags(rerun)
    add_store_argument(rerun)
    add_common_flags(rerun)
    rerun.set_defaults(handler=rerun_main)

    explain = subparsers.add_parser("explain", help="why a node ran instead of coming from the cache")
    explain.add_argument("run", metavar="RUN[:NODE]", help=RUN_HELP + "; or RUN:NODE, without a NODE argument")
    explain.add_argument("node", nargs="?", help="node id (or give RUN:NODE)")
    explain.add_argument("--json", action="store_true", help="print the explanation as JSON")
    add_store_argument(explain)
    add_common_flags(explain)
    explain.set_defaults(handler=explain_main)


def _when(moment: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(moment))


def _duration(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def runs_main(args: argparse.Namespace) -> int:
    from ..ops._history import RunSummary, iter_runs

    store = store_from_args(args)
    shown = 0
    if not args.json:
        print(f"{'RUN':<26} {'WORKFLOW':<20} {'STARTED':<19} {'DURATION':>9} {'STATUS':<11} RAN CACHED FAILED")
    for manifest in iter_runs(store, workflow=args.workflow, status=args.status):
        if manifest.parent is not None and not args.all:
            continue
        if args.limit and shown >= args.limit:
            break
        shown += 1
        row = RunSummary.of(manifest)
        if args.json:
            print(json.dumps(row.__dict__))
            continue
        print(f"{row.run_id:<26} {row.workflow[:20]:<20} {_when(row.started):<19} {_duration(row.duration):>9} "
              f"{row.status:<11} {row.ran:>3} {row.cached:>6} {row.failed:>6}")
    if not shown and not args.json:
        print("(no runs)", file=sys.stderr)
    return EXIT_OK


def show_main(args: argparse.Namespace) -> int:
    from ..ops._history import load_run, shown_status

    store = store_from_args(args)
    if ":" in args.run:
        return _show_node(args, store)
    manifest = load_run(store, args.run)
    status = shown_status(manifest)
    if args.json:
        print(json.dumps({**manifest.model_dump(mode="json", exclude_none=True), "status": status}, indent=2))
        return EXIT_OK
    counts = manifest.counts()
    duration = manifest.finished - manifest.started if manifest.finished else None
    gone = f" (its process {manifest.owner} is gone; it cannot finish)" if status == "died" else ""
    print(f"run {manifest.run_id}  workflow {manifest.workflow}  {status}{gone}")
    print(f"started {_when(manifest.started)}  duration {_duration(duration)}  "
          + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    print(f"workflow blob {manifest.workflow_digest}")
    extra = manifest.model_extra or {}
    if extra.get("rerun_of"):
        print(f"rerun of {extra['rerun_of']}")
    for node_id, record in manifest.nodes.items():
        print()
        _print_node(store, node_id, record, record.outputs, logs=not args.no_logs)
    return EXIT_OK


def _print_node(store: Any, node_id: str, record: Any, outputs: list[Any], *, logs: bool) -> None:
    print(f"{node_id}: {record.status}  {_duration(record.duration)}")
    if record.function:
        print(f"  function   {record.function}  version {record.version}")
        print(f"  config     {record.config}")
        print(f"  action key {record.action_key}")
    for position, artifact in enumerate(record.inputs, start=1):
        print(f"  input {position}    {artifact.digest}  {artifact.mime}  {artifact.size} B")
    for artifact in outputs:
        port = f"  port {artifact.name}" if artifact.name else ""
        print(f"  output     {artifact.digest}  {artifact.mime}  {artifact.size} B{port}")
    if record.error:
        print(f"  error      {record.error}")
    if record.log and logs:
        _print_log(store, record.log)


def _show_node(args: argparse.Namespace, store: Any) -> int:
    """``wfe show RUN:NODE[:PORT]``: one node of a run (and only the output at PORT)."""
    from ..ops._address import parse_address, resolve_node
    from ..ops._outputs import pick_output

    address = parse_address(args.run)
    if address.node is None:
        from .._errors import AddressError

        raise AddressError(f"{args.run!r} is a digest; `wfe show` takes RUN or RUN:NODE[:PORT]")
    node_text = f"{address.run}:{address.node}"
    manifest, node_id = resolve_node(store, node_text)
    record = manifest.nodes[node_id]
    outputs = [pick_output(manifest, node_id, address.port)] if address.port is not None else record.outputs
    if args.json:
        shown = {"run_id": manifest.run_id, "node": node_id, **record.model_dump(mode="json", exclude_none=True)}
        shown["outputs"] = [a.model_dump(mode="json", exclude_none=True) for a in outputs]
        print(json.dumps(shown, indent=2))
        return EXIT_OK
    print(f"run {manifest.run_id}  workflow {manifest.workflow}")
    _print_node(store, node_id, record, outputs, logs=not args.no_logs)
    return EXIT_OK


def _print_log(store: Any, digest: str) -> None:
    from .._errors import WfeError

    print(f"  log        {digest}")
    try:
        text = store.blobs.get(digest).decode("utf-8", errors="replace")
    except WfeError as exc:
        print(f"    (unavailable: {exc})")
        return
    for line in text.rstrip("\n").splitlines():
        print(f"    | {line}")


def rerun_main(args: argparse.Namespace) -> int:
    from ..engine._executors import check_jobs, parse_executor
    from ..graph._functions import allow_modules
    from ..ops._rerun import rerun, verify_summary

    parse_executor(args.executor)
    check_jobs(args.jobs)
    store = store_from_args(args)
    allow_modules(args.allow_module)
    outcome = rerun(store, args.run, force=args.force, verify=args.verify, base_dir=args.base_dir,
                    executor=args.executor, jobs=args.jobs, allow_paths=args.allow_path)
    if args.json:
        print(json.dumps({**verify_summary(outcome), **{"nodes": outcome.result.to_json()["nodes"]}}, indent=2))
    else:
        counts = outcome.result.manifest.counts()
        summary = ", ".join(f"{counts[s]} {s}" for s in ("ran", "cached", "failed", "skipped") if counts.get(s))
        print(f"{outcome.result.status}: run {outcome.result.run_id} replayed {outcome.original.run_id} ({summary})")
        if outcome.verified:
            for difference in outcome.differences:
                print(f"DIFFERS {difference.describe()}")
            for node_id, why in sorted(outcome.unchecked.items()):
                print(f"unchecked {node_id}: {why}")
            verdict = "every output matches" if not outcome.differences else f"{len(outcome.differences)} differ"
            print(f"verify: {len(outcome.compared)} nodes compared, {verdict}")
    return EXIT_OK if outcome.ok else EXIT_FAILED


def explain_main(args: argparse.Namespace) -> int:
    from ..ops._explain import explain

    store = store_from_args(args)
    if args.node is None:
        from ..ops._address import resolve_node

        manifest, node_id = resolve_node(store, args.run)
        found = explain(store, manifest.run_id, node_id)
    else:
        found = explain(store, args.run, args.node)
    if args.json:
        print(json.dumps(found.__dict__, indent=2))
    else:
        print(found.text())
    return EXIT_OK
