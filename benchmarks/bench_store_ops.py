"""Whole-store operations: verify, gc (dry run and real), sync local -> local and local -> memory.

    python benchmarks/bench_store_ops.py [--blobs 2000] [--size 65536] [--runs 20]

Builds a local store with ``--blobs`` random blobs of ``--size`` bytes, and
``--runs`` run records naming them (half of the runs kept by ``gc
--keep-last``), then times each operation once in this process. Prints a
markdown table: seconds, items per second and MiB per second.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

import wfe
from wfe.ops._gc import collect_garbage
from wfe.ops._sync import sync
from wfe.ops._verify import verify_store
from wfe.store._manifest import NodeRecord, RunManifest
from wfe.store._records import new_run_id


def build(root: str, blobs: int, size: int, runs: int) -> list[str]:
    store = wfe.open_store(root)
    digests = [store.blobs.put(os.urandom(size)) for _ in range(blobs)]
    workflow = store.blobs.put(b'{"name":"bench","nodes":[{"id":"a","function":"f"}]}')
    per_run = max(1, blobs // runs)
    started = time.time() - 10_000
    for index in range(runs):
        chunk = digests[index * per_run : (index + 1) * per_run]
        outputs = [wfe.Artifact(digest=d, mime="application/octet-stream", size=size) for d in chunk]
        manifest = RunManifest(run_id=new_run_id(started + index), workflow="bench", workflow_digest=workflow,
                               status="succeeded", started=started + index, finished=started + index + 1,
                               nodes={"a": NodeRecord(status="ran", function="f", outputs=outputs)})
        store.runs.put(manifest)
    return digests


def timed(label: str, items: int, size: int, action: Callable[[], Any]) -> str:
    clock = time.perf_counter()
    action()
    seconds = time.perf_counter() - clock
    return f"| {label} | {items} | {seconds:.2f} | {items / seconds:,.0f} | {items * size / seconds / 2**20:,.1f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blobs", type=int, default=2000)
    parser.add_argument("--size", type=int, default=64 * 1024)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="wfe-bench-ops-")
    try:
        source = os.path.join(folder, "store")
        build(source, args.blobs, args.size, args.runs)
        store = wfe.open_store(source)
        n, size = args.blobs, args.size
        print(f"{n} blobs of {size} bytes, {args.runs} runs\n")
        print("| operation | blobs | seconds | blobs/s | MiB/s |\n|---|---|---|---|---|")
        print(timed("verify (re-hash all)", n, size, lambda: verify_store(store)))
        copy = wfe.open_store(os.path.join(folder, "copy"))
        print(timed("sync local -> local", n, size, lambda: sync(store, copy)))
        print(timed("sync again (nothing to copy)", n, size, lambda: sync(store, copy)))
        memory = wfe.open_store(f"memory://bench-{uuid.uuid4().hex[:8]}")
        print(timed("sync local -> memory", n, size, lambda: sync(store, memory)))
        print(timed("gc --dry-run --keep-last 10", n, size,
                    lambda: collect_garbage(store, keep_last=args.runs // 2, grace=0, dry_run=True)))
        print(timed("gc --keep-last 10", n, size, lambda: collect_garbage(store, keep_last=args.runs // 2, grace=0)))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
