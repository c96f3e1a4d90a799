"""A mapped node's element beside a plain node, like for like, inside one process, the shapes alternated.

    python benchmarks/bench_mapped.py [--sizes 200,1000,10000] [--repeat 5] [--tmp DIR]

Three workflows of N actions each from ``_gen.py``: ``map`` (one node mapped
over a list of N numbers, each element adding 1), ``fanout_own`` (N plain
nodes fed by one start node, each storing an output of its own, as an
element does) and ``fanout`` (the same N plain nodes all returning 1, so one
blob in all: a plain node's cheapest case). Each round runs every shape
cold on a fresh store, then cached on it, in the one process (after a
1-node run, so imports are not in it), the shapes alternated round by round;
prints ms per action, median of ``--repeat``. ``--tmp`` picks where the
stores are made (default: the system's temp folder; ``/dev/shm`` takes the
disk's swings out). Whole processes, net of start-up, are in bench_engine.py.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gen import write

SHAPES = ("map", "fanout_own", "fanout")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200,1000,10000", help="comma-separated N (default 200,1000,10000)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tmp", help="where the stores are made (default: the system's temp folder)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="wfe-bench-mapped-", dir=args.tmp))
    sys.path.insert(0, str(work))  # bench_functions, which _gen writes beside the workflows
    import wfe

    try:
        wfe.run(str(write(work, "chain", 1)), str(work / "first"))  # imports and first-use costs, not counted
        samples: dict[tuple[int, str], list[tuple[float, float]]] = {}
        for n in sizes:
            flows = {shape: write(work, shape, n) for shape in SHAPES}
            for round_ in range(args.repeat):
                for shape in SHAPES[round_ % len(SHAPES):] + SHAPES[: round_ % len(SHAPES)]:
                    store = work / f"store-{shape}-{n}-{round_}"
                    began = time.perf_counter()
                    cold = wfe.run(str(flows[shape]), str(store))
                    middle = time.perf_counter()
                    cached = wfe.run(str(flows[shape]), str(store))
                    ended = time.perf_counter()
                    if not (cold.ok and cached.ok) or cached.manifest.counts().get("ran"):
                        raise SystemExit(f"{shape} of {n}: the cold run failed, or the cached run ran nodes")
                    samples.setdefault((n, shape), []).append(((middle - began) / n * 1e3, (ended - middle) / n * 1e3))
                    shutil.rmtree(store, ignore_errors=True)
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        print(f"ms per action, cold / cached, in one process, stores under {args.tmp or tempfile.gettempdir()}, "
              f"{when}, median of {args.repeat}, shapes alternated\n")
        print("| N | mapped element | plain node, own output | plain node, shared output |\n|---|---|---|---|")
        for n in sizes:
            cells = []
            for shape in SHAPES:
                values = samples[n, shape]
                cold_ms = statistics.median(v[0] for v in values)
                cached_ms = statistics.median(v[1] for v in values)
                cells.append(f"{cold_ms:.3f} / {cached_ms:.3f}")
            print(f"| {n:,} | " + " | ".join(cells) + " |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
