"""An fsspec filesystem over SFTP that is safe from threads: every call takes a session of its own.

fsspec's own ``sftp`` filesystem shares one paramiko client between all
threads, which hangs under concurrent use; this one borrows a session from
:class:`~wfe_sftp._sessions.Sessions` for each call. It is what a store's
``io.fs`` is on ``sftp://`` (the conformance suite reads and writes behind the
store's back through it) and what :class:`~wfe_sftp.SFTPIO` reads through.

Paths are the server's: absolute (``/srv/wfe/...``) or relative to the login
folder. Not registered with fsspec: ``sftp`` there stays fsspec's own.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import io
import stat
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from fsspec.spec import AbstractFileSystem

from ._sessions import DEFAULT_SESSIONS, Endpoint, Sessions

READ_CHUNK = 4 * 1024 * 1024  # bytes asked for at once when streaming a file (pipelined, 32 KiB a request)


class SFTPFileSystem(AbstractFileSystem):  # type: ignore[misc]
    """Files on one SFTP server; instances with the same arguments are one (fsspec's instance cache)."""

    protocol = ("wfe-sftp",)
    root_marker = "/"

    def __init__(
        self, host: str, port: int = 22, user: str | None = None, key_file: str | None = None,
        password: str | None = None, known_hosts: str | None = None, timeout: float = 10.0,
        sessions: int = DEFAULT_SESSIONS, **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.endpoint = Endpoint(host, port, user, key_file, password, known_hosts, timeout)
        self.sessions = Sessions(self.endpoint, sessions)

    def __repr__(self) -> str:
        return f"SFTPFileSystem({self.endpoint})"

    @classmethod
    def _strip_protocol(cls, path: Any) -> str:
        text = str(path)
        if "://" in text:
            text = urlsplit(text).path
        stripped = text.rstrip("/")
        return stripped or ("/" if text.startswith("/") else "")

    # reads
    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path)
        with self.sessions.session() as sftp:
            try:
                entries = sftp.listdir_attr(path or ".")
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    try:
                        attrs = sftp.stat(path)
                    except OSError:
                        raise exc from None
                    if not stat.S_ISDIR(attrs.st_mode or 0):
                        found = _info(path, attrs)
                        return [found] if detail else [found["name"]]
                raise
        infos = [_info(_join(path, entry.filename), entry) for entry in entries]
        return infos if detail else [info["name"] for info in infos]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        with self.sessions.session() as sftp:
            return _info(path, sftp.stat(path))

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        path = self._strip_protocol(path)
        with self.sessions.session() as sftp, sftp.open(path, "rb") as handle:
            size = handle.stat().st_size or 0
            first = 0 if start is None else (start if start >= 0 else max(0, size + start))
            last = size if end is None else (min(end, size) if end >= 0 else max(0, size + end))
            if last <= first:
                return b""
            handle.seek(first)
            return _read_pipelined(handle, first, last - first)

    def modified(self, path: str) -> datetime.datetime:
        mtime = self.info(path)["mtime"]
        return datetime.datetime.fromtimestamp(mtime, tz=datetime.timezone.utc)

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        path = self._strip_protocol(path)
        if "r" in mode:
            return io.BufferedReader(Reader(self.sessions, path), READ_CHUNK)
        return _Writer(self, path, exclusive="x" in mode)

    # writes
    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        path = self._strip_protocol(path)
        with self.sessions.session() as sftp:
            _mkdirs(sftp, _parent(path))
            with sftp.open(path, "wx" if mode == "create" else "w") as handle:
                handle.set_pipelined(True)
                handle.write(value)

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        path = self._strip_protocol(path)
        with self.sessions.session() as sftp:
            if create_parents:
                _mkdirs(sftp, path)
            else:
                sftp.mkdir(path)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        path = self._strip_protocol(path)
        with self.sessions.session() as sftp:
            if not exist_ok and _is(sftp, path):
                raise FileExistsError(errno.EEXIST, "File exists", path)
            _mkdirs(sftp, path)

    def mv(self, path1: str, path2: str, recursive: bool = False, maxdepth: int | None = None, **kwargs: Any) -> None:
        """Rename, replacing ``path2`` at once (``posix-rename@openssh.com``)."""
        with self.sessions.session() as sftp:
            sftp.posix_rename(self._strip_protocol(path1), self._strip_protocol(path2))

    def rm_file(self, path: str) -> None:
        with self.sessions.session() as sftp:
            sftp.remove(self._strip_protocol(path))

    def rmdir(self, path: str) -> None:
        with self.sessions.session() as sftp:
            sftp.rmdir(self._strip_protocol(path))

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        for one in [path] if isinstance(path, str) else list(path):
            one = self._strip_protocol(one)
            with self.sessions.session() as sftp:
                _remove(sftp, one, recursive)

    def touch(self, path: str, truncate: bool = True, **kwargs: Any) -> None:
        path = self._strip_protocol(path)
        with self.sessions.session() as sftp:
            if truncate or not _is(sftp, path):
                sftp.open(path, "w").close()
            else:
                sftp.utime(path, None)


class Reader(io.RawIOBase):
    """A file on the server read front to back, in pipelined chunks, through one session taken per read."""

    def __init__(self, sessions: Sessions, path: str) -> None:
        super().__init__()
        self._sessions = sessions
        self._path = path
        with sessions.session() as sftp:
            self._sftp = sftp
            self._handle = sftp.open(path, "rb")
            self._size = int(self._handle.stat().st_size or 0)
        self._position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._size - self._position)
        if want <= 0:
            return 0
        with self._sessions.session(self._sftp):
            self._handle.seek(self._position)
            data = _read_pipelined(self._handle, self._position, want)
        view[: len(data)] = data
        self._position += len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(Exception), self._sessions.session(self._sftp):
                self._handle.close()
        super().close()


