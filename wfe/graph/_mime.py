"""MIME types: checking one, its base type, matching a pattern."""

from __future__ import annotations

import functools
import re

_MIME_RE = re.compile(r"[A-Za-z0-9*][A-Za-z0-9!#$&^_.+*-]*/[A-Za-z0-9*][A-Za-z0-9!#$&^_.+*-]*")


def validate_mime(value: str) -> str:
    base = value.split(";", 1)[0].strip()
    if not _MIME_RE.fullmatch(base):
        raise ValueError(f"invalid MIME type {value!r}")
    return value


@functools.lru_cache(maxsize=1024)  # a workflow names a handful of types, asked about several times per node
def mime_base(mime: str) -> str:
    return mime.split(";", 1)[0].strip().lower()


@functools.lru_cache(maxsize=1024)
def mime_matches(pattern: str, mime: str) -> bool:
    """True if ``mime`` matches ``pattern`` (``*/*``, ``text/*`` or exact, parameters ignored)."""
    pattern, mime = mime_base(pattern), mime_base(mime)
    if pattern in ("*/*", mime):
        return True
    major, _, minor = pattern.partition("/")
    return minor == "*" and mime.partition("/")[0] == major
