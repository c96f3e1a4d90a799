"""wfe side by side with Apache Hamilton, redun, Prefect, joblib.Memory and a floor on the same workloads.

    python benchmarks/bench_peers.py [--repeat 3] [--peers hamilton,redun,prefect,floor,joblib] [--quick] [--nodes N]
                                     [--workloads one,chain,fanout,map,big] [--wfe-python PYTHON] [--tmp DIR]

Workloads, the same pure functions in every tool: a chain of N nodes each
adding 1 to the one before, a fan-out of N - 1 such nodes from one source, a
mapped fan-out (one source returning a list of N numbers and a function
adding 1 mapped over it, in each tool's own per-element form: a ``map: true``
node in wfe, a cached function called per element with joblib.Memory,
``Parallelizable``/``Collect`` in Hamilton; redun and Prefect skip it), and
one node returning 256 MiB of 0x01 bytes. Every measurement is a whole
process, cold (fresh cache) and cached (a second process on the same cache),
median of ``--repeat``, the tools interleaved (each round begins with the next
tool, and the disk is flushed before every sample); per-node figures are net of a
1-node run of the same tool, whose time is the start-up column. Peak RSS is
the child's own (``wait4``), the largest single process of its tree. Each
tool runs from its own venv (benchmarks/.peer-venvs): the peers built on
first use from pinned versions (one that cannot be installed is skipped with
a note), wfe from this checkout (``pip install``, not editable, as a user
installs it; ``--wfe-python`` names another interpreter instead), driven
from Python as a user's script drives it (``peers/wfe_driver.py``:
``wfe.run``, then the final output read). A run whose answer is wrong, or
whose cached run executed anything, is reported as failed. The floor
(``peers/floor_peer.py``) is no tool but the least work a persistent,
content-addressed memo does, in plain Python: a lower bound for wfe. Prints a markdown
table and writes it to benchmarks/results/peers.md, with every sample in
peers.json beside it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _gen import write  # noqa: E402
from peers import _registry  # noqa: E402

MIB = 1 << 20
RUN_TIMEOUT = 1200  # seconds for one process; a hung peer loses the sample, not the benchmark
WORKLOADS = ("one", "chain", "fanout", "map", "big")
WFE_VENV_MARKER = ".bench-source"  # the digest of the wfe sources installed in wfe's venv
TMP: Path | None = None  # where workflows and caches are made (--tmp); None: the system's temp folder
RESOLUTION = 0.1  # ms per node: below it, a difference of two whole-process times is noise
# wfe's own large-output function writes zeros, which the kernel can serve from one shared page; this one
# writes 0x01 like the peers do, so every tool really touches the payload's pages.
BIG_FUNCTION = """
import wfe

@wfe.function(outputs="application/octet-stream")
def big_ones(*, mib=256):
    return b"\\x01" * (mib * 1024 * 1024)
