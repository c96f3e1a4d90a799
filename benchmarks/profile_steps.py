"""Where a cold node's time goes: microseconds per node for each step of the runner, in one real run.

    python benchmarks/profile_steps.py [--nodes 10000] [--shape chain] [--dir /tmp]

A profiler that hooks every call (cProfile) inflates the many small steps of
a node several times over; this wraps only the runner's main steps with a
clock, runs one cold ``wfe run`` in this process and prints, per step, how
often it ran per node and its time per node (inclusive: a step's figure
contains the steps it calls). ``--dir`` picks the disk the store goes on
(a tmpfs such as /dev/shm shows the engine without the disk's cost).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gen import write

import wfe.engine._lease as lease
import wfe.engine._runner as runner
import wfe.engine._task as task
import wfe.storage._local as fsio
import wfe.store._blobs as blobs
import wfe.store._records as records

STEPS: list[tuple[Any, str, str]] = [
    (runner._Run, "_loop", "the scheduling loop (all of the below)"),
    (runner._Run, "_start", "start a node: look up, lease, submit"),
    (runner._Run, "lookup", "look up its action"),
    (lease.Leases, "claim", "take the lease (and look again)"),
    (runner._Run, "task", "make its task"),
    (runner._Run, "submit", "submit the task"),
    (task, "_decode_input", "decode an input"),
    (task, "_store_outputs", "encode and store its output"),
    (blobs.BlobStore, "put_sized", "put the output blob"),
    (runner._Run, "_complete", "complete a node"),
    (runner._Run, "record_action", "write its action entry"),
    (lease.Leases, "release", "release the lease"),
    (runner._Run, "_checkpoint", "checkpoint the run record"),
    (records.ConfigStore, "put_json", "store a config (before the loop)"),
    (fsio.LocalIO, "write_bytes", "write a small record (temp file, link)"),
    (fsio.LocalIO, "read_bytes", "read a record (or miss)"),
    (fsio.LocalIO, "link_new", "link a lease to the run's owner file"),
    (fsio.LocalIO, "delete", "delete a file"),
]


def timed(totals: dict[str, list[float]], label: str, function: Callable[..., Any]) -> Callable[..., Any]:
    clock = time.perf_counter

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = clock()
        try:
            return function(*args, **kwargs)
        finally:
            entry = totals.setdefault(label, [0, 0.0])
            entry[0] += 1
            entry[1] += clock() - start

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--shape", choices=("chain", "fanout"), default="chain")
    parser.add_argument("--dir", default=None, help="where the store goes (default: the system's temp folder)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="wfe-steps-"))
    workflow = write(work, args.shape, args.nodes)
    totals: dict[str, list[float]] = {}
    for owner, name, label in STEPS:
        setattr(owner, name, timed(totals, label, getattr(owner, name)))
    runner.run_task = timed(totals, "run the node's task", runner.run_task)

    from wfe.cli import main as cli

    store = tempfile.mkdtemp(prefix="wfe-steps-store-", dir=args.dir)
    clock = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = cli(["run", str(workflow), "--store", store, "--json"])
    wall = time.perf_counter() - clock
    if code != 0:
        raise SystemExit(f"the run failed (exit {code})")
    n = args.nodes
    print(f"cold {args.shape} of {n} nodes, store in {store}: {wall:.2f} s in all, {wall / n * 1e6:.0f} us per node\n")
    print("| step | calls per node | us per call | us per node |")
    print("|---|---:|---:|---:|")
    for label, (calls, seconds) in sorted(totals.items(), key=lambda item: -item[1][1]):
        print(f"| {label} | {calls / n:.1f} | {seconds / calls * 1e6:.1f} | {seconds / n * 1e6:.1f} |")
    print("\nEach figure includes the clock around it (about 0.3 us per call) and the steps it calls.")
    shutil.rmtree(store, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
