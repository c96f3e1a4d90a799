"""Every benchmark in one command, written to one markdown file.

    python benchmarks/run_all.py [--quick] [--repeat 3] [--skip peers] [--output FILE]

Runs, one after the other so they do not share the cores: the engine
against its targets and against the disk's own limits (bench_engine.py), the
executors (bench_executors.py), S3 through wfe against raw s3fs on a loopback
S3 server (bench_s3.py), and wfe against Hamilton, redun, Prefect and
joblib.Memory (bench_peers.py; each peer in its own venv from a pinned
version, skipped with a note if it cannot be installed). Each section is the
markdown its script prints; a script that fails is reported in its section
and the others still run. Writes benchmarks/results/RESULTS.md (or
``--output``) headed by the date and the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (name, script, arguments; "{repeat}" is replaced, quick arguments added with --quick)
SECTIONS = (
    ("engine", "bench_engine.py", ["--repeat", "{repeat}"], ["--quick"]),
    ("executors", "bench_executors.py", ["--reps", "{repeat}"], ["--quick"]),
    ("s3", "bench_s3.py", ["--repeat", "{repeat}"], ["--big-mib", "32", "--small-count", "200"]),
    ("peers", "bench_peers.py", ["--repeat", "{repeat}"], ["--quick"]),
)
TITLES = {
    "engine": "The engine against its targets and this machine's limits",
    "executors": "Executors",
    "s3": "S3 through wfe against raw s3fs",
    "peers": "wfe against other tools",
}


def machine() -> str:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = (line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                 if line.startswith("model name"))
        model = next(names, "")
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(meminfo.read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB memory"
    return (
        f"{os.cpu_count()} cores{f' ({model})' if model else ''}{memory}, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure, median shown (default 3)")
    parser.add_argument("--quick", action="store_true", help="smaller workloads, for a first look")
    parser.add_argument("--skip", action="append", default=[], choices=[s[0] for s in SECTIONS],
                        help="leave out a section (repeatable)")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "RESULTS.md")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        "# wfe benchmarks",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}; {machine()}; load average at start {load}; "
        f"median of {args.repeat}{'; quick workloads' if args.quick else ''}.",
        f"Reproduce with `python benchmarks/run_all.py --repeat {args.repeat}{' --quick' if args.quick else ''}`.",
        "",
    ]
    failed = []
    for name, script, arguments, quick in SECTIONS:
        if name in args.skip:
            continue
        argv = [sys.executable, str(HERE / script), *(a.format(repeat=args.repeat) for a in arguments)]
        argv += quick if args.quick else []
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {' '.join(argv[1:])}", file=sys.stderr, flush=True)
        clock = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, cwd=HERE.parent)
        seconds = time.perf_counter() - clock
        lines += [f"## {TITLES[name]}", "", f"`python benchmarks/{script} {' '.join(argv[2:])}` ({seconds:.0f} s)", ""]
        if done.returncode == 0:
            lines += [done.stdout.strip(), ""]
        else:
            failed.append(name)
            tail = "\n".join(done.stderr.strip().splitlines()[-15:])
            lines += [f"**failed** (exit {done.returncode}):", "", "```", tail, "```", ""]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"written to {args.output}" + (f"; failed: {', '.join(failed)}" if failed else ""), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
