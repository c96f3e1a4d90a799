"""Prefect 3.9 with task caching (INPUTS + TASK_SOURCE) and persisted results: see _common for the usage.

Everything Prefect keeps lives under CACHE_DIR: PREFECT_HOME (its sqlite
database, used by the ephemeral local server it starts on loopback) and the
result storage the cache reads on a hit. Telemetry and server analytics are
off, so nothing leaves the machine. Tasks are called directly from the flow,
one after another, like the other tools' sequential runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

SHAPE, N, CACHE = _common.args()
# Settings are read when prefect is imported, so they are set first.
os.environ.update(
    {
        "PREFECT_HOME": str(Path(CACHE, "home")),
        "PREFECT_LOCAL_STORAGE_PATH": str(Path(CACHE, "results")),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        # A busy machine can take longer than the default 20 s to start the local server; waiting is
        # measured like any other start-up time, where a time-out would only lose the sample.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    }
)
os.environ.pop("PREFECT_API_URL", None)  # the ephemeral local server, never a remote one
Path(CACHE, "home").mkdir(parents=True, exist_ok=True)  # prefect does not create its parents

from prefect import flow, task  # noqa: E402
from prefect.cache_policies import INPUTS, TASK_SOURCE  # noqa: E402

POLICY = INPUTS + TASK_SOURCE


@task(cache_policy=POLICY, persist_result=True)
def start() -> int:
    _common.executed()
    return _common.start_value()


@task(cache_policy=POLICY, persist_result=True)
def step(x: int, i: int) -> int:
    _common.executed()
    return _common.add_one(x)


@task(cache_policy=POLICY, persist_result=True)
def big(mib: int) -> bytes:
    _common.executed()
    return _common.ones(mib)


@flow
def workload(shape: str, n: int) -> object:
    if shape == "big":
        return big(n)
    first = start()
    if shape == "chain":
        value = first
        for i in range(1, n):
            value = step(value, i)
        return value
    return [first] + [step(first, i) for i in range(1, n)]


if __name__ == "__main__":
    _common.report(SHAPE, N, workload(SHAPE, N))
