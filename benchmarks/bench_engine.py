"""Engine overhead, start-up, large outputs and blob throughput on the local store.

    python benchmarks/bench_engine.py [--quick] [--repeat 3]

Every figure is a whole ``wfe run`` process (or, for throughput, one process
doing the I/O), median of ``--repeat`` runs; per-node figures are net of a
1-node run. Beside each cold run, the limit: a bare loop making the same
files a cold node needs (its output blob and its action entry, which
carries a small config, each a temp file linked into place; a run alone
on its store takes no lease) on a fresh store, with no engine around it.
Throughput is shown beside hashlib's sha256 and a plain file copy. Prints
a markdown table. ``fanout``'s nodes all return 1 (one blob in all);
``fanout_own``'s each store an output of their own, as a mapped node's
elements (``map``) do: the like-for-like plain node for an element.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _gen import write

WFE = [sys.executable, "-m", "wfe"]


def timed_run(workflow: Path, store: Path) -> tuple[float, float, dict[str, object]]:
    """(wall seconds, peak RSS MiB, result JSON) of one ``wfe run`` process."""
    script = textwrap.dedent(
        """
        import json, resource, sys, time
        t = time.perf_counter()
        from wfe.cli import main
        import io, contextlib
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(sys.argv[1:])
        wall = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"code": code, "peak": peak, "result": json.loads(out.getvalue())}))
        """
    )
    clock = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", script, "run", str(workflow), "--store", str(store), "--json"],
        capture_output=True, text=True, check=True,
    )
    wall = time.perf_counter() - clock
    data = json.loads(out.stdout)
    assert data["code"] == 0, out.stderr
    return wall, data["peak"], data["result"]


# Stores are deleted at the end, not between runs: on ext4, creating files soon after deleting many
# makes the kernel step over the recently freed inodes, which would bill one run for the last one's cleanup.
STORES: list[Path] = []


def new_store() -> Path:
    STORES.append(Path(tempfile.mkdtemp(prefix="wfe-bench-")))
    return STORES[-1]


def cold_and_cached(workflow: Path, repeat: int, *, large: bool = False) -> tuple[float, float, float, float]:
    """Medians of (cold s, cached s, cold peak MiB, cached peak MiB).

    A large workload's store goes at once: its hundreds of MiB of dirty pages would
    otherwise slow the next run's writes while the kernel flushes them.
    """
    colds, cacheds, peaks_cold, peaks_cached = [], [], [], []
    for _ in range(repeat):
        store = new_store()
        wall, peak, _ = timed_run(workflow, store)
        colds.append(wall)
        peaks_cold.append(peak)
        wall, peak, result = timed_run(workflow, store)
        assert all(n["status"] == "cached" for n in result["nodes"].values())  # type: ignore[union-attr]
        cacheds.append(wall)
        peaks_cached.append(peak)
        if large:
            shutil.rmtree(store, ignore_errors=True)
    med = statistics.median
    return med(colds), med(cacheds), med(peaks_cold), med(peaks_cached)


FLOOR = textwrap.dedent(
    """
    import hashlib, json, os, sys, time
    root, n = sys.argv[1], int(sys.argv[2])
    os.makedirs(root + "/tmp")
    count = 0

    def publish(rel, data):  # what a store write is at least: a temp file, linked into its fan-out folder
        global count
        count += 1
        temp = f"{root}/tmp/{count}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, data)
        os.close(fd)
        final = f"{root}/{rel}"
        try:
            os.link(temp, final)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(final), exist_ok=True)
            os.link(temp, final)
        os.unlink(temp)

    def name(data):
        return hashlib.sha256(data).hexdigest()

    clock = time.perf_counter()
    value = b"0"
    for i in range(n):
        config = json.dumps({"i": i}).encode()  # carried by the action entry: no file of its own
        key = name(config + value)
        value = str(int(value) + 1).encode()
        publish(f"blobs/sha256/{name(value)[:2]}/{name(value)[2:]}", value)
        publish(f"actions/{key[:2]}/{key[2:]}.json", b'{"outputs": [], "config_json": ' + config + b"}" + value)
    print((time.perf_counter() - clock) / n * 1000)
    """
)


WRITE_LIMIT = textwrap.dedent(
    """
    import os, sys
    data = b"\\x01" * (int(sys.argv[2]) << 20)
    with open(sys.argv[1], "wb", buffering=0) as handle:
        handle.write(data)
    """
)


def write_limit(path: Path, mib: int) -> float:
    """Seconds for a whole bare Python process to make ``mib`` MiB of bytes and write them to a new file."""
    clock = time.perf_counter()
    subprocess.run([sys.executable, "-c", WRITE_LIMIT, str(path), str(mib)], check=True)
    seconds = time.perf_counter() - clock
    path.unlink()
    return seconds


def floor_per_node(n: int, repeat: int) -> float:
    """ms per node for a bare loop doing a cold node's file operations: its blob and its action entry."""
    return statistics.median(
        float(subprocess.run([sys.executable, "-c", FLOOR, str(new_store() / "s"), str(n)],
                             capture_output=True, text=True, check=True).stdout)
        for _ in range(repeat)
    )


