"""A slow function that notes each call in a file, for the lease tests."""

from __future__ import annotations

import os
import time

import wfe


@wfe.function(outputs="application/json")
def slow(*, calls: str, seconds: float) -> dict[str, object]:
    with open(calls, "a") as handle:
        handle.write(f"{os.getpid()}\n")
    time.sleep(seconds)
    return {"answer": 42}


@wfe.function(inputs=["application/json"], outputs="application/json")
def after(value: dict[str, object]) -> dict[str, object]:
    return {"seen": value}


@wfe.function(outputs="application/json")
def gated(*, calls: str, go: str, name: str = "") -> dict[str, object]:
    """Note the call, then wait (at most a minute) until the file ``go`` exists: a node as long as a test needs."""
    with open(calls, "a") as handle:
        handle.write(f"{name}:{os.getpid()}\n")
    deadline = time.monotonic() + 60
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.02)
    return {"answer": 42}
