"""redun 0.44 with its sqlite backend: see _common for the usage.

``start``, ``step`` and ``big`` are redun tasks; a root task builds the chain
or the fan-out as lazy expressions and the scheduler evaluates them with its
call cache (sqlite under CACHE_DIR), as redun's docs show for scripted use.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common
from redun import Scheduler, task
from redun.config import Config

redun_namespace = "wfe_bench"
# redun pickles the root task's returned expression recursively, about five frames per chained call;
# the default limit of 1000 stops a 200-node chain, so the limit is raised rather than the graph changed.
sys.setrecursionlimit(20_000)
SHAPE, N, CACHE = _common.args()


@task()
def start() -> int:
    _common.executed()
    return _common.start_value()


@task()
def step(x: int, i: int) -> int:
    _common.executed()
    return _common.add_one(x)


@task()
def big(mib: int) -> bytes:
    _common.executed()
    return _common.ones(mib)


@task()
def chain(n: int) -> int:
    value = start()
    for i in range(1, n):
        value = step(value, i)
    return value


@task()
def fanout(n: int) -> list[int]:
    first = start()
    return [first] + [step(first, i) for i in range(1, n)]


def _main() -> None:
    Path(CACHE).mkdir(parents=True, exist_ok=True)
    scheduler = Scheduler(config=Config({"backend": {"db_uri": f"sqlite:///{CACHE}/redun.db"}}))
    scheduler.load()  # creates or migrates the sqlite database, as `redun run` does
    root = {"chain": chain, "fanout": fanout, "big": big}[SHAPE]
    result = scheduler.run(root(N))
    _common.report(SHAPE, N, result)


if __name__ == "__main__":
    _main()
