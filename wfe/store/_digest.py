"""Digests, canonical JSON and action keys: the only hashing in wfe."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from json.encoder import encode_basestring
from typing import Any

from .._errors import InvalidDigestError

ALGORITHM = "sha256"
PREFIX = "sha256:"
_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")


def validate_digest(value: object) -> str:
    """Return ``value`` if it is a valid digest, else raise InvalidDigestError.

    This runs before any path is built from a digest, so nothing like
    ``sha256:../../etc/passwd`` ever reaches a filesystem.
    """
    if isinstance(value, str) and _DIGEST_RE.fullmatch(value):
        return value
    shown = repr(value) if len(repr(value)) <= 100 else repr(value)[:97] + "..."
    raise InvalidDigestError(
        f"invalid digest {shown}: expected 'sha256:' followed by 64 lowercase hex characters"
    )


def is_digest(value: object) -> bool:
    return isinstance(value, str) and _DIGEST_RE.fullmatch(value) is not None


def new_hasher() -> Any:
    return hashlib.sha256()


def digest_of(data: bytes) -> str:
    return PREFIX + hashlib.sha256(data).hexdigest()


def digest_of_stream(source: Any, chunk_size: int = 4 * 1024 * 1024) -> tuple[str, int]:
    """``(digest, size)`` of what a binary file object holds from its position to its end."""
    hasher = hashlib.sha256()
    size = 0
    while chunk := source.read(chunk_size):
        hasher.update(chunk)
        size += len(chunk)
    return PREFIX + hasher.hexdigest(), size


def hex_of(digest: str) -> str:
    """The 64 hex characters of a validated digest."""
    if isinstance(digest, str) and _DIGEST_RE.fullmatch(digest):  # validate_digest's test, inline: a few per node
        return digest[len(PREFIX) :]
    return validate_digest(digest)[len(PREFIX) :]  # raises, saying why


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_string = encode_basestring  # how _CANONICAL writes a string (ensure_ascii=False)


def canonical_json(value: Any) -> bytes:
    """The one serialisation that is hashed: sorted keys, no spaces, UTF-8.

    NaN and infinities are refused because JSON has no canonical form for them.
    """
    try:
        text = _CANONICAL.encode(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not canonical JSON: {exc}") from None
    except RecursionError:
        raise ValueError("not canonical JSON: nested too deeply") from None
    return text.encode("utf-8")


def digest_json(value: Any) -> str:
    return digest_of(canonical_json(value))


def action_key(function: str, version: str, config_digest: str, inputs: Iterable[str]) -> str:
    """The digest that names one action: same function version, config and inputs, same key.

    It is the digest of the canonical JSON of ``{"function", "version",
    "config", "inputs"}``, written out here in that JSON's key order with the
    string encoding it uses, instead of by sorting a dict: this runs once per node.
    """
    text = (
        f'{{"config":{_string(config_digest)},"function":{_string(function)},'
        f'"inputs":[{",".join(map(_string, inputs))}],"version":{_string(version)}}}'
    )
    return digest_of(text.encode("utf-8"))
