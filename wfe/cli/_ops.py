"""``wfe verify``, ``wfe gc`` and ``wfe sync``: whole-store operations."""

from __future__ import annotations

import argparse
import json
from typing import Any

from . import EXIT_FAILED, EXIT_OK, add_common_flags, add_store_argument, parse_options, store_from_args


def register(subparsers: Any) -> None:
    verify = subparsers.add_parser("verify", help="re-hash every blob and check every record's references")
    verify.add_argument("--repair", action="store_true",
                        help="drop corrupt blobs and the cache entries that need missing or corrupt blobs")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    _quiet(verify)
    add_store_argument(verify)
    add_common_flags(verify)
    verify.set_defaults(handler=verify_main)

    gc = subparsers.add_parser("gc", help="delete old runs and what only they use")
    keep = gc.add_mutually_exclusive_group(required=True)
    keep.add_argument("--keep-last", type=int, metavar="N", help="keep the newest N runs of each workflow")
    keep.add_argument("--keep-since", metavar="DATE",
                      help="keep runs started since DATE (YYYY-MM-DD[THH:MM], UTC) or an age (7d)")
    gc.add_argument("--grace", default="1h", metavar="AGE",
                    help="never delete a blob younger than this (default 1h), so concurrent writers are safe")
    gc.add_argument("--dry-run", action="store_true", help="report what would be deleted, delete nothing")
    gc.add_argument("--json", action="store_true", help="print the report as JSON")
    _quiet(gc)
    add_store_argument(gc)
    add_common_flags(gc)
    gc.set_defaults(handler=gc_main)

    sync = subparsers.add_parser("sync", help="copy what one store lacks from another (resumable)")
    sync.add_argument("source", metavar="SRC_URL")
    sync.add_argument("destination", metavar="DST_URL")
    sync.add_argument("--runs", nargs="+", metavar="RUN", help="only these runs and what they need")
    for end in ("source", "destination"):
        sync.add_argument(f"--{end}-option", action="append", default=[], metavar="KEY=VALUE",
                          help=f"backend option for the {end} store, repeatable")
    sync.add_argument("--json", action="store_true", help="print the report as JSON")
    _quiet(sync)
    add_common_flags(sync)
    sync.set_defaults(handler=sync_main)


def _quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def _progress(args: argparse.Namespace) -> Any:
    from ._bars import terminal_progress

    return terminal_progress(enabled=not args.quiet and not args.json)


def verify_main(args: argparse.Namespace) -> int:
    from ..ops._verify import verify_store

    store = store_from_args(args)
    with _progress(args) as progress:
        report = verify_store(store, repair=args.repair, progress=progress)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        for line in report.lines():
            print(line)
        state = "clean" if report.clean else "repaired" if report.repaired_all else "PROBLEMS FOUND"
        print(f"{state}: {report.blobs} blobs ({report.bytes} bytes), {report.configs} configs, "
              f"{report.actions} actions, {report.runs} runs, {report.functions} functions checked")
    # Zero when clean, or when --repair mended all it can (runs left naming lost blobs are listed with the
    # rerun that restores them); otherwise non-zero, so a script learns the store was not clean.
    return EXIT_OK if report.clean or report.repaired_all else EXIT_FAILED


def gc_main(args: argparse.Namespace) -> int:
    from ..ops._gc import collect_garbage, parse_duration, parse_since

    store = store_from_args(args)
    keep_since = parse_since(args.keep_since) if args.keep_since is not None else None
    with _progress(args) as progress:
        report = collect_garbage(store, keep_last=args.keep_last, keep_since=keep_since,
                                 grace=parse_duration(args.grace), dry_run=args.dry_run, progress=progress)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
        return EXIT_OK
    verb = "would delete" if report.dry_run else "deleted"
    for run_id in report.deleted_runs:
        print(f"{verb} run {run_id}")
    print(f"{verb} {len(report.deleted_runs)} runs, {len(report.deleted_actions)} cache entries, "
          f"{len(report.deleted_blobs)} blobs: {report.bytes_freed} bytes {'to free' if report.dry_run else 'freed'}")
    print(f"kept {len(report.kept_runs)} runs, {report.blobs_kept} blobs they use, "
          f"{report.young_blobs_kept} blobs younger than the grace period")
    if report.live_runs:
        print(f"kept the cache and {report.blobs_kept_for_live_runs} blobs it names while runs go on: "
              + ", ".join(report.live_runs))
    return EXIT_OK


def sync_main(args: argparse.Namespace) -> int:
    from .._errors import WfeError
    from ..ops._sync import sync
    from ..store._store import open_store

    source = open_store(args.source, **parse_options(args.source_option))
    destination = open_store(args.destination, **parse_options(args.destination_option))
    if source.url == destination.url:
        raise WfeError(f"source and destination are the same store ({source.url})")
    with _progress(args) as progress:
        report = sync(source, destination, runs=args.runs, progress=progress)
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        copied = ", ".join(f"{n} {kind}" for kind, n in report.copied.items())
        present = sum(report.present.values())
        print(f"copied {copied} ({report.bytes} bytes); {present} items were already there")
        for failure in report.failures:
            print(f"FAILED {failure}")
    return EXIT_OK if report.ok else EXIT_FAILED
