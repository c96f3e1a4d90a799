"""Functions for the executor tests and benchmarks: fan-out, reduction trees, failures, slow nodes."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import wfe

log = logging.getLogger("wide")


@wfe.function(outputs="application/json", version="1")
def seed(*, n: int = 0) -> dict[str, int]:
    return {"n": n}


@wfe.function(inputs=["application/json"], outputs="application/json", version="1")
def leaf(value: dict[str, int], *, i: int) -> int:
    return value["n"] * 1000 + i * i


@wfe.function(inputs=["application/json", "application/json"], outputs="application/json", version="1")
def add(left: int, right: int) -> int:
    return left + right


@wfe.function(inputs=["application/json"], outputs="application/json", version="1")
def burn(value: dict[str, int], *, i: int, seconds: float) -> int:
    """Busy for ``seconds`` of this thread's CPU time (pure Python: it holds the GIL like real work would)."""
    deadline = time.thread_time() + seconds
    total = i
    while time.thread_time() < deadline:
        for k in range(2000):
            total = (total * 31 + k) % 1_000_003
    return value["n"] + i


@wfe.function(inputs=["application/json"], outputs="application/json", version="1")
def boom(value: dict[str, int]) -> int:
    print("boom: preparing the input")
    log.info("boom: info before failing")
    log.warning("boom: about to fail")
    raise ValueError(f"bad input {value['n'] + 42}")


@wfe.function(inputs=["application/json"], outputs="application/json", version="1")
def chatty(value: int | dict[str, int], *, tag: str) -> str:
    print(f"chatty {tag}: printed")
    log.warning("chatty %s: logged", tag)
    return tag


@wfe.function(inputs=["application/json"], outputs="application/json", version="1")
def crash(value: Any) -> int:
    os._exit(3)  # a worker process dying, not a Python error


@wfe.function(inputs=["application/json"], outputs="application/json", version="1")
def gate(value: dict[str, int], *, folder: str, name: str) -> str:
    """Say it started (a marker file), then wait until the test lets it finish."""
    Path(folder, f"started-{name}").write_text("1")
    release = Path(folder, "release")
    deadline = time.monotonic() + 120
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return name


@wfe.function(inputs=["application/octet-stream"], outputs="application/json", version="1")
def measure(data: bytes) -> int:
    return len(data)
