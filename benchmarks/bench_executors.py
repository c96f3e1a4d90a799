"""Wall time of a wide CPU-bound workflow under each executor, as ratios to ``inline``.

    python benchmarks/bench_executors.py [--reps 5] [--nodes 64] [--seconds 0.2] [--jobs N]
    python benchmarks/bench_executors.py --quick      # 1 rep, 16 nodes: a smoke run

The workflow is one seed node fanned out to ``--nodes`` nodes that each burn
``--seconds`` of their thread's CPU time in pure Python (so they hold the GIL,
as real work in Python does). Every rep runs on a fresh local store, so
nothing is cached. ``dask`` is measured twice: with a LocalCluster already
running (``dask://ADDRESS``, what a long-lived cluster costs per run) and with
``--executor dask`` starting and stopping its own cluster inside the run.
Prints a markdown table: median wall seconds and the ratio to inline.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import wfe

FUNCTIONS = Path(__file__).resolve().parent.parent / "tests" / "workflows" / "executors"


def wide(nodes: int, seconds: float) -> wfe.WorkflowGraph:
    return wfe.WorkflowGraph(
        name="wide-cpu",
        modules=["wide"],
        nodes=[{"id": "seed", "function": "seed", "config": {"n": 1}}]
        + [{"id": f"burn{i}", "function": "burn", "config": {"i": i, "seconds": seconds}} for i in range(nodes)],
        edges=[{"source": "seed", "target": f"burn{i}"} for i in range(nodes)],
    )


def cpu_seconds() -> float:
    """CPU time used so far by this process and every process under it (exited ones included)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    try:
        import psutil
    except ImportError:
        return total
    for child in psutil.Process().children(recursive=True):  # live workers (a running dask cluster)
        try:
            times = child.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def timed(graph: wfe.WorkflowGraph, executor: str, jobs: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run on a fresh store."""
    folder = tempfile.mkdtemp(prefix="wfe-bench-")
    try:
        cpu = cpu_seconds()
        clock = time.perf_counter()
        result = wfe.run(graph, folder, base_dir=FUNCTIONS, executor=executor, jobs=jobs)
        wall = time.perf_counter() - clock
        cpu = cpu_seconds() - cpu
        assert result.ok and result.manifest.counts() == {"ran": len(graph.nodes)}, result.manifest.counts()
        return wall, cpu
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=0.2)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="1 rep of 16 nodes")
    parser.add_argument("--skip", action="append", default=[], help="leave out an executor (repeatable)")
    args = parser.parse_args()
    if args.quick:
        args.reps, args.nodes = 1, 16
    graph = wide(args.nodes, args.seconds)
    start_load = ", ".join(f"{v:.1f}" for v in os.getloadavg())  # other work on the machine skews the ratios
    executors: list[tuple[str, str]] = [("inline", "inline"), ("threads", "threads"), ("processes", "processes")]
    cluster: Any = None
    try:
        import distributed

        cluster = distributed.LocalCluster(
            n_workers=args.jobs, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=":0", scheduler_kwargs={"dashboard": False},
        )
        executors += [("dask (running cluster)", f"dask://{cluster.scheduler_address}"), ("dask (own cluster)", "dask")]
    except ImportError:
        print("dask is not installed: skipping the dask rows", file=sys.stderr)
    executors = [(label, spec) for label, spec in executors if label.split()[0] not in args.skip]
    walls: dict[str, list[float]] = {label: [] for label, _ in executors}
    busy: dict[str, list[float]] = {label: [] for label, _ in executors}
    try:
        timed(wide(2, 0.01), "processes", args.jobs)  # warm the imports once, outside the measurements
        for rep in range(args.reps):
            for label, spec in executors:  # interleaved, so load from elsewhere hits every executor alike
                wall, cpu = timed(graph, spec, args.jobs)
                walls[label].append(wall)
                busy[label].append(cpu / wall)
                print(f"rep {rep + 1}/{args.reps} {label}: {wall:.2f} s, {cpu / wall:.2f} CPUs busy", file=sys.stderr)
    finally:
        if cluster is not None:
            cluster.close()
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"\n{args.nodes} nodes x {args.seconds} s CPU, jobs={args.jobs}, {os.cpu_count()} CPUs, "
          f"median of {args.reps}; load average at the start {start_load}, at the end {load}\n")
    # "CPUs busy" is CPU seconds over wall seconds: near 1 for inline, near --jobs for a parallel
    # executor on an idle machine; when it stays near 1, the machine had no more CPU to give.
    print("| executor | median wall (s) | min (s) | ratio to inline | CPUs busy (median) |")
    print("|---|---:|---:|---:|---:|")
    base = statistics.median(walls["inline"]) if walls.get("inline") else None
    for label, values in walls.items():
        median = statistics.median(values)
        ratio = f"{median / base:.2f}" if base else "-"
        print(f"| {label} | {median:.2f} | {min(values):.2f} | {ratio} | {statistics.median(busy[label]):.2f} |")


if __name__ == "__main__":
    main()
