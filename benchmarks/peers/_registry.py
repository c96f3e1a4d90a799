"""The peers compared with wfe, and the venvs they run in.

Each peer installs from one pinned requirement into its own venv under the
cache folder (``benchmarks/.peer-venvs`` by default), so no peer's
dependencies ever meet wfe's or each other's. A venv is reused while its
marker names the same requirement; an install that fails leaves no marker,
so the next run tries again.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

HERE = Path(__file__).resolve().parent
MARKER = ".bench-requirement"
INSTALL_TIMEOUT = 1800  # seconds; Prefect brings ~100 packages


@dataclass(frozen=True)
class Peer:
    key: str  # the name --peers takes
    label: str  # the tool as the table names it; the installed version is added
    requirement: str  # pinned, as pip takes it; empty: the standard library only
    distribution: str  # whose installed version the table shows
    script: str  # in this folder; see _common for its arguments
    note: str  # how it is set up, for the table's footnotes
    mapped: bool = False  # its script has a per-element form of the mapped fan-out (``map``)


PEERS: tuple[Peer, ...] = (
    Peer(
        "hamilton",
        "Apache Hamilton",
        "sf-hamilton==1.90.0",
        "sf-hamilton",
        "hamilton_peer.py",
        "`Builder().with_cache(path=...)`, one `@parameterize`d function for the N - 1 step nodes; the mapped "
        "fan-out as `Parallelizable`/`Collect` with dynamic execution (in process, one element after another)",
        mapped=True,
    ),
    Peer(
        "redun",
        "redun",
        "redun==0.44.1",
        "redun",
        "redun_peer.py",
        "tasks evaluated by `Scheduler.run`, call cache in sqlite",
    ),
    Peer(
        "prefect",
        "Prefect",
        "prefect==3.9.1",
        "prefect",
        "prefect_peer.py",
        "tasks with `cache_policy=INPUTS + TASK_SOURCE`, `persist_result=True`; ephemeral local server, "
        "sqlite and results under a fresh PREFECT_HOME",
    ),
    Peer(
        "floor",
        "floor (plain Python)",
        "",
        "",
        "floor_peer.py",
        "not a tool but a lower bound: per call, the call hashed into a key and the result pickled to a "
        "file renamed into place; a large output's sha256 beside its write, as a content address needs; "
        "cached, the files read back unchecked (peers/floor_peer.py)",
        mapped=True,
    ),
    Peer(
        "joblib",
        "joblib.Memory",
        "joblib==1.6.0",
        "joblib",
        "joblib_peer.py",
        "`Memory(dir).cache` on each function (memoization only: no graph, no run records); the mapped "
        "fan-out as a cached function called per element",
        mapped=True,
    ),
)


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_venv(peer: Peer, root: Path, log: TextIO = sys.stderr) -> tuple[Path | None, str]:
    """(the venv's python, its installed version), or (None, why) when the peer cannot be installed.

    Reuses a venv whose marker names ``peer.requirement``; otherwise builds it
    anew with ``python -m venv`` and pip. Never raises for an install failure:
    the caller skips the peer and prints the reason.
    """
    if not peer.requirement:  # plain Python: the benchmark's own interpreter
        return Path(sys.executable), platform.python_version()
    venv = root / peer.key
    python = venv_python(venv)
    marker = venv / MARKER
    if not (python.exists() and marker.exists() and marker.read_text().strip() == peer.requirement):
        print(f"installing {peer.requirement} into {venv} ...", file=log, flush=True)
        shutil.rmtree(venv, ignore_errors=True)
        steps = [
            [sys.executable, "-m", "venv", str(venv)],
            [str(python), "-m", "pip", "install", "--quiet", peer.requirement],
        ]
        for command in steps:
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
            except (OSError, subprocess.TimeoutExpired) as exc:
                return None, f"`{' '.join(command[-3:])}` did not complete: {exc}"
            if done.returncode != 0:
                lines = [line for line in done.stderr.splitlines() if line.strip() and "is ignored" not in line]
                return None, f"`pip install {peer.requirement}` failed: {lines[-1] if lines else done.returncode}"
        marker.write_text(peer.requirement + "\n")
    probe = subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version({peer.distribution!r}))"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        return None, f"{peer.distribution} is not importable in {venv}"
    return python, probe.stdout.strip()


def script(peer: Peer) -> Path:
    return HERE / peer.script
