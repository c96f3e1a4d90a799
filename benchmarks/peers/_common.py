"""What every peer script shares: its arguments and the one JSON line it prints.

A peer script runs inside the peer's own venv, so this module imports nothing
outside the standard library. Usage of every script::

    python PEER.py SHAPE N CACHE_DIR

SHAPE is ``chain`` (N nodes, each adding 1 to the one before), ``fanout``
(one source and N - 1 nodes adding 1 to it), ``map`` (one source returning
``list(range(N))`` and a function adding 1 mapped over its N elements, in the
tool's own per-element form; only the mapped function's bodies count as
executed, as a tool may run its source again by design) or ``big`` (one node
returning N MiB of ``0x01`` bytes). CACHE_DIR is the tool's cache; a second process on
the same CACHE_DIR is the cached run. The script prints one JSON line:
``{"executed": <function bodies that ran>, "ok": <result checked>}``.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from typing import Any

MIB = 1024 * 1024
_lock = threading.Lock()
_executed = [0]


def args() -> tuple[str, int, str]:
    """(shape, n, cache_dir) from the command line; a bad shape exits with status 2."""
    shape, n, cache = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if shape not in ("chain", "fanout", "map", "big"):
        print(f"error: unknown shape {shape!r}", file=sys.stderr)
        raise SystemExit(2)
    return shape, n, cache


def executed() -> None:
    """Count one function body run; a cached run must count none. Locked: some tools use threads."""
    with _lock:
        _executed[0] += 1


# The three pure functions every tool wraps in its own way.
def start_value() -> int:
    return 0


def add_one(x: int) -> int:
    return x + 1


def ones(mib: int) -> bytes:
    # Non-zero content: every page is written, as a real payload would be.
    return b"\x01" * (mib * MIB)


def items(n: int) -> list[int]:
    return list(range(n))


# The same five as plain functions, for a tool that caches calls of plain Python (a decorator) to wrap.
def start() -> int:
    executed()
    return start_value()


def step(x: int, i: int) -> int:
    executed()
    return add_one(x)


def source(n: int) -> list[int]:  # the mapped fan-out's list: not counted, a tool may run it again by design
    return items(n)


def each(x: int) -> int:
    executed()
    return add_one(x)


def big(mib: int) -> bytes:
    executed()
    return ones(mib)


def drive(shape: str, n: int, cache: Callable[[Callable[..., Any]], Callable[..., Any]]) -> object:
    """The workload as plain Python calling the five functions, each wrapped by the tool's ``cache``."""
    start_, step_, source_, each_, big_ = (cache(f) for f in (start, step, source, each, big))
    if shape == "big":
        return big_(n)
    if shape == "map":  # a cached function called per element
        return [each_(x) for x in source_(n)]
    if shape == "chain":
        result = start_()
        for i in range(1, n):
            result = step_(result, i)
        return result
    first = start_()
    return [first] + [step_(first, i) for i in range(1, n)]


def check(shape: str, n: int, result: object) -> bool:
    """Whether ``result`` is the right answer: the last value, the fan-out list, the mapped list, or the payload."""
    if shape == "chain":
        return result == n - 1
    if shape == "map":
        return list(result) == list(range(1, n + 1))  # type: ignore[call-overload]
    if shape == "fanout":
        return list(result) == [0] + [1] * (n - 1) if n > 1 else list(result) == [0]  # type: ignore[call-overload]
    return isinstance(result, bytes) and len(result) == n * MIB and result[:1] == b"\x01" and result[-1:] == b"\x01"


def report(shape: str, n: int, result: object) -> None:
    print(json.dumps({"executed": _executed[0], "ok": check(shape, n, result)}), flush=True)
