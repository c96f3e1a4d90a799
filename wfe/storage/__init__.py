"""The backend interface: what a storage backend for wfe implements, and how wfe finds it.

A backend is a subclass of :class:`StorageIO` over an fsspec filesystem. It
sets the capability flags that describe it (documented on the class, read by
the stores and by the conformance suite), overrides what its filesystem does
better than the generic calls, and stages writes with :class:`Staging`
(:class:`SpooledStaging` is the default: memory, then a local temporary file,
then one upload). Backend-library errors become wfe's inside :class:`translate`,
the one boundary where that happens.

A third-party backend registers its class under the ``wfe.storage`` entry
point group; the built-ins are known in code (see :data:`KNOWN_IMPLEMENTATIONS`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._errors import Damaged, NoHardLink
from ._base import CHUNK_SIZE, CONCURRENCY, SPOOL_LIMIT, Listed, Page, SpooledStaging, Staging, StorageIO
from ._registry import ENTRY_POINT_GROUP, KNOWN_IMPLEMENTATIONS, Known, filesystem, storage_class, storage_classes
from ._translate import damaged, too_large, translate
from ._urls import option_flag

if TYPE_CHECKING:  # loaded when first asked for: only the probing backends use them, and a local run does not
    from ._remember import MAX_AGE as RECORD_MAX_AGE
    from ._remember import Memo, fresh

__all__ = [
    "CHUNK_SIZE",
    "CONCURRENCY",
    "ENTRY_POINT_GROUP",
    "KNOWN_IMPLEMENTATIONS",
    "RECORD_MAX_AGE",
    "SPOOL_LIMIT",
    "Damaged",
    "Known",
    "Listed",
    "Memo",
    "NoHardLink",
    "Page",
    "SpooledStaging",
    "Staging",
    "StorageIO",
    "damaged",
    "filesystem",
    "fresh",
    "option_flag",
    "storage_class",
    "storage_classes",
    "too_large",
    "translate",
]


def __getattr__(name: str) -> Any:
    if name in ("RECORD_MAX_AGE", "Memo", "fresh"):
        from . import _remember

        return _remember.MAX_AGE if name == "RECORD_MAX_AGE" else getattr(_remember, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
