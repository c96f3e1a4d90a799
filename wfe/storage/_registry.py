"""Which storage class serves a URL scheme, and the fsspec filesystem under it.

The built-ins are known here in code, as fsspec's ``known_implementations``:
a source checkout with no installed metadata opens a store all the same, and
an optional backend whose package is missing says which extra to install.
Every other scheme is looked up in the ``wfe.storage`` entry points, where a
third-party backend registers its :class:`~wfe.storage.StorageIO` subclass
(the packages under ``backends/`` declare theirs there too); a scheme with no
storage class is served by :class:`~wfe.storage._generic.FsspecIO`, over
whatever fsspec filesystem answers to it, as its probe at opening found it.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any, NamedTuple

from .._errors import StoreURLError
from ._base import StorageIO

ENTRY_POINT_GROUP = "wfe.storage"


class Known(NamedTuple):
    """A built-in backend: where its storage class is, and how to install what it needs."""

    target: str  # "module:Class"
    hint: str = ""
    filesystem: str = ""  # "module.Class" of its fsspec filesystem, where fsspec itself does not know the protocol


_S3 = Known("wfe_s3:S3IO", "s3 needs the s3 extra: pip install 'wfe[s3]'")
KNOWN_IMPLEMENTATIONS: dict[str, Known] = {
    "file": Known("wfe.storage._local:LocalIO"),
    "memory": Known("wfe.storage._memory:MemoryIO"),
    "s3": _S3,
    "s3a": _S3,
    "supabase": Known(
        "wfe_supabase:SupabaseIO",
        "supabase needs the supabase extra: pip install 'wfe[supabase]'",
        "wfe_supabase.SupabaseFileSystem",
    ),
}


@functools.cache
def _entry_points() -> dict[str, str]:
    """Protocol -> ``"module:Class"`` from the ``wfe.storage`` entry points (read once per process)."""
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def storage_classes() -> dict[str, str]:
    """Every scheme with a storage class of its own: protocol -> ``"module:Class"``."""
    found = _entry_points()
    return {**found, **{name: known.target for name, known in KNOWN_IMPLEMENTATIONS.items()}}


def storage_class(protocol: str) -> type[StorageIO]:
    """The storage class for ``protocol``; :class:`FsspecIO` (probed at opening) for a plain fsspec protocol."""
    known = KNOWN_IMPLEMENTATIONS.get(protocol)
    target = known.target if known is not None else _entry_points().get(protocol)
    if target is None:
        from ._generic import FsspecIO

        return FsspecIO
    module_name, _, attribute = target.partition(":")
    try:
        cls: type[StorageIO] = getattr(importlib.import_module(module_name), attribute)
    except ImportError as exc:
        hint = known.hint if known is not None and known.hint else f"the {protocol!r} backend cannot be imported"
        raise StoreURLError(f"{hint} ({exc})") from None
    return cls


def filesystem(protocol: str, options: dict[str, Any]) -> Any:
    """The fsspec filesystem of ``protocol``, built with ``options``; one-line errors."""
    import fsspec

    # available_protocols() lists lazy registrations only; a class registered at runtime
    # (fsspec.register_implementation(name, cls)) is in fsspec.registry.registry.
    from fsspec.registry import registry as runtime_registered

    known_backend = KNOWN_IMPLEMENTATIONS.get(protocol)
    if known_backend is not None and known_backend.filesystem and protocol not in fsspec.available_protocols():
        # No installed metadata (a source checkout): register it as its package's entry point would.
        fsspec.register_implementation(protocol, known_backend.filesystem, clobber=False)
    if protocol not in fsspec.available_protocols() and protocol not in runtime_registered:
        known = ", ".join(sorted(p for p in fsspec.available_protocols() if p in storage_classes()))
        raise StoreURLError(f"unknown store URL scheme {protocol!r}; known: {known}, or any installed fsspec protocol")
    try:
        return fsspec.filesystem(protocol, **options)
    except ImportError as exc:
        if known_backend is not None and known_backend.hint:
            raise StoreURLError(f"{known_backend.hint} ({exc})") from None
        raise StoreURLError(f"the {protocol!r} backend needs a package that is not installed: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise StoreURLError(f"bad options for {protocol!r} store: {exc}") from None
