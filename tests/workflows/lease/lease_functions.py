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