def throughput(repeat: int, size: int) -> dict[str, float]:
    """GB/s for put and verified get of ``size`` bytes, beside sha256 and a plain copy."""
    folder = Path(tempfile.mkdtemp(prefix="wfe-bench-io-"))
    source = folder / "source.bin"
    block = os.urandom(1 << 20)
    with source.open("wb") as handle:
        for _ in range(size >> 20):
            handle.write(block)
    script = textwrap.dedent(
        """
        import hashlib, json, shutil, sys, time, wfe
        source, store_path, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
        store = wfe.open_store(store_path)
        t = time.perf_counter()
        digest = store.blobs.put(__import__("pathlib").Path(source))
        put = time.perf_counter() - t
        t = time.perf_counter()
        with store.blobs.open(digest) as f:
            while f.read(8 << 20): pass
        get = time.perf_counter() - t
        t = time.perf_counter()
        h = hashlib.sha256()
        with open(source, "rb") as f:
            while chunk := f.read(8 << 20): h.update(chunk)
        sha = time.perf_counter() - t
        t = time.perf_counter(); shutil.copyfile(source, source + ".copy"); cp = time.perf_counter() - t
        rates = {"put": put, "get": get, "sha256": sha, "cp": cp}
        print(json.dumps({name: size / seconds / 1e9 for name, seconds in rates.items()}))
        """
    )
    runs = []
    try:
        for _ in range(repeat):
            store = folder / "store"
            out = subprocess.run([sys.executable, "-c", script, str(source), str(store), str(size)],
                                 capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout))
            shutil.rmtree(store, ignore_errors=True)
            Path(str(source) + ".copy").unlink(missing_ok=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="skip the 10,000-node and 1 GiB workloads")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wfe-bench-wf-"))
    (work / "scratch").mkdir()
    rows: list[str] = []
    one = write(work, "chain", 1)
    base_cold, base_cached, base_peak, _ = cold_and_cached(one, max(args.repeat, 5))  # every row is net of it
    rows.append(
        f"| start-up: 1-node run | {base_cold * 1000:.0f} ms cold, {base_cached * 1000:.0f} ms cached | < 250 ms |"
    )
    sizes = [100, 200, 1000] + ([] if args.quick else [10000])
    for shape in ("chain", "fanout", "fanout_own", "map"):
        for n in sizes:
            workflow = write(work, shape, n)
            colds, cacheds, peaks, floors, ratios = [], [], [], [], []
            for _ in range(args.repeat):
                # The limit beside each run: this disk's cost of creating files moves a lot from one
                # minute to the next (the kernel steps over recently freed inodes), so compare like with like.
                floors.append(floor_per_node(n, 1))
                cold, cached, peak, _ = cold_and_cached(workflow, 1)
                colds.append((cold - base_cold) / (n - 1) * 1000)
                cacheds.append((cached - base_cached) / (n - 1) * 1000)
                peaks.append(peak)
                ratios.append(colds[-1] / floors[-1])
            med = statistics.median
            # Below 1,000 nodes the peak moves by whole allocator arenas: too coarse to divide by n.
            memory = f"{max(med(peaks) - base_peak, 0) * 1024 / n:.2f} KB" if n >= 1000 else "-"
            unit = "element" if shape == "map" else "node"
            rows.append(
                f"| {shape} of {n}: ms per {unit} cold (limit: its file operations alone, ratio) / cached, "
                f"memory per node | {med(colds):.3f} ({med(floors):.3f}, {med(ratios):.1f} x) / {med(cacheds):.3f} ms, "
                f"{memory} | < 0.3 / < 0.1 ms, < 2 KB |"
            )
    for shape, label in (("big", "returns bytes"), ("big_path", "writes a file")):
        workflow = write(work, shape, 256)
        colds, cacheds, peaks, limits = [], [], [], []
        for _ in range(args.repeat):
            limits.append(write_limit(work / "scratch" / "limit.bin", 256))
            cold, cached, peak, _ = cold_and_cached(workflow, 1, large=True)
            colds.append(cold)
            cacheds.append(cached)
            peaks.append(peak)
        med = statistics.median
        rows.append(
            f"| 256 MiB output ({label}): cold (limit: a bare process writing it to a new file) / cached, "
            f"peak RSS | {med(colds):.2f} s ({med(limits):.2f} s) / {med(cacheds):.2f} s, {med(peaks):.0f} MiB "
            f"| < 0.8 s / < 0.3 s, {'<= 320' if shape == 'big' else '< 100'} MiB |"
        )
    size = (256 if args.quick else 1024) << 20
    io_rates = throughput(args.repeat, size)
    rows.append(
        f"| blob put / verified get, {size >> 20} MiB | {io_rates['put']:.2f} / {io_rates['get']:.2f} GB/s "
        f"(sha256 {io_rates['sha256']:.2f} GB/s, copy {io_rates['cp']:.2f} GB/s) | >= 1.0 / >= 1.2 GB/s |"
    )
    shutil.rmtree(work, ignore_errors=True)
    for store in STORES:
        shutil.rmtree(store, ignore_errors=True)
    print(f"wfe engine benchmarks, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, "
          f"Python {sys.version.split()[0]}, "
          f"median of {args.repeat}\n")
    print("| workload | wfe | target |\n|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
