"""Where things live under a store's root: one pure function per kind from digest to path, and back."""

from __future__ import annotations

from ._digest import PREFIX, hex_of, validate_digest

BLOB_PREFIX = "blobs/sha256"


def blob_path(digest: str) -> str:
    """Where a blob lives under the store root: ``blobs/sha256/ab/cdef…`` (validates first)."""
    hexdigest = hex_of(digest)
    return f"{BLOB_PREFIX}/{hexdigest[:2]}/{hexdigest[2:]}"


def digest_from_path(rel: str) -> str | None:
    """Invert :func:`blob_path`; None for anything that is not a blob path."""
    parts = rel.split("/")
    if len(parts) != 4 or f"{parts[0]}/{parts[1]}" != BLOB_PREFIX:
        return None
    candidate = PREFIX + parts[2] + parts[3]
    try:
        return validate_digest(candidate) if len(parts[2]) == 2 else None
    except ValueError:
        return None


def record_path(prefix: str, digest: str) -> str:
    """Where the record of ``digest`` lives in the folder ``prefix``: ``prefix/ab/cdef….json`` (validates first)."""
    hexdigest = hex_of(digest)
    return f"{prefix}/{hexdigest[:2]}/{hexdigest[2:]}.json"


def digest_from_record_path(prefix: str, rel: str) -> str | None:
    """Invert :func:`record_path`; None for anything that is not a record path of ``prefix``."""
    parts = rel.split("/")
    if len(parts) != 3 or parts[0] != prefix or len(parts[1]) != 2 or not parts[2].endswith(".json"):
        return None
    candidate = "sha256:" + parts[1] + parts[2][: -len(".json")]
    try:
        return validate_digest(candidate)
    except ValueError:
        return None
