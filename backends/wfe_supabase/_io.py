"""How wfe's stores use Supabase Storage: exclusive writes by a create-only move, a bucket check on open."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator
from typing import Any

from wfe import StoreError, StoreURLError
from wfe.storage import Listed, Page, SpooledStaging, Staging, StorageIO, translate

from ._errors import SERVICE_ROLE, VALID_KEY

log = logging.getLogger(__name__)

STAGING = "tmp"  # where exclusive writes are uploaded before their move (gc removes a dead writer's)


class SupabaseIO(StorageIO):
    """``supabase://bucket/prefix`` for wfe.

    One upload appears whole, so an overwrite is one request
    (``atomic_upload``). A create-only upload is not a create-if-absent write
    on this server: it is refused when the key exists as it starts, but two
    racing ones both succeed and the last writer's bytes stay. So there is no
    ``conditional_create``. An exclusive write (blobs, configs, action cache
    entries, leases) is uploaded under a fresh key in ``tmp/`` and moved into
    place; the server refuses a move onto an existing key inside one database
    transaction, so of racing exclusive writers exactly one wins
    (``exclusive_publish``): two requests, three for a loser (its staged
    object is deleted).

    Opening a store checks its bucket once per process (see
    :meth:`SupabaseFileSystem.check_bucket`): a missing bucket or a key the
    server cannot verify is one error naming it.
    """

    atomic_upload = True
    shared = True
    tamperable = True
    conditional_create = False
    exclusive_publish = True
    paged_listing = True  # list-v2: 1,000 keys a request in name order, from any string prefix
    create_only_upload = True  # an upload without upsert is refused for an existing key

    def __init__(self, fs: Any, root: str) -> None:
        root = root.strip("/")
        if not root:
            raise StoreURLError("a supabase:// store needs a bucket: supabase://BUCKET or supabase://BUCKET/PREFIX")
        bucket, _, prefix = root.partition("/")
        if prefix and not VALID_KEY.fullmatch(prefix):
            raise StoreURLError(
                f"store prefix {prefix!r} has characters Supabase Storage keys do not allow; "
                "use letters, digits and _ - . /"
            )
        super().__init__(fs, root)
        try:
            fs.check_bucket(bucket)
        except OSError as exc:  # one line: what the server said, without "[Errno 13]"
            raise StoreError(f"open supabase://{root} failed: {exc.strerror or exc}") from None
        if fs.role not in (SERVICE_ROLE, None):
            log.info(
                "supabase://%s: the key's role is %r, not service_role: row-level-security policies decide what "
                "it may read and write, and objects they hide look missing",
                root,
                fs.role,
            )

    def list_prefix(self, prefix: str, start_after: str = "") -> Iterator[Page]:
        """list-v2 pages (one request each) of the objects starting with ``prefix``, with their MD5 ETags.

        The server pages by its own cursor, not by name: objects up to
        ``start_after`` are listed and left out here.
        """
        base = len(self.root) + 1
        for entries, more in self.fs.list_pages(self.path(prefix)):
            objects = [
                Listed(entry["name"][base:], int(entry["size"]), str(entry.get("etag") or "").strip('"') or None)
                for entry in entries
            ]
            yield Page([o for o in objects if o.rel > start_after], more)

    def list_page(self, prefix: str, start_after: str = "", limit: int = 1000) -> Page:
        folder = prefix.strip("/")
        found: list[Listed] = []
        more = False
        for page in self.list_prefix(f"{folder}/" if folder else "", start_after):
            found.extend(page.objects)
            more = page.more
            if len(found) > limit or not more:
                break
        return Page(found[:limit], more or len(found) > limit)

    def write_new(self, rel: str, data: bytes) -> bool:
        """One create-only upload: blobs and configs need no move, racing writers write the same bytes."""
        path = self.path(rel)
        with translate("write", path):
            try:
                self.fs.upload(path, data, overwrite=False)
            except FileExistsError:
                return False
        return True

    def exists(self, rel: str) -> bool:
        path = self.path(rel)
        with translate("check", path):
            return bool(self.fs.object_exists(path))

    def stage(self) -> Staging:
        return _StagedPublish(self)


class _StagedPublish(SpooledStaging):
    """Spool in memory (or a local file past the spool limit), then publish.

    An overwrite is one upload (upsert). An exclusive publish uploads to a
    fresh key under ``tmp/`` (an upsert: never refused, so its body is never
    left unread on a connection, and the same if sent twice) and moves it into
    place with :meth:`SupabaseFileSystem.move_new`, which exactly one of racing
    writers wins. A move sent twice (its connection broke before the answer)
    finds its source gone and the key taken: counted as lost, as it would be
    had another writer won, so the caller reads what is there.
    """

    def __init__(self, storage: SupabaseIO) -> None:
        super().__init__(storage)
        self._target = storage

    def publish(self, rel: str, *, exclusive: bool) -> bool:
        self._buffer.flush()
        self._buffer.seek(0)
        fs = self._target.fs
        path = self._target.path(rel)
        with translate("write", path):
            if not exclusive:
                fs.upload(path, self._buffer, overwrite=True)
                return True
            staged = self._target.path(f"{STAGING}/{uuid.uuid4().hex}")
            fs.upload(staged, self._buffer, overwrite=True)
            try:
                fs.move_new(staged, path)
            except FileExistsError:
                pass  # another writer's is there: ours goes
            except FileNotFoundError:
                if not fs.object_exists(path):
                    raise
                return False  # moved by a first attempt whose answer was lost, or gone as another's won
            except BaseException:
                with contextlib.suppress(Exception):  # gone already if the move went through after all
                    fs.rm_file(staged)
                raise
            else:
                return True
        with contextlib.suppress(OSError):  # left for gc (staging files of dead writers) if this fails
            fs.rm_file(staged)
        return False
