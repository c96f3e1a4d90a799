"""Supabase Storage for wfe: ``supabase://bucket/prefix``.

Registered by entry points: ``fsspec.specs`` (``SupabaseFileSystem``, so
``fsspec.filesystem("supabase")`` works anywhere) and ``wfe.storage``
(``SupabaseIO``, how wfe's stores write to it).
"""

from __future__ import annotations

from ._errors import BucketNotFoundError, InvalidKeyError, ObjectTooLargeError, SupabaseStorageError
from ._fs import SupabaseFileSystem
from ._transfer import SupabaseFile

__all__ = [
    "BucketNotFoundError",
    "InvalidKeyError",
    "ObjectTooLargeError",
    "SupabaseFile",
    "SupabaseFileSystem",
    "SupabaseIO",
    "SupabaseStorageError",
]


def __getattr__(name: str) -> object:
    # SupabaseIO imports wfe; keep plain fsspec use of this package free of that import
    if name == "SupabaseIO":
        from ._io import SupabaseIO

        return SupabaseIO
    raise AttributeError(name)
