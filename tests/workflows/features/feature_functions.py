"""Functions for the flexible-data, sub-workflow, iteration and mapping tests."""

from __future__ import annotations

import json
import os

import wfe

CALLS_FILE = os.environ.get("WFE_TEST_CALLS")


def _note(name: str, value: object) -> None:
    """Append a line per call, so tests can count what actually ran."""
    if CALLS_FILE:
        with open(CALLS_FILE, "a", encoding="utf-8") as handle:
            handle.write(json.dumps([name, value]) + "\n")
    if os.environ.get("WFE_TEST_DIE_IN") == name:  # simulate a crash inside this function
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


@wfe.function(outputs="application/json")
def numbers(*, count: int) -> list[int]:
    _note("numbers", count)
    return list(range(1, count + 1))


@wfe.function(inputs=["application/json"], outputs="application/json")
def square(x: int) -> int:
    _note("square", x)
    return x * x


@wfe.function(inputs=[wfe.ARTIFACT_LIST], outputs="application/json")
def total(values: list[int]) -> int:
    _note("total", len(values))
    return sum(values)


# --- iteration: Newton's method for sqrt(target), one step per iteration -----------------
@wfe.function(outputs="application/json")
def start(*, guess: float) -> float:
    return guess


@wfe.function(inputs=[wfe.Input("application/json", name="estimate")],
              outputs=[wfe.Output("application/json", name="estimate")])
def newton_step(estimate: float, *, target: float) -> float:
    _note("newton_step", estimate)
    return (estimate + target / estimate) / 2


@wfe.function(inputs=[wfe.Input("application/json", name="before"), wfe.Input("application/json", name="after")],
              outputs=[wfe.Output("application/json", name="keep_going")])
def not_converged(before: float, after: float, *, tolerance: float) -> bool:
    _note("not_converged", after)
    return abs(after - before) > tolerance


# --- ports, data kinds -------------------------------------------------------------------
@wfe.function(
    inputs=["application/json"],
    outputs=[
        wfe.Output("application/json", name="low"),
        wfe.Output("application/json", name="high"),
        wfe.Output("application/json", name="count", kind="inline"),
    ],
)
def split(values: list[int], *, pivot: int) -> tuple[list[int], list[int], int]:
    _note("split", pivot)
    return [v for v in values if v < pivot], [v for v in values if v >= pivot], len(values)


@wfe.function(inputs=[wfe.Input("application/json", name="items")], outputs="application/json")
def count_items(items: list[int]) -> int:
    return len(items)


@wfe.function(inputs=["application/json"], outputs=[wfe.Output("application/octet-stream", kind="ephemeral")])
def expand(values: list[int]) -> bytes:
    _note("expand", len(values))
    return b"".join(v.to_bytes(4, "big") for v in values) * 1000


@wfe.function(inputs=["application/octet-stream"], outputs="application/json")
def checksum(data: bytes, *, salt: int = 0) -> int:
    _note("checksum", salt)
    return (sum(data) + salt) % 1_000_003
