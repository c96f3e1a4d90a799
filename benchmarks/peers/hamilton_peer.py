"""Apache Hamilton with its cache (``Builder().with_cache(path=...)``): see _common for the usage.

The graph is this module: ``n0`` is the source and ``step`` is one function
that ``@parameterize`` turns into the N - 1 other nodes, so each node is the
same pure function over a different upstream node. The mapped shape is
Hamilton's own: ``element`` is ``Parallelizable`` over the source's list,
``each`` runs once per element (cached per element), ``collected`` is the
``Collect``; dynamic execution runs the elements one after another in process.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common
from hamilton import driver
from hamilton.function_modifiers import parameterize, source, value
from hamilton.htypes import Collect, Parallelizable

SHAPE, N, CACHE = _common.args()


def _upstream(i: int) -> str:
    return f"n{i - 1}" if SHAPE == "chain" else "n0"


if SHAPE == "map":

    def element(n: int) -> Parallelizable[int]:
        yield from _common.items(n)

    def each(element: int) -> int:
        _common.executed()
        return _common.add_one(element)

    def collected(each: Collect[int]) -> list[int]:
        return list(each)


if SHAPE not in ("big", "map"):

    def n0() -> int:
        _common.executed()
        return _common.start_value()


if SHAPE not in ("big", "map") and N > 1:

    @parameterize(**{f"n{i}": {"x": source(_upstream(i)), "i": value(i)} for i in range(1, N)})
    def step(x: int, i: int) -> int:
        _common.executed()
        return _common.add_one(x)


if SHAPE == "big":

    def big(mib: int) -> bytes:
        _common.executed()
        return _common.ones(mib)


def _main() -> None:
    builder = driver.Builder().with_modules(sys.modules[__name__]).with_cache(path=CACHE)
    if SHAPE == "map":
        builder = builder.enable_dynamic_execution(allow_experimental_mode=True)
    dr = builder.build()
    if SHAPE == "map":
        result: object = dr.execute(["collected"], inputs={"n": N})["collected"]
    elif SHAPE == "big":
        result = dr.execute(["big"], inputs={"mib": N})["big"]
    else:
        outputs = dr.execute([f"n{i}" for i in range(N)])
        result = outputs[f"n{N - 1}"] if SHAPE == "chain" else [outputs[f"n{i}"] for i in range(N)]
    _common.report(SHAPE, N, result)


if __name__ == "__main__":
    _main()
