"""joblib.Memory 1.6, memoization only: see _common for the usage.

Each function is wrapped with ``Memory(CACHE).cache``; the workflow is plain
Python calling them, which is how joblib's docs use it.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common
from joblib import Memory

SHAPE, N, CACHE = _common.args()
memory = Memory(CACHE, verbose=0)


@memory.cache
def start() -> int:
    _common.executed()
    return _common.start_value()


@memory.cache
def step(x: int, i: int) -> int:
    _common.executed()
    return _common.add_one(x)


@memory.cache
def items(n: int) -> list[int]:
    return _common.items(n)


@memory.cache
def each(x: int) -> int:
    _common.executed()
    return _common.add_one(x)


@memory.cache
def big(mib: int) -> bytes:
    _common.executed()
    return _common.ones(mib)


def _main() -> None:
    result: object
    if SHAPE == "big":
        result = big(N)
    elif SHAPE == "map":  # a cached function called per element: joblib's form of a mapped step
        result = [each(x) for x in items(N)]
    elif SHAPE == "chain":
        result = start()
        for i in range(1, N):
            result = step(result, i)
    else:
        first = start()
        result = [first] + [step(first, i) for i in range(1, N)]
    _common.report(SHAPE, N, result)


if __name__ == "__main__":
    _main()
