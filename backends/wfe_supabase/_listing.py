"""Listing through ``POST /object/list-v2/{bucket}``: exact prefixes, whole keys, a cursor.

The older list API (``POST /object/list``) matches a prefix case-insensitively
(range scans on ``lower(name)``) and answers names relative to the prefix: an
object under ``Runs/`` lists as if it were under ``runs/``, and folders whose
names differ only in case merge into one entry under one of their spellings.
list-v2 compares keys byte for byte (``COLLATE "C"``, ``_`` and ``%`` escaped)
and answers whole keys, so what it lists under a prefix is under exactly that
prefix: a foreign object under a differently cased prefix is never taken for
one of the store's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

LIST_LIMIT = 1000  # the most entries list-v2 answers per request
PLACEHOLDER = ".emptyFolderPlaceholder"  # written by the dashboard when a folder is created by hand


@dataclass(frozen=True)
class Entry:
    """One listed key (without the bucket; a folder's without its trailing slash) and its object row."""

    key: str
    row: dict[str, Any] | None  # None for a folder

    @property
    def is_placeholder(self) -> bool:
        return self.row is not None and self.key.rsplit("/", 1)[-1] == PLACEHOLDER


def list_v2(proxy: Any, prefix: str, *, folders: bool, page_size: int) -> Iterator[Entry]:
    """Every entry whose key starts with ``prefix``, page by page, lazily.

    With ``folders``, the objects and folders right under ``prefix`` (which
    should end with ``/``); without, every object anywhere below it. Errors
    are storage3's, for the caller to translate.
    """
    for entries, _ in pages_v2(proxy, prefix, folders=folders, page_size=page_size):
        yield from entries


def pages_v2(proxy: Any, prefix: str, *, folders: bool, page_size: int) -> Iterator[tuple[list[Entry], bool]]:
    """:func:`list_v2` a request at a time: each page's entries, and whether the listing goes on after them.

    ``prefix`` is matched as a string (``actions/0`` lists ``actions/0a/…``).
    """
    cursor: str | None = None
    while True:
        options: dict[str, Any] = {"prefix": prefix, "with_delimiter": folders, "limit": min(page_size, LIST_LIMIT)}
        if cursor:
            options["cursor"] = cursor
        page = proxy.list_v2(options)
        entries = [Entry(folder.name.rstrip("/"), None) for folder in page.folders]
        for found in page.objects:
            entries.append(Entry(found.name, {
                "id": found.id,
                "metadata": found.metadata or {},
                "updated_at": found.updated_at.isoformat(),
                "created_at": found.created_at.isoformat(),
            }))  # fmt: skip
        more = bool(page.hasNext and page.nextCursor)
        yield entries, more
        if not more:
            return
        cursor = page.nextCursor


def file_entry(path: str, row: dict[str, Any]) -> dict[str, Any]:
    """fsspec's description of the object ``path`` from its list or info row."""
    metadata = row.get("metadata") or {}
    size = row.get("size")
    if size is None:
        size = metadata.get("size", metadata.get("contentLength", 0))
    return {
        "name": path,
        "type": "file",
        "size": int(size or 0),
        "etag": row.get("etag") or metadata.get("eTag"),
        "content_type": row.get("content_type") or metadata.get("mimetype"),
        "last_modified": row.get("last_modified") or row.get("updated_at"),
        "created_at": row.get("created_at"),
    }


def folder_entry(path: str) -> dict[str, Any]:
    return {"name": path, "type": "directory", "size": 0}
