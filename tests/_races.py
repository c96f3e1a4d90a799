"""Racing writers in separate processes, released together by a barrier (used by the tests of real servers)."""

from __future__ import annotations

from typing import Any

import wfe
from wfe.store._digest import digest_of
from wfe.store._manifest import ActionResult


def result_of(writer: int) -> ActionResult:
    """A result only writer ``writer`` puts."""
    return ActionResult(outputs=[], function=f"writer-{writer}", version="1", config=digest_of(b"{}"), inputs=[],
                        created=0.0)  # fmt: skip


def put_first_results(url: str, options: dict[str, Any], writer: int, keys: list[str], barrier: Any) -> list[bool]:
    """For each key in turn, wait for every writer, then put this writer's result; whether each put won."""
    store = wfe.open_store(url, **options)
    won = []
    for key in keys:
        barrier.wait()
        won.append(store.actions.put(key, result_of(writer)))
    return won
