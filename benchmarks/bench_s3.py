"""Blob throughput on S3: wfe against raw s3fs, on the same loopback S3 API server.

    python benchmarks/bench_s3.py [--repeat 5] [--big-mib 256] [--small-count 1000] [--memory]

Cases, each the median of ``--repeat`` runs, into a fresh prefix every run:

- one large blob (``--big-mib``, random bytes in memory): wfe ``blobs.put(bytes)``
  and ``blobs.get`` (hashing and verifying) against s3fs ``pipe_file`` and
  ``cat_file``;
- ``--small-count`` distinct 1 KiB blobs, one after another, the same calls.

Raw s3fs gets the same filesystem settings wfe uses (listing cache off,
botocore's extra checksums off), so the ratio is wfe's own cost. Throughput
through the server is bounded by the emulator here, not by the network; the
ratio is the figure to read. ``--memory`` also puts and streams back 1 GiB in
a fresh process and prints its peak memory above baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the test servers
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from servers.s3 import S3Server, s3_server
from wfe_s3 import S3IO

import wfe

MiB = 1024 * 1024


def median_seconds(repeat: int, setup: Callable[[], object], action: Callable[[object], None]) -> float:
    times = []
    for _ in range(repeat):
        state = setup()
        started = time.perf_counter()
        action(state)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def raw_filesystem(server: S3Server) -> object:
    import s3fs

    return s3fs.S3FileSystem(**S3IO.filesystem_options(server.options))


def bench(server: S3Server, repeat: int, big: int, small_count: int) -> list[tuple[str, str, float, float]]:
    fs: object = raw_filesystem(server)
    big_data = os.urandom(big)
    small_data = [os.urandom(1024) for _ in range(small_count)]
    rows = []

    def fresh_store() -> wfe.Store:
        return wfe.open_store(server.url(f"bench-{uuid.uuid4().hex[:8]}"), **server.options)

    def fresh_prefix() -> str:
        return f"{server.bucket}/raw-{uuid.uuid4().hex[:8]}"

    def raw_keys(prefix: str, blobs: list[bytes]) -> list[str]:
        return [f"{prefix}/{index}" for index in range(len(blobs))]

    def wfe_put(blobs: list[bytes]) -> float:
        return median_seconds(repeat, fresh_store, lambda s: [s.blobs.put(b) for b in blobs])  # type: ignore[attr-defined]

    def raw_put(blobs: list[bytes]) -> float:
        def put(prefix: object) -> None:
            for key, data in zip(raw_keys(str(prefix), blobs), blobs, strict=True):
                fs.pipe_file(key, data)  # type: ignore[attr-defined]

        return median_seconds(repeat, fresh_prefix, put)

    def wfe_get(blobs: list[bytes]) -> float:
        store = fresh_store()
        digests = [store.blobs.put(b) for b in blobs]
        seconds = median_seconds(repeat, lambda: store, lambda s: [s.blobs.get(d) for d in digests])  # type: ignore[attr-defined]
        for digest in digests:
            store.blobs.delete(digest)
        return seconds

    def raw_get(blobs: list[bytes]) -> float:
        prefix = fresh_prefix()
        for key, data in zip(raw_keys(prefix, blobs), blobs, strict=True):
            fs.pipe_file(key, data)  # type: ignore[attr-defined]
        seconds = median_seconds(repeat, lambda: prefix, lambda p: [fs.cat_file(k) for k in raw_keys(str(p), blobs)])  # type: ignore[attr-defined]
        fs.rm(prefix, recursive=True)  # type: ignore[attr-defined]
        return seconds

    for label, blobs, unit in (
        (f"{big // MiB} MiB blob", [big_data], "MiB/s"),
        (f"{small_count} x 1 KiB blobs", small_data, "blobs/s"),
    ):
        amount = big / MiB if unit == "MiB/s" else float(small_count)
        for verb, ours, theirs in (("put", wfe_put, raw_put), ("get", wfe_get, raw_get)):
            wfe_rate = amount / ours(blobs)
            raw_rate = amount / theirs(blobs)
            rows.append((f"{verb} {label}", unit, wfe_rate, raw_rate))
            _clear(server)
    return rows


def _clear(server: S3Server) -> None:
    """Drop every object the emulator holds for the bucket, so its memory does not pile up."""
    fs = server.filesystem()
    for path in fs.find(server.bucket):
        fs.rm_file(path)


_MEMORY = textwrap.dedent(
    """
    import json, os, sys
    import wfe
    from wfe_s3 import S3IO

    size, block = int(sys.argv[3]), os.urandom(1024 * 1024)

    class Source:
        def __init__(self):
            self.left = size
        def read(self, n=-1):
            n = self.left if n is None or n < 0 else min(n, self.left)
            self.left -= n
            return (block * (n // len(block) + 1))[:n]

    store = wfe.open_store(sys.argv[1], endpoint_url=sys.argv[2], key="wfe-bench-key", secret="wfe-bench-secret")
    store.blobs.put(b"warm up")
    def status(field):
        # VmHWM is this program's own high-water mark; ru_maxrss would carry over the
        # parent's from before exec
        with open('/proc/self/status') as lines:
            return next(int(l.split()[1]) * 1024 for l in lines if l.startswith(field + ':'))

    baseline = status('VmRSS')
    digest = store.blobs.put(Source())
    with store.blobs.open(digest) as handle:
        while handle.read(4 * 1024 * 1024):
            pass
    peak = status('VmHWM')
    print(json.dumps({"above_baseline_mib": (peak - baseline) / 2**20, "part_size_mib": S3IO.part_size / 2**20,
                      "max_concurrency": S3IO.max_concurrency}))
    """
)


def memory(server: S3Server, size: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY, server.url("memory"), server.endpoint_url, str(size)],
        capture_output=True, text=True, check=True, env={**os.environ, **server.env},
    )  # fmt: skip
    result: dict[str, float] = json.loads(out.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--big-mib", type=int, default=256)
    parser.add_argument("--small-count", type=int, default=1000)
    parser.add_argument("--memory", action="store_true", help="also measure a 1 GiB put and get")
    args = parser.parse_args()
    with s3_server() as server:
        rows = bench(server, args.repeat, args.big_mib * MiB, args.small_count)
        print(f"S3 blob throughput, median of {args.repeat} runs, moto S3 server on 127.0.0.1\n")
        print("| case | unit | wfe | raw s3fs | wfe / raw |")
        print("|---|---|---:|---:|---:|")
        for case, unit, ours, theirs in rows:
            print(f"| {case} | {unit} | {ours:.1f} | {theirs:.1f} | {ours / theirs:.2f} |")
        if args.memory:
            _clear(server)
            measured = memory(server, 1024 * MiB)
            print(
                f"\n1 GiB put + streamed get: peak {measured['above_baseline_mib']:.0f} MiB above baseline "
                f"(part size {measured['part_size_mib']:.0f} MiB, {measured['max_concurrency']:.0f} parts in flight)"
            )


if __name__ == "__main__":
    main()
