"""How wfe's stores use a WebDAV server: uploads staged under ``tmp/`` and published by MOVE."""

from __future__ import annotations

import contextlib
import io
import random
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import IO, Any, BinaryIO

from wfe import StoreError, StoreURLError
from wfe.storage import Listed, Page, SpooledStaging, Staging, StorageIO, option_flag, too_large, translate

STAGING = "tmp"  # staged uploads, moved into place (gc removes a dead writer's)
READ_CHUNK = 1024 * 1024
TIMEOUT = 60.0  # seconds without an answer before a request fails
MOVE_ATTEMPTS = 8  # a MOVE that fails because another MOVE to the same name ran at once is tried again
_KNOWN = ("user", "password", "https", "verify", "timeout")
_NOT_EXCLUSIVE = (
    "a MOVE with Overwrite: F is refused when the target exists, but WebDAV does not make the check and the move "
    "one step (wsgidav checks, then renames), so racing writers may both succeed"
)


class WebdavIO(StorageIO):
    """``webdav://[user@]host[:port]/path`` for wfe, over webdav4's client (httpx).

    A PUT may write its target in place (wsgidav does: a reader polling the
    name sees the bytes arrive), so every write is a PUT to a fresh name under
    ``tmp/`` and a MOVE into place: ``Overwrite: T`` to replace (a rename on a
    server that keeps resources as files; wsgidav deletes the old file first,
    so a reader may for a moment find no object there, never a partial one),
    ``Overwrite: F`` for an exclusive write, which the server refuses (HTTP
    412) when the target exists: no request to ask first. The server checks,
    then renames, so of two exclusive writers racing for one name both may
    succeed: no ``exclusive_publish``, and no ``conditional_create`` (a PUT
    with ``If-None-Match: *`` is refused when the target exists, but is
    written in place). A listing is a PROPFIND of ``Depth: 1`` per folder
    (no ``paged_listing``), the folders of one level asked at once.
    """

    atomic_upload = False
    shared = True
    tamperable = True
    conditional_create = False
    exclusive_publish = False
    create_only_upload = False
    paged_listing = False
    remote = True
    # For check-store's table (wfe.storage._findings): how this adapter gives what the flags above cannot say.
    whole_writes = "a staged upload, then a MOVE with Overwrite: T"
    complete_listings = "one unpaged PROPFIND per folder"
    thread_safe = True  # one HTTP client, safe from threads

    @classmethod
    def filesystem_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """Check the store options: ``user``, ``password``, ``https``, ``verify``, ``timeout``."""
        given: dict[str, Any] = {}
        for name, value in options.items():
            if name not in _KNOWN:
                raise StoreURLError(f"unknown WebDAV store option {name!r}; known: {', '.join(_KNOWN)}")
            given[name] = value
        for name in ("https", "verify"):
            if name in given:
                given[name] = _flag(name, given[name])
        if "timeout" in given:
            try:
                given["timeout"] = float(given["timeout"])
            except (TypeError, ValueError):
                given["timeout"] = 0.0
            if not given["timeout"] > 0:
                shown = options["timeout"]
                raise StoreURLError(f"WebDAV option timeout must be a positive number of seconds, got {shown!r}")
        return given

    @classmethod
    def from_location(cls, where: Any, options: Mapping[str, Any]) -> WebdavIO:
        """Open the store that ``where`` (a :class:`wfe.storage._urls.Location`) names, with checked options."""
        try:
            from webdav4.fsspec import WebdavFileSystem
        except ImportError as exc:
            raise StoreURLError(f"webdav needs the webdav extra: pip install 'wfe[webdav]' ({exc})") from None
        if where.password is not None:
            raise StoreURLError("give the WebDAV password as the password option, not in the URL")
        user = options.get("user")
        if where.user is not None and user is not None and user != where.user:
            raise StoreURLError(f"the URL names user {where.user!r} but the user option says {user!r}")
        user = user or where.user
        password = options.get("password")
        scheme = "https" if options.get("https", False) else "http"
        host = f"[{where.host}]" if ":" in where.host else where.host
        port = f":{where.port}" if where.port is not None else ""
        auth = (user, password or "") if user is not None else None
        fs = WebdavFileSystem(
            f"{scheme}://{host}{port}", auth=auth, timeout=options.get("timeout", TIMEOUT),
            verify=options.get("verify", True), retry=False,
        )  # fmt: skip
        return cls(fs, where.path.strip("/"))

    def __init__(self, fs: Any, root: str) -> None:
        super().__init__(fs, root.strip("/"))
        self._client = fs.client
        self._http = fs.client.http
        self.capability_notes = {"exclusive_publish": _NOT_EXCLUSIVE}
        self._check_server()

    @property
    def protocol(self) -> str:
        return "webdav"

    def __repr__(self) -> str:
        return f"WebdavIO({self._client.base_url}/{self.root})"

    def _url(self, path: str, folder: bool = False) -> Any:
        return self._client.join_url(path, add_trailing_slash=folder)

    def _send(self, method: str, path: str, *, folder: bool = False, **kwargs: Any) -> Any:
        """One request; an unreachable server or a refused login is one :class:`StoreError` line."""
        import httpx

        try:
            response = self._http.request(method, self._url(path, folder), **kwargs)
        except httpx.TransportError as exc:
            server = self._client.base_url
            raise StoreError(f"{method} {path!r}: WebDAV server {server}: {type(exc).__name__}: {exc}") from None
        if response.status_code == 401:
            server = self._client.base_url
            raise StoreError(f"WebDAV server {server} refused the login (HTTP 401): check user and password")
        return response

    def _check_server(self) -> None:
        """One PROPFIND of the root (Depth: 0) at opening: a bad host, port or login fails here, in one line."""
        response = self._send("PROPFIND", self.root, folder=True, headers={"Depth": "0"})
        if response.status_code not in (200, 207, 404):
            raise StoreError(
                f"open {self!r}: the server answered a PROPFIND with HTTP {response.status_code}: is it WebDAV?"
            )

    # reads
    def read_bytes(self, rel: str, limit: int | None = None) -> bytes:
        path = self.path(rel)
        headers = {"Range": f"bytes=0-{limit}"} if limit is not None else {}
        with translate("read", path):
            response = self._send("GET", path, headers=headers)
            if response.status_code == 416:  # a range of an empty object
                return b""
            _raise_for(response, path)
            data: bytes = response.content
        if limit is not None and len(data) > limit:
            raise too_large(path, limit)
        return data

    def open_read(self, rel: str) -> BinaryIO:
        path = self.path(rel)
        with translate("open", path):
            request = self._http.build_request("GET", self._url(path))
            response = self._http.send(request, stream=True)
            if response.status_code != 200:
                response.close()
                _raise_for(response, path)
        return io.BufferedReader(_Body(response, path), READ_CHUNK)

    def exists(self, rel: str) -> bool:
        path = self.path(rel)
        with translate("check", path):
            response = self._send("HEAD", path)
        if response.status_code == 404:
            return False
        _raise_for(response, path)
        return True

    def size(self, rel: str) -> int:
        path = self.path(rel)
        with translate("stat", path):
            response = self._send("HEAD", path)
            _raise_for(response, path)
        return int(response.headers.get("content-length", 0))

    def modified(self, rel: str) -> float | None:
        import email.utils

        path = self.path(rel)
        with translate("stat", path):
            response = self._send("HEAD", path)
            _raise_for(response, path)
        stamp = response.headers.get("last-modified")
        return email.utils.parsedate_to_datetime(stamp).timestamp() if stamp else None

    def list_page(self, prefix: str, start_after: str = "", limit: int = 1000) -> Page:
        """Every object under ``prefix`` (a PROPFIND per folder), of which the part asked for."""
        found = sorted(self._tree(self.path(prefix).rstrip("/")))
        after = [entry for entry in found if entry.rel > start_after]
        return Page(after[:limit], len(after) > limit)

    def walk(self, prefix: str) -> Iterator[str]:
        yield from (entry.rel for entry in self._tree(self.path(prefix).rstrip("/")))

    def _tree(self, base: str) -> list[Listed]:
        """The files under ``base``: one PROPFIND (Depth: 1) per folder, a level's folders asked at once."""
        files: list[Listed] = []
        level = [base]
        # From one of the store's own request threads, a folder at a time: asking them to wait for each other
        # could take every thread of the pool.
        nested = threading.current_thread().name.startswith("wfe-io")
        while level:
            listings = [self._list_folder(f) for f in level] if nested else self.gather(self._list_folder, level)
            level = []
            for entries in listings:
                for entry in entries:
                    name = str(entry["name"]).strip("/")
                    if entry.get("type") == "directory":
                        level.append(name)
                    else:
                        etag = str(entry.get("etag") or "").strip('"') or None
                        files.append(Listed(self._rel(name), int(entry.get("content_length") or 0), etag))
        return files

    def _list_folder(self, folder: str) -> list[dict[str, Any]]:
        from webdav4.client import ResourceNotFound

        with translate("list", folder):
            try:
                entries: list[dict[str, Any]] = self._client.ls(folder, detail=True, allow_listing_resource=False)
            except ResourceNotFound:
                return []
        return entries

    def _rel(self, path: str) -> str:
        path = path.strip("/")
        return path[len(self.root) + 1 :] if self.root and path.startswith(self.root + "/") else path

    # writes
    def stage(self) -> Staging:
        return _MovedStaging(self)

    def upload(self, local: IO[bytes], rel: str, size: int) -> None:
        """``local`` PUT under ``tmp/``, then moved over ``rel``."""
        self._publish(local, rel, size, exclusive=False)

    def _publish(self, local: IO[bytes], rel: str, size: int, *, exclusive: bool) -> bool:
        path = self.path(rel)
        staged = self.path(f"{STAGING}/{uuid.uuid4().hex}")
        with translate("write", path):
            try:
                self._put(local, staged, size)
                return self._move(staged, path, exclusive=exclusive)
            except BaseException:
                with contextlib.suppress(Exception):
                    self._send("DELETE", staged)
                raise

    def _put(self, local: IO[bytes], path: str, size: int) -> None:
        local.seek(0)
        headers = {"Content-Length": str(size)}
        response = self._send("PUT", path, content=_chunks(local), headers=headers)
        if response.status_code == 409:  # a folder on the way is missing (made by nobody yet, or removed)
            self._make_folders(_parent(path))
            local.seek(0)
            response = self._send("PUT", path, content=_chunks(local), headers=headers)
        _raise_for(response, path)

    def _move(self, staged: str, path: str, *, exclusive: bool) -> bool:
        """MOVE ``staged`` to ``path``; False if ``exclusive`` and the server found ``path`` there."""
        headers = {"Destination": str(self._url(path)), "Overwrite": "F" if exclusive else "T"}
        for attempt in range(MOVE_ATTEMPTS):
            response = self._send("MOVE", staged, headers=headers)
            status = response.status_code
            if status in (201, 204):
                return True
            if status == 412 and exclusive:
                self._send("DELETE", staged)
                return False
            if status == 409:  # the target's folder is missing: made here (a MKCOL only where a MOVE needs one)
                self._make_folders(_parent(path))
            elif status in (207, 423, 500, 502, 503) and attempt + 1 < MOVE_ATTEMPTS:
                # wsgidav fails a MOVE that races another onto one name (it deletes, then renames)
                if exclusive and self._send("HEAD", path).status_code == 200:
                    self._send("DELETE", staged)
                    return False
                time.sleep(random.uniform(0, 0.01 * 2**attempt))
            else:
                _raise_for(response, path, doing="MOVE")
        raise StoreError(f"MOVE to {path!r}: the WebDAV server failed it {MOVE_ATTEMPTS} times")

    def _make_folders(self, folder: str) -> None:
        """MKCOL ``folder`` and its missing parents: from the deepest up to one that is there, then back down."""
        missing = []
        while folder and not self._mkcol(folder):
            missing.append(folder)  # its parent is missing
            folder = _parent(folder)
        for child in reversed(missing):
            if not self._mkcol(child):
                raise StoreError(f"MKCOL {child!r}: the WebDAV server found its parent missing (HTTP 409) again")

    def _mkcol(self, folder: str) -> bool:
        """Make ``folder``: True if made or there already, False if its parent is missing (HTTP 409)."""
        response = self._send("MKCOL", folder, folder=True)
        status = response.status_code
        if status == 409:
            return False
        if status not in (201, 405):  # 405: there already
            # wsgidav fails a MKCOL that races another of the same folder: there now is fine
            there = self._send("PROPFIND", folder, folder=True, headers={"Depth": "0"})
            if there.status_code != 207:
                _raise_for(response, folder, doing="MKCOL")
        return True

    def delete(self, rel: str) -> bool:
        path = self.path(rel)
        with translate("delete", path):
            response = self._send("DELETE", path)
        if response.status_code == 404:
            return False
        _raise_for(response, path, doing="DELETE")
        return True

    def refresh(self, rel: str) -> bool:
        """WebDAV has no way to set a modification time without rewriting the object: False, no request."""
        return False


