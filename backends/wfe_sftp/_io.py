"""How wfe's stores use an SFTP server: staged writes published by rename, from any number of threads."""

from __future__ import annotations

import contextlib
import errno
import io
import uuid
from collections.abc import Iterator, Mapping
from typing import IO, Any, BinaryIO

from wfe import StoreError, StoreURLError
from wfe.storage import Listed, Page, SpooledStaging, Staging, StorageIO, translate

from ._fs import Reader, SFTPFileSystem, _mkdirs, _parent, walk_files
from ._sessions import CONNECT_TIMEOUT, DEFAULT_SESSIONS

STAGING = "tmp"  # staged uploads, renamed into place (gc removes a dead writer's)
_KNOWN = ("key_file", "password", "known_hosts", "timeout", "sessions")
_IN_URL = ("host", "port", "user", "username")


class SFTPIO(StorageIO):
    """``sftp://[user@]host[:port]/path`` for wfe.

    Every write goes to a fresh file under ``tmp/`` and is renamed into place,
    so a reader sees a file whole or not at all. An overwrite is OpenSSH's
    ``posix-rename@openssh.com`` (``rename(2)`` on the server: the old file
    is replaced at once). An exclusive write is the plain SFTP rename, which
    OpenSSH's server makes with ``link(2)``: refused if the target exists, so
    of racing writers exactly one wins (``exclusive_publish``). Another
    server's plain rename is not known to do that, so the flag is cleared on
    a store whose server is not OpenSSH (``capability_notes`` says so).
    A lease is created with an exclusive open (``O_EXCL``).

    A listing is one READDIR sequence per folder (no ``paged_listing``).
    Requests go through at most ``sessions`` SFTP sessions on one SSH
    connection per process (see :mod:`._sessions`), each used by one thread
    at a time; ``concurrency`` is that many.
    """

    atomic_upload = False
    shared = True
    tamperable = True
    conditional_create = False  # the refusal comes with the rename, after the upload, not with the write
    exclusive_publish = True
    create_only_upload = False
    paged_listing = False
    remote = True
    # For check-store's table (wfe.storage._findings): how this adapter gives what the flags above cannot say.
    whole_writes = "a staged upload, then posix-rename@openssh.com"
    complete_listings = "one unpaged directory listing per folder"
    thread_safe = True  # a pool of SFTP sessions, each used by one thread at a time

    fs: SFTPFileSystem

    @classmethod
    def filesystem_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """Check the store options: ``key_file``, ``password``, ``known_hosts``, ``timeout``, ``sessions``."""
        given: dict[str, Any] = {}
        for name, value in options.items():
            if name in _IN_URL:
                raise StoreURLError(f"give the {name} in the URL: sftp://[user@]host[:port]/path, not as an option")
            if name not in _KNOWN:
                raise StoreURLError(f"unknown SFTP store option {name!r}; known: {', '.join(_KNOWN)}")
            given[name] = value
        if "timeout" in given:
            given["timeout"] = _number("timeout", given["timeout"], float)
        if "sessions" in given:
            given["sessions"] = _number("sessions", given["sessions"], int)
        return given

    @classmethod
    def from_location(cls, where: Any, options: Mapping[str, Any]) -> SFTPIO:
        """Open the store that ``where`` (a :class:`wfe.storage._urls.Location`) names, with checked options."""
        try:
            import paramiko  # noqa: F401
        except ImportError as exc:
            raise StoreURLError(f"sftp needs the sftp extra: pip install 'wfe[sftp]' ({exc})") from None
        if where.password is not None:
            raise StoreURLError("give the SFTP password as the password option, not in the URL")
        path = where.path
        if path == "/":
            raise StoreURLError(f"{where}: a store at the root of the server's file system is refused; name a folder")
        # sftp://host/~/wfe is wfe in the login folder: a path the server takes as relative
        root = path[3:] if path.startswith("/~/") else "" if path in ("/~", "/~/") else path
        fs = SFTPFileSystem(
            where.host, where.port or 22, where.user,
            key_file=options.get("key_file"), password=options.get("password"),
            known_hosts=options.get("known_hosts"), timeout=options.get("timeout", CONNECT_TIMEOUT),
            sessions=options.get("sessions", DEFAULT_SESSIONS),
        )  # fmt: skip
        return cls(fs, root)

    def __init__(self, fs: SFTPFileSystem, root: str) -> None:
        super().__init__(fs, root)
        self.concurrency = fs.sessions.size
        self.capability_notes: dict[str, str] = {}
        self._folders: set[str] = set()  # folders known to exist: a write needs no stat for them
        with self._session():  # connect now: a bad host or key is one line at opening, not at the first write
            pass
        version = fs.sessions.server_version
        if "OpenSSH" not in version:
            self.exclusive_publish = False
            self.capability_notes["exclusive_publish"] = (
                f"the server ({version or 'unknown'}) is not OpenSSH, whose rename refuses an existing target"
            )

    @property
    def protocol(self) -> str:
        return "sftp"

    def __repr__(self) -> str:
        return f"SFTPIO({self.fs.endpoint}/{self.root.lstrip('/')})"

    @contextlib.contextmanager
    def _session(self) -> Iterator[Any]:
        with self.fs.sessions.session() as sftp:
            yield sftp

    # reads
    def open_read(self, rel: str) -> BinaryIO:
        path = self.path(rel)
        with translate("open", path):
            return io.BufferedReader(Reader(self.fs.sessions, path), 4 * 1024 * 1024)

    def exists(self, rel: str) -> bool:
        path = self.path(rel)
        with translate("check", path), self._session() as sftp:
            try:
                sftp.stat(path)
            except FileNotFoundError:
                return False
            return True

    def size(self, rel: str) -> int:
        path = self.path(rel)
        with translate("stat", path), self._session() as sftp:
            return int(sftp.stat(path).st_size or 0)

    def modified(self, rel: str) -> float | None:
        path = self.path(rel)
        with translate("stat", path), self._session() as sftp:
            mtime = sftp.stat(path).st_mtime
        return None if mtime is None else float(mtime)

    def list_page(self, prefix: str, start_after: str = "", limit: int = 1000) -> Page:
        """One READDIR sequence per folder under ``prefix``, all of them; the part asked for."""
        base = self.path(prefix).rstrip("/")
        with translate("list", base), self._session() as sftp:
            found = sorted(Listed(self._rel(path), int(attrs.st_size or 0)) for path, attrs in walk_files(sftp, base))
        after = [entry for entry in found if entry.rel > start_after]
        return Page(after[:limit], len(after) > limit)

    def walk(self, prefix: str) -> Iterator[str]:
        base = self.path(prefix).rstrip("/")
        with translate("list", base), self._session() as sftp:
            paths = [path for path, _ in walk_files(sftp, base)]
        yield from (self._rel(path) for path in paths)

    def _rel(self, path: str) -> str:
        return path[len(self.root) + 1 :] if self.root else path

    # writes
    def stage(self) -> Staging:
        return _RenamedStaging(self)

    def upload(self, local: IO[bytes], rel: str, size: int) -> None:
        """``local`` to a fresh file under ``tmp/``, renamed over ``rel`` at once."""
        self._publish(local, rel, exclusive=False)

    def _publish(self, local: IO[bytes], rel: str, *, exclusive: bool) -> bool:
        try:
            return self._publish_once(local, rel, exclusive=exclusive)
        except FileNotFoundError:  # a folder this store made was removed behind its back: make it again
            self._folders.clear()
            return self._publish_once(local, rel, exclusive=exclusive)

    def _publish_once(self, local: IO[bytes], rel: str, *, exclusive: bool) -> bool:
        path = self.path(rel)
        staged = self.path(f"{STAGING}/{uuid.uuid4().hex}")
        with translate("write", path), self._session() as sftp:
            moved = False
            try:
                self._send(sftp, local, staged)
                self._folder(sftp, _parent(path))
                try:
                    if exclusive:
                        sftp.rename(staged, path)  # OpenSSH: link(2), refused if path exists
                    else:
                        sftp.posix_rename(staged, path)
                except OSError as exc:
                    if exclusive and _exists(sftp, path):
                        return False
                    raise _write_error(exc, path) from None
                moved = True
                return True
            finally:
                if not moved:
                    with contextlib.suppress(Exception):
                        sftp.remove(staged)

    def _send(self, sftp: Any, local: IO[bytes], staged: str) -> None:
        local.seek(0)
        self._folder(sftp, _parent(staged))
        with sftp.open(staged, "w") as handle:
            handle.set_pipelined(True)
            while chunk := local.read(1024 * 1024):
                handle.write(chunk)

    def _folder(self, sftp: Any, folder: str) -> None:
        """Make ``folder`` unless this store made or saw it already (a folder deleted since is made again)."""
        if folder not in self._folders:
            _mkdirs(sftp, folder)
            self._folders.add(folder)

    def create_small(self, rel: str, data: bytes) -> bool:
        """One exclusive open (``O_EXCL`` on the server) and its write: a reader may see it half-written."""
        path = self.path(rel)
        with translate("create", path), self._session() as sftp:
            try:
                return self._create(sftp, path, data)
            except FileNotFoundError:  # its folder was removed behind this store's back: make it again
                self._folders.clear()
                return self._create(sftp, path, data)

    def _create(self, sftp: Any, path: str, data: bytes) -> bool:
        self._folder(sftp, _parent(path))
        try:
            with sftp.open(path, "wx") as handle:
                handle.write(data)
        except OSError as exc:
            if _exists(sftp, path):
                return False
            raise _write_error(exc, path) from None
        return True

    def delete(self, rel: str) -> bool:
        path = self.path(rel)
        with translate("delete", path), self._session() as sftp:
            try:
                sftp.remove(path)
            except FileNotFoundError:
                return False
        return True

    def refresh(self, rel: str) -> bool:
        path = self.path(rel)
        try:
            with translate("refresh", path), self._session() as sftp:
                sftp.utime(path, None)
        except (OSError, StoreError):
            return False
        return True


class _RenamedStaging(SpooledStaging):
    """Spooled locally (memory, then a temporary file), then uploaded under ``tmp/`` and renamed into place."""

    _storage: SFTPIO

    def publish(self, rel: str, *, exclusive: bool) -> bool:
        self._buffer.flush()
        return self._storage._publish(self._buffer, rel, exclusive=exclusive)


def _exists(sftp: Any, path: str) -> bool:
    try:
        sftp.stat(path)
    except OSError:
        return False
    return True


def _write_error(exc: OSError, path: str) -> OSError:
    """What a failed rename or create becomes: not-found (its folder went missing: made again) stays itself."""
    if exc.errno in (errno.ENOENT, errno.EACCES):
        return exc
    text = str(exc.strerror or exc)
    if "unsupported" in text.lower():
        return StoreError(f"the SFTP server cannot replace {path!r} at once (it lacks posix-rename@openssh.com)")
    return OSError(errno.EIO, text, path)


def _number(name: str, value: Any, kind: type[float] | type[int]) -> Any:
    try:
        number = kind(value)
    except (TypeError, ValueError):
        number = 0
    if not number > 0:
        raise StoreURLError(f"SFTP option {name} must be a positive number, got {value!r}")
    return number
