"""Turning stored bytes into function arguments and return values into bytes, by MIME type."""

from __future__ import annotations

import json
import os
from typing import Any

from ._models import mime_base


def is_json(mime: str) -> bool:
    base = mime_base(mime)
    return base == "application/json" or base.endswith("+json")


def is_text(mime: str) -> bool:
    return mime_base(mime).startswith("text/")


def decode(data: bytes, mime: str) -> Any:
    """JSON -> Python objects, ``text/*`` -> str, anything else -> bytes."""
    if is_json(mime):
        return json.loads(data)
    if is_text(mime):
        return data.decode("utf-8")
    return data


def encode(value: Any, mime: str) -> bytes | os.PathLike[str] | Any:
    """What to store for a returned value: bytes, a path to stream from, or a binary file object."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, os.PathLike):
        return value
    if hasattr(value, "read"):
        return value
    if is_json(mime):
        try:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise TypeError(f"cannot encode {type(value).__name__} as {mime}: {exc}") from None
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(
        f"cannot store a {type(value).__name__} as {mime}: return bytes, str, a path or a binary file"
        + (" (or declare the output application/json)" if isinstance(value, (dict, list, int, float)) else "")
    )
