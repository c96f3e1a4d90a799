"""How values read from a store are written on the pages: times, durations, digests, statuses, the store."""

from __future__ import annotations

import time

from .._errors import InvalidNameError
from .._redact import redact_options
from ..report._graphviz import STATUS_COLOURS
from ..store._manifest import NodeRecord
from ..store._records import validate_run_id
from ..store._store import Store


def when(moment: float | None) -> str:
    """A UTC time, or the number as it is where it is no time (a damaged record)."""
    if moment is None:
        return "—"
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(moment))
    except (OverflowError, OSError, ValueError):
        return str(moment)


def short(text: str) -> str:
    """A digest as its first 12 hex characters (what ``wfe`` prints); other text as it is."""
    return text[7:19] if len(text) == 71 and text.startswith("sha256:") else text


def run_colour(status: str) -> str:
    """The node status whose colour a run status is drawn in."""
    return {"succeeded": "ran", "failed": "failed", "running": "running", "died": "failed"}.get(status, "skipped")


def cache_word(record: NodeRecord) -> str:
    return {"cached": "hit", "ran": "miss" if record.function else "new content"}.get(record.status, "—")


def is_run_id(text: str) -> bool:
    try:
        validate_run_id(text)
    except InvalidNameError:
        return False
    return True


def store_label(store: Store) -> str:
    """How the store is named on every page: its URL and options, secrets masked as ``repr(store)`` masks them."""
    shown = {k: v for k, v in redact_options(store.options).items() if k not in ("cache", "cache_size")}
    return store.url + (" " + " ".join(f"{k}={v}" for k, v in sorted(shown.items())) if shown else "")


def legend() -> str:
    items = "".join(f'<span><i style="background:{fill}"></i>{status}</span>'
                    for status, (fill, _, _) in STATUS_COLOURS.items())
    return f'<div class="legend">{items}</div>'