class _MovedStaging(SpooledStaging):
    """Spooled locally (memory, then a temporary file), then PUT under ``tmp/`` and moved into place."""

    _storage: WebdavIO

    def publish(self, rel: str, *, exclusive: bool) -> bool:
        self._buffer.flush()
        return self._storage._publish(self._buffer, rel, self._size, exclusive=exclusive)


class _Body(io.RawIOBase):
    """A streamed GET response's body, read as a file."""

    def __init__(self, response: Any, path: str) -> None:
        super().__init__()
        self._response = response
        self._chunks = response.iter_raw(READ_CHUNK)
        self._left = b""
        self._path = path

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if not self._left:
            with translate("read", self._path):
                self._left = next(self._chunks, b"")
        count = min(len(view), len(self._left))
        view[:count] = self._left[:count]
        self._left = self._left[count:]
        return count

    def close(self) -> None:
        if not self.closed:
            self._response.close()
        super().close()


def _chunks(local: IO[bytes]) -> Iterator[bytes]:
    while chunk := local.read(READ_CHUNK):
        yield chunk


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


def _raise_for(response: Any, path: str, doing: str = "") -> None:
    """Nothing for a success; FileNotFoundError for 404; otherwise a StoreError naming the status."""
    status = response.status_code
    if status < 300:
        return
    if status == 404:
        raise FileNotFoundError(2, "No such file or directory", path)
    what = f"{doing} {path!r}" if doing else repr(path)
    raise StoreError(f"{what}: the WebDAV server answered HTTP {status} {response.reason_phrase}".strip())


def _flag(name: str, value: Any) -> bool:
    return option_flag("WebDAV", name, value)