"""


@dataclass
class Sample:
    wall: float  # seconds, whole process
    cpu: float  # seconds, user + system of the process and the children it waited for
    peak: float  # MiB, peak RSS
    error: str | None  # why the sample does not count


@dataclass
class Tool:
    label: str
    command: Callable[[str, int, Path], list[str]]  # (shape, n, cache dir) -> argv
    check: Callable[[str, int, str, bool], str | None]  # (shape, n, stdout, cached) -> error or None
    workloads: frozenset[str] = frozenset(WORKLOADS)  # what it is measured on (a peer may lack a mapped form)


def measure(argv: list[str], cwd: Path) -> tuple[float, float, float, int, str, str]:
    """(wall s, CPU s, peak RSS MiB, exit code, stdout, stderr) of one child process."""
    env = dict(os.environ, DO_NOT_TRACK="1", HAMILTON_TELEMETRY_ENABLED="false")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        clock = time.perf_counter()
        # A session of its own, so a time-out ends the whole tree (Prefect starts a server process).
        child = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=err, env=env, start_new_session=True)
        killer = threading.Timer(RUN_TIMEOUT, os.killpg, (child.pid, signal.SIGKILL))
        killer.start()
        # wait4, not Popen.wait: it returns this child's own rusage, so peaks do not mix across runs.
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - clock
        killer.cancel()
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return (
            wall,
            usage.ru_utime + usage.ru_stime,
            usage.ru_maxrss / 1024,
            child.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )


def ones_digest(mib: int) -> str:
    """The digest of ``mib`` MiB of 0x01, hashed a block at a time.

    The driver's own memory must stay small: a child starts from the driver's
    address space, and the kernel carries that space's peak into the child's
    ``ru_maxrss``, which would blur every peak figure.
    """
    block, digest = b"\x01" * MIB, hashlib.sha256()
    for _ in range(mib):
        digest.update(block)
    return "sha256:" + digest.hexdigest()


def _source_digest(root: Path) -> str:
    """A digest of what ``pip install root`` installs of wfe: its packages' sources and pyproject.toml."""
    digest = hashlib.sha256((root / "pyproject.toml").read_bytes())
    for folder in ("wfe", "backends", "conformance_tests"):
        for path in sorted((root / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def wfe_venv(root: Path, venvs: Path) -> Path:
    """wfe's own venv, with this checkout installed as a user installs it (not editable): its python.

    Its dependencies are installed once; wfe itself again whenever its sources changed.
    """
    venv = venvs / "wfe"
    python = _registry.venv_python(venv)
    marker = venv / WFE_VENV_MARKER
    source = _source_digest(root)
    if python.exists() and marker.exists() and marker.read_text().strip() == source:
        return python
    print(f"installing wfe from {root} into {venv} ...", file=sys.stderr, flush=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # Built from a copy: building in the checkout would leave build/ and egg-info folders in it.
    with tempfile.TemporaryDirectory(prefix="wfe-src-") as copy:
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(root / name, Path(copy) / name)
        for folder in ("wfe", "backends", "conformance_tests"):
            shutil.copytree(root / folder, Path(copy) / folder, ignore=shutil.ignore_patterns("__pycache__"))
        for extra in ([], ["--no-deps", "--force-reinstall"]):  # its dependencies once, then wfe as it is now
            subprocess.run(
                [str(python), "-m", "pip", "install", "--quiet", *extra, copy], check=True, capture_output=True
            )
    marker.write_text(source + "\n")
    return python


def workflow_tool(work: Path, n: int, big_mib: int, python: Path) -> Tool:
    """wfe in its own venv, driven from Python (``peers/wfe_driver.py``) on workflows from _gen."""
    flows = {
        "one": write(work, "chain", 1),
        "chain": write(work, "chain", n),
        "fanout": write(work, "fanout", n),
        "map": write(work, "map", n),
    }
    (work / "bench_peer_functions.py").write_text(BIG_FUNCTION)
    flows["big"] = work / f"big-ones-{big_mib}.json"
    flows["big"].write_text(
        json.dumps(
            {
                "name": f"big-ones-{big_mib}",
                "modules": ["bench_peer_functions"],
                "nodes": [{"id": "big", "function": "big_ones", "config": {"mib": big_mib}}],
                "edges": [],
            }
        )
    )
    by_shape = {
        ("chain", 1): flows["one"],
        ("chain", n): flows["chain"],
        ("fanout", n): flows["fanout"],
        ("map", n): flows["map"],
        ("big", big_mib): flows["big"],
    }
    sha = hashlib.sha256
    big_digest = ones_digest(big_mib)

    driver = HERE / "peers" / "wfe_driver.py"
    version = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('wfe'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    def command(shape: str, size: int, cache: Path) -> list[str]:
        return [str(python), str(driver), str(by_shape[shape, size]), str(cache)]

    def check(shape: str, size: int, stdout: str, cached: bool) -> str | None:
        nodes = json.loads(stdout)["nodes"]
        want = "cached" if cached else "ran"
        if any(node["status"] != want for node in nodes.values()):
            return f"expected every node {want}"
        if shape == "big":
            expected = {"big": big_digest}
        elif shape == "map":  # the artifact list of the elements 1..size, as canonical JSON
            values = [json.dumps(i + 1).encode() for i in range(size)]
            listing = [
                {"digest": "sha256:" + sha(v).hexdigest(), "mime": "application/json", "size": len(v)} for v in values
            ]
            expected = {
                "each": "sha256:" + sha(json.dumps(listing, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
            }
        elif shape == "chain":
            expected = {f"n{size - 1}": "sha256:" + sha(json.dumps(size - 1).encode()).hexdigest()}
        else:
            expected = {f"n{i}": "sha256:" + sha(b"1").hexdigest() for i in range(1, size)}
        wrong = [k for k, digest in expected.items() if nodes[k]["outputs"][0]["digest"] != digest]
        return f"wrong output for {wrong[0]}" if wrong else None

    return Tool(f"wfe {version} (local store, inline)", command, check)


def peer_tool(peer: _registry.Peer, python: Path, version: str) -> Tool:
    def command(shape: str, size: int, cache: Path) -> list[str]:
        return [str(python), str(_registry.script(peer)), shape, str(size), str(cache)]

    def check(shape: str, size: int, stdout: str, cached: bool) -> str | None:
        lines = [line for line in stdout.splitlines() if line.startswith("{")]
        if not lines:
            return "printed no result"
        report = json.loads(lines[-1])
        if not report["ok"]:
            return "wrong result"
        nodes = 1 if shape == "big" else size
        expected = 0 if cached else nodes
        if report["executed"] != expected:
            return f"{report['executed']} function bodies ran, expected {expected}"
        return None

    workloads = frozenset(WORKLOADS) if peer.mapped else frozenset(WORKLOADS) - {"map"}
    return Tool(f"{peer.label} {version}", command, check, workloads)


def sample(tool: Tool, shape: str, size: int, cache: Path, cached: bool) -> Sample:
    wall, cpu, peak, code, stdout, stderr = measure(tool.command(shape, size, cache), cache.parent)
    if code != 0:
        tail = [line for line in stderr.splitlines() if line.strip()][-1:] or [f"exit {code}"]
        return Sample(wall, cpu, peak, f"exit {code}: {tail[0][:200]}")
    try:
        error = tool.check(shape, size, stdout, cached)
    except (ValueError, KeyError, TypeError) as exc:
        error = f"unreadable result: {exc!r}"
    return Sample(wall, cpu, peak, error)


def machine_line(repeat: int, n: int, big_mib: int) -> str:
    model = ""
    if Path("/proc/cpuinfo").exists():
        model = next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            "",
        )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}; {os.cpu_count()} cores{f' ({model})' if model else ''}, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}; load average at start "
        f"{load}; N = {n}, large output {big_mib} MiB, median of {repeat}"
    )


def run_all(
    tools: list[Tool], repeat: int, n: int, big_mib: int, workloads: tuple[str, ...] = WORKLOADS
) -> dict[str, dict[str, dict[bool, list[Sample]]]]:
    """tool label -> workload -> cached? -> samples. Tools interleave within a round, so load spreads evenly."""
    shapes = {
        "one": ("chain", 1),
        "chain": ("chain", n),
        "fanout": ("fanout", n),
        "map": ("map", n),
        "big": ("big", big_mib),
    }
    results: dict[str, dict[str, dict[bool, list[Sample]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    # One discarded 1-node run per tool first: compiling .pyc files and reading the libraries from disk
    # the first time is a cost of installing, not of running.
    for tool in tools:
        scratch = Path(tempfile.mkdtemp(prefix="wfe-peers-", dir=TMP))
        sample(tool, "chain", 1, scratch / "cache", False)
        shutil.rmtree(scratch, ignore_errors=True)
    # Caches of small files go at the end: on ext4, files created soon after many were deleted cost more
    # (the kernel steps over recently freed inodes), which would bill each run for the previous one's
    # cleanup. A large output's cache goes at once, or its dirty pages would slow the next run's writes.
    kept: list[Path] = []
    try:
        for round_ in range(1, repeat + 1):
            # Each round starts with the next tool, so that no tool always follows the same one (whose
            # files the disk may still be writing back); every sample starts with the disk flushed.
            turn = (round_ - 1) % len(tools)
            for workload in workloads:
                shape, size = shapes[workload]
                for tool in (t for t in tools[turn:] + tools[:turn] if workload in t.workloads):
                    scratch = Path(tempfile.mkdtemp(prefix="wfe-peers-", dir=TMP))
                    kept.append(scratch)
                    for cached in (False, True):
                        os.sync()
                        got = sample(tool, shape, size, scratch / "cache", cached)
                        results[tool.label][workload][cached].append(got)
                        state = "cached" if cached else "cold"
                        print(
                            f"[{round_}/{repeat}] {tool.label}: {workload} {state} {got.wall:.2f} s "
                            f"(CPU {got.cpu:.2f} s), "
                            f"{got.peak:.0f} MiB{f', FAILED: {got.error}' if got.error else ''}",
                            file=sys.stderr,
                            flush=True,
                        )
                    if workload == "big":
                        shutil.rmtree(scratch, ignore_errors=True)
    finally:
        for scratch in kept:
            shutil.rmtree(scratch, ignore_errors=True)
    return results


Figures = dict[str, float | None]


def figures(runs: dict[str, dict[bool, list[Sample]]], n: int, clock: str) -> tuple[Figures, list[str]]:
    """Medians and per-node figures of one tool by ``clock`` ("wall" or "cpu"); a failed sample voids its figure."""
    errors: list[str] = []

    def med(workload: str, cached: bool, attr: str = clock) -> float | None:
        if workload not in runs:
            return None  # not measured (not asked for, or a tool without that form): no error to report
        samples = runs[workload][cached]
        bad = [s.error for s in samples if s.error]
        if bad or not samples:
            errors.append(f"{workload} {'cached' if cached else 'cold'}: {bad[0] if bad else 'no sample'}")
            return None
        return float(statistics.median(getattr(s, attr) for s in samples))

    out: Figures = {}
    for cached, state in ((False, "cold"), (True, "cached")):
        base = med("one", cached)
        out[f"start {state}"] = base
        for workload in ("chain", "fanout", "map"):
            total = med(workload, cached)
            count = n if workload == "map" else n - 1  # the mapped fan-out has n elements besides its source
            out[f"{workload} {state}"] = None if total is None or base is None else (total - base) / count * 1000
        out[f"big {state}"] = med("big", cached)
        out[f"big peak {state}"] = med("big", cached, "peak")
    return out, errors


def fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(rows: list[tuple[str, Figures]], big_mib: int, n: int, clock: str) -> list[str]:
    lines = [
        f"| tool (version), {clock} | start-up: 1-node run, s cold / cached | chain of {n}, ms per node cold / cached "
        f"| fan-out of {n}, ms per node cold / cached | mapped fan-out of {n}, ms per element cold / cached "
        f"| one {big_mib} MiB output: cold / cached s, peak RSS cold / cached MiB |",
        "|---|---|---|---|---|---|",
    ]
    for label, f in rows:
        lines.append(
            f"| {label} | {fmt(f['start cold'], 2)} / {fmt(f['start cached'], 2)} "
            f"| {fmt(f['chain cold'], 2)} / {fmt(f['chain cached'], 2)} "
            f"| {fmt(f['fanout cold'], 2)} / {fmt(f['fanout cached'], 2)} "
            f"| {fmt(f['map cold'], 2)} / {fmt(f['map cached'], 2)} "
            f"| {fmt(f['big cold'], 2)} / {fmt(f['big cached'], 2)}, "
            f"{fmt(f['big peak cold'], 0)} / {fmt(f['big peak cached'], 0)} |"
        )
    return lines


def ratios(ours: Figures, label: str, theirs: Figures) -> str:
    """``peer / wfe`` for each figure: above 1 means wfe is faster or smaller.

    A per-node figure under ``RESOLUTION`` ms is within the noise of two whole-process times, so a
    ratio of it would be a ratio of noise: it is named as such instead.
    """
    parts = []
    keys = ("start", "chain", "fanout", "map", "big", "big peak")
    for key in (f"{k} {state}" for k in keys for state in ("cold", "cached")):
        a, b = ours.get(key), theirs.get(key)
        per_node = key.startswith(("chain", "fanout", "map"))
        if a is None or b is None:
            parts.append(f"{key} n/a")
        elif per_node and a < RESOLUTION and b < RESOLUTION:
            parts.append(f"{key} both < {RESOLUTION} ms/node")
        elif per_node and a < RESOLUTION:
            parts.append(f"{key} wfe < {RESOLUTION} ms/node")
        elif per_node and b < RESOLUTION:
            parts.append(f"{key} peer < {RESOLUTION} ms/node")
        else:
            parts.append(f"{key} {b / a:.1f}x")
    return f"- {label} / wfe: " + ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the median is shown (default 3)")
    parser.add_argument(
        "--peers",
        default=",".join(p.key for p in _registry.PEERS),
        help="comma-separated subset of: " + ", ".join(p.key for p in _registry.PEERS),
    )
    parser.add_argument("--quick", action="store_true", help="N = 50 and a 32 MiB output instead of 200 and 256")
    parser.add_argument("--nodes", type=int, help="N, the nodes of the chain and fan-outs (default 200): the larger, "
                        "the less a per-node figure carries the noise of the 1-node run it is net of")
    parser.add_argument("--venvs", type=Path, default=HERE / ".peer-venvs", help="where the peers' venvs live")
    parser.add_argument(
        "--workloads", default=",".join(WORKLOADS), help="comma-separated subset of: " + ", ".join(WORKLOADS)
    )
    parser.add_argument(
        "--tmp", type=Path, help="where the workflows and every tool's cache are made (default: the system's temp "
        "folder; /dev/shm takes the disk out of the figures)",
    )
    parser.add_argument(
        "--wfe-python", type=Path, help="run wfe with this interpreter instead of its own venv built from this checkout"
    )
    args = parser.parse_args()
    workloads = tuple(w for w in WORKLOADS if w in {x.strip() for x in args.workloads.split(",")})
    if "one" not in workloads:
        workloads = ("one", *workloads)  # every per-node figure is net of it
    wanted = [key.strip() for key in args.peers.split(",") if key.strip()]
    unknown = sorted(set(wanted) - {p.key for p in _registry.PEERS})
    if unknown or args.repeat < 1:
        parser.error(f"unknown peer {unknown[0]!r}" if unknown else "--repeat must be at least 1")
    n, big_mib = (50, 32) if args.quick else (200, 256)
    if args.nodes is not None:
        if args.nodes < 2:
            parser.error("--nodes must be at least 2")
        n = args.nodes
    header = machine_line(args.repeat, n, big_mib) + f"; caches under {args.tmp or tempfile.gettempdir()}"
    global TMP
    TMP = args.tmp
    work = Path(tempfile.mkdtemp(prefix="wfe-peers-wf-", dir=TMP))
    notes: list[str] = []
    try:
        wfe_python = args.wfe_python or wfe_venv(HERE.parent, args.venvs)
        tools = [workflow_tool(work, n, big_mib, wfe_python)]
        for peer in (p for p in _registry.PEERS if p.key in wanted):
            python, version = _registry.ensure_venv(peer, args.venvs)
            if python is None:
                notes.append(f"- {peer.label} ({peer.requirement}): skipped, {version}")
                continue
            tools.append(peer_tool(peer, python, version))
            notes.append(f"- {peer.label} {version}: {peer.note}")
        results = run_all(tools, args.repeat, n, big_mib, workloads)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows, cpu_rows = [], []
    for tool in tools:
        found, errors = figures(results[tool.label], n, "wall")
        rows.append((tool.label, found))
        cpu_rows.append((tool.label, figures(results[tool.label], n, "cpu")[0]))
        notes.extend(f"- {tool.label}: failed {e}" for e in errors)
    text = [
        f"wfe and its peers, {header}",
        "",
        *table(rows, big_mib, n, "wall"),
        "",
        "Whole processes; per-node figures are net of the same tool's 1-node run; the large output's times "
        "are whole-process totals; peak RSS is the largest single process of the run (never below the "
        f"driver's own {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB, which the kernel "
        "carries into each child's figure). A per-node figure near or below zero means the N-node run "
        "was within the noise of the 1-node run.",
        "",
        *notes,
        "",
        "Ratios, peer / wfe (above 1: wfe is faster or smaller; for the floor, the share of wfe's time that "
        "the least work takes: 1.0 is wfe at the floor):",
        "",
    ]
    text += [ratios(rows[0][1], label, found) for label, found in rows[1:]]
    text += [
        "",
        "The same runs by CPU time (user + system, the process and the children it waited for): "
        "steadier than wall time on a shared machine, blind to time spent waiting.",
        "",
        *table(cpu_rows, big_mib, n, "CPU"),
    ]
    output = "\n".join(text) + "\n"
    print(output)
    target = HERE / "results" / "peers.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(output)
    raw = {
        label: {
            w: {("cached" if c else "cold"): [vars(x) for x in xs] for c, xs in by.items()} for w, by in per.items()
        }
        for label, per in results.items()
    }
    target.with_suffix(".json").write_text(json.dumps({"header": header, "samples": raw}, indent=1))
    print(f"written to {target}", file=sys.stderr)


if __name__ == "__main__":
    main()
