"""How wfe's stores use Supabase Storage: create-only uploads, one request per check."""

from __future__ import annotations

from typing import Any

from wfe import StoreURLError
from wfe.storage import SpooledStaging, Staging, StorageIO, translate

from ._errors import VALID_KEY


class SupabaseIO(StorageIO):
    """``supabase://bucket/prefix`` for wfe.

    One upload appears whole, so blobs are published by a single request
    (``atomic_upload``). An exclusive publish (blobs, configs, action cache
    entries) is a create-only upload: the server refuses an existing key,
    so two writers racing for one key cannot both win, and no existence
    check is needed first (``conditional_create``).
    """

    atomic_upload = True
    shared = True
    tamperable = True
    conditional_create = True

    def __init__(self, fs: Any, root: str) -> None:
        root = root.strip("/")
        if not root:
            raise StoreURLError("a supabase:// store needs a bucket: supabase://BUCKET or supabase://BUCKET/PREFIX")
        _bucket, _, prefix = root.partition("/")
        if prefix and not VALID_KEY.fullmatch(prefix):
            raise StoreURLError(
                f"store prefix {prefix!r} has characters Supabase Storage keys do not allow; "
                "use letters, digits and _ - . /"
            )
        super().__init__(fs, root)

    def exists(self, rel: str) -> bool:
        path = self.path(rel)
        with translate("check", path):
            return bool(self.fs.object_exists(path))

    def stage(self) -> Staging:
        return _CreateOnlyStaging(self)


class _CreateOnlyStaging(SpooledStaging):
    """Spool in memory (or a local file past the spool limit), then upload in one request."""

    def __init__(self, storage: SupabaseIO) -> None:
        super().__init__(storage)
        self._target = storage

    def publish(self, rel: str, *, exclusive: bool) -> bool:
        self._buffer.flush()
        self._buffer.seek(0)
        path = self._target.path(rel)
        with translate("write", path):
            try:
                self._target.fs.upload(path, self._buffer, overwrite=not exclusive)
            except FileExistsError:
                if exclusive:
                    return False
                raise
        return True