class _Writer(io.RawIOBase):
    """A file written on the server as it is given; one session held until it is closed."""

    def __init__(self, fs: SFTPFileSystem, path: str, *, exclusive: bool) -> None:
        super().__init__()
        self._held = contextlib.ExitStack()
        sftp = self._held.enter_context(fs.sessions.session())
        try:
            _mkdirs(sftp, _parent(path))
            self._handle = self._held.enter_context(sftp.open(path, "wx" if exclusive else "w"))
            self._handle.set_pipelined(True)
        except BaseException:
            self._held.close()
            raise

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._handle.write(bytes(data))
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._held.close()
        super().close()


def _read_pipelined(handle: Any, offset: int, size: int) -> bytes:
    """``size`` bytes from ``offset``: every 32 KiB request sent before the first answer is awaited."""
    step = handle.MAX_REQUEST_SIZE
    chunks = [(start, min(step, offset + size - start)) for start in range(offset, offset + size, step)]
    return b"".join(handle.readv(chunks))


def _info(path: str, attrs: Any) -> dict[str, Any]:
    mode = attrs.st_mode or 0
    return {
        "name": path,
        "size": int(attrs.st_size or 0),
        "type": "directory" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other",
        "mtime": attrs.st_mtime,
        "mode": mode,
    }


def _join(folder: str, name: str) -> str:
    return f"{folder.rstrip('/')}/{name}" if folder else name


def _parent(path: str) -> str:
    return path.rpartition("/")[0] or ("/" if path.startswith("/") else "")


def _is(sftp: Any, path: str) -> bool:
    try:
        sftp.stat(path)
    except FileNotFoundError:
        return False
    return True


def _mkdirs(sftp: Any, path: str) -> None:
    """Make ``path`` and its missing parents; a folder made by another writer meanwhile is fine."""
    if path in ("", "/", "."):
        return
    try:
        attrs = sftp.stat(path)
    except FileNotFoundError:
        _mkdirs(sftp, _parent(path))
        try:
            sftp.mkdir(path)
        except OSError:
            attrs = sftp.stat(path)  # made meanwhile by another writer, or the error it really is
            if not stat.S_ISDIR(attrs.st_mode or 0):
                raise NotADirectoryError(errno.ENOTDIR, "Not a directory", path) from None
        return
    if not stat.S_ISDIR(attrs.st_mode or 0):
        raise NotADirectoryError(errno.ENOTDIR, "Not a directory", path)


def _remove(sftp: Any, path: str, recursive: bool) -> None:
    attrs = sftp.lstat(path)
    if not stat.S_ISDIR(attrs.st_mode or 0):
        sftp.remove(path)
        return
    if not recursive:
        raise IsADirectoryError(errno.EISDIR, "Is a directory", path)
    for entry in sftp.listdir_attr(path):
        _remove(sftp, _join(path, entry.filename), recursive)
    sftp.rmdir(path)


def walk_files(sftp: Any, folder: str) -> Iterator[tuple[str, Any]]:
    """``(path, attributes)`` of every regular file under ``folder``: one listing per folder."""
    try:
        entries = sftp.listdir_attr(folder or ".")
    except FileNotFoundError:
        return
    for entry in entries:
        path = _join(folder, entry.filename)
        mode = entry.st_mode or 0
        if stat.S_ISDIR(mode):
            yield from walk_files(sftp, path)
        elif stat.S_ISREG(mode):
            yield path, entry
