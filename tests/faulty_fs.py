"""Deliberately broken fsspec filesystems, each under its own protocol, to prove the suite catches them.

All of them keep their files on local disk under a ``base`` folder (a URL
option), so other processes see the same data, as a third-party network
filesystem would; each breaks exactly one promise:

==================  =========================================================
``faultless``       none: the control, which must pass the whole suite
``faulty-truncate`` writes larger than 4 MiB lose everything past 4 MiB
``faulty-torn``     publishing copies into place chunk by chunk, so a reader
                    can see a partly written object under its final name
``faulty-listing``  listings return only their first page of 3 entries
``faulty-long-listing``  listings stop after 1,000 entries (S3's page)
``faulty-delete``   deletes do nothing (and report no error)
==================  =========================================================

Importing this module registers the protocols (worker processes import it
again by name before opening a store). wfe has no ``wfe.storage`` entry for
them, so the stores use the generic StorageIO, exactly as for any unknown
third-party protocol.
"""

from __future__ import annotations

import shutil
import time
from typing import Any

import fsspec
from fsspec.implementations.dirfs import DirFileSystem
from fsspec.implementations.local import LocalFileSystem

TRUNCATE_AT = 4 * 1024 * 1024
PAGE_SIZE = 3
TORN_CHUNK = 256 * 1024


class Faultless(DirFileSystem):  # type: ignore[misc]
    """A correct filesystem: every path lives under the ``base`` folder on local disk."""

    protocol = "faultless"

    def __init__(self, base: str, **kwargs: Any) -> None:
        super().__init__(path=base, fs=LocalFileSystem(), **kwargs)


class TruncatingFS(Faultless):
    """Stores only the first 4 MiB of a larger object, silently."""

    protocol = "faulty-truncate"

    def pipe_file(self, path: str, value: bytes, *args: Any, **kwargs: Any) -> None:
        super().pipe_file(path, value[:TRUNCATE_AT], *args, **kwargs)

    def put_file(self, lpath: str, rpath: str, *args: Any, **kwargs: Any) -> None:
        with open(lpath, "rb") as handle:
            self.pipe_file(rpath, handle.read(TRUNCATE_AT))


class TornWriteFS(Faultless):
    """``mv`` copies into the destination in chunks: the partial object is visible meanwhile."""

    protocol = "faulty-torn"

    def mv(self, path1: str, path2: str, *args: Any, **kwargs: Any) -> None:
        source, target = self._join(path1), self._join(path2)
        with open(source, "rb") as reader, open(target, "wb") as writer:
            while chunk := reader.read(TORN_CHUNK):
                writer.write(chunk)
                writer.flush()
                time.sleep(0.002)  # a slow network copy: widens the window a reader can hit
        self.fs.rm_file(source)


class PagedListingFS(Faultless):
    """``find`` and ``ls`` return only the first page, like a client that ignores continuation tokens."""

    protocol = "faulty-listing"
    page_size = PAGE_SIZE

    def find(self, path: str, *args: Any, **kwargs: Any) -> Any:
        found = super().find(path, *args, **kwargs)
        if isinstance(found, dict):
            return dict(sorted(found.items())[: self.page_size])
        return sorted(found)[: self.page_size]

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> Any:
        return super().ls(path, detail=detail, **kwargs)[: self.page_size]


class FirstPageListingFS(PagedListingFS):
    """Listings stop after S3's page of 1,000 keys: a fault only a listing longer than one page can show."""

    protocol = "faulty-long-listing"
    page_size = 1000


class UndeletableFS(Faultless):
    """Deletes return without deleting anything (whole trees still go, so tests can clean up)."""

    protocol = "faulty-delete"

    def rm_file(self, path: str, *args: Any, **kwargs: Any) -> None:
        if not self.exists(path):
            raise FileNotFoundError(path)  # a missing file is still reported: only real deletes are lost

    def rm(self, path: Any, recursive: bool = False, *args: Any, **kwargs: Any) -> None:
        if recursive:
            shutil.rmtree(self._join(path), ignore_errors=True)


ALL = (Faultless, TruncatingFS, TornWriteFS, PagedListingFS, FirstPageListingFS, UndeletableFS)

for _cls in ALL:
    fsspec.register_implementation(str(_cls.protocol), _cls, clobber=True)
