"""``wfe ui`` page times on a store of many runs of the sales example (server time, median of several requests).

    python benchmarks/bench_ui.py [--runs 1000] [--many 10000] [--repeat 15] [--store DIR]

Runs ``examples/sales`` ``--runs`` times into a local store (or reuses
``--store``), serves it with ``wfe ui`` on a free port of 127.0.0.1 and asks
for each page ``--repeat`` times. The time reported is the app's own, from
the ``Server-Timing`` header (what it took to make the page, without the
network), as the median, with the first (cold) request apart: the first
listing of the runs and the first read of each record happen there. Then
``--many`` more run records (copies of the sales runs under new ids, the
way they would be after that many runs) are added, and a newly started
server's first runs page is timed again, with the number of run records it
read. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import wfe
from wfe.store._records import new_run_id

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "sales" / "workflow.yaml"


def start(store: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([sys.executable, "-m", "wfe", "ui", "--store", store, "--port", "0"],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    found = re.search(r"at (http://127\.0\.0\.1:\d+)/", process.stdout.readline())
    assert found, "wfe ui did not start"
    return process, found.group(1)


def server_ms(url: str) -> float:
    with urllib.request.urlopen(url, timeout=120) as response:
        response.read()
        timing = response.headers["Server-Timing"]
        assert response.status == 200, url
    found = re.search(r"dur=([0-9.]+)", timing)
    assert found, timing
    return float(found.group(1))


def report(root: str, pages: list[tuple[str, str]], repeat: int, title: str) -> None:
    """Start ``wfe ui`` on ``root``, time ``pages``, stop it, and print the table under ``title``."""
    process, base = start(root)
    try:
        rows = measure(base, pages, repeat)
    finally:
        process.terminate()
        process.wait(timeout=30)
    print(f"\n{title}\n")
    print("| page | first request | median | max |")
    print("|---|---:|---:|---:|")
    print("\n".join(rows))


def measure(base: str, pages: list[tuple[str, str]], repeat: int) -> list[str]:
    rows = []
    for label, path in pages:
        first = server_ms(base + path)
        times = [server_ms(base + path) for _ in range(repeat)]
        rows.append(f"| {label} | {first:.1f} | {statistics.median(times):.1f} | {max(times):.1f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--many", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--store", help="a store to build in, or reuse if it has runs already")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="wfe-bench-ui-")
    root = args.store or f"{folder}/store"
    store = wfe.open_store(root)
    try:
        made = len(list(store.runs))
        clock = time.perf_counter()
        for _ in range(max(0, args.runs - made)):
            wfe.run(str(EXAMPLE), store)
        ids = list(store.runs)
        print(f"{len(ids)} runs of the sales example ({time.perf_counter() - clock:.0f} s to make)", file=sys.stderr)
        newest = ids[-1]
        first_run = ids[0]
        digest = store.runs.get(newest).nodes["by_month"].outputs[0].digest
        pages = [
            ("runs list, first page (50 runs)", "/runs"),
            ("runs list, filtered by workflow and status", "/runs?workflow=sales-report&status=succeeded"),
            ("a run (graph, node table)", f"/runs/{newest}"),
            ("a node (explain, CSV input preview, JSON output)", f"/runs/{newest}/nodes/by_month"),
            ("two runs compared", f"/compare?a={first_run}&b={newest}"),
            ("an artifact by digest prefix (newest 2,000 runs looked through)", f"/artifacts/{digest}"),
        ]
        report(root, pages, args.repeat,
               f"{len(ids):,} runs, local disk; server time in ms (Server-Timing), {args.repeat} requests each")

        if args.many:
            template = store.runs.get(newest)
            started = template.started - args.many
            for index in range(args.many):
                template.run_id = new_run_id(started + index * 0.5)
                store.runs.put(template)
            total = len(list(store.runs))
            report(root, pages[:3], args.repeat, f"{total:,} runs, local disk, a newly started server")
    finally:
        if not args.store:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
