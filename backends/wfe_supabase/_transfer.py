"""The byte-moving parts: the storage client, ranged downloads, upload bodies, the file object."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from fsspec.spec import AbstractBufferedFile

if TYPE_CHECKING:
    from ._fs import SupabaseFileSystem

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0  # seconds to open a connection
READ_TIMEOUT = 30.0  # seconds without a byte received (or, uploading, taken by the server)
OPERATION_TIMEOUT = 60.0  # seconds: the most any one timeout may be, and the wait for a free connection


@dataclass(frozen=True)
class Bounds:
    """How long a request may wait: to connect, for each byte, and at most in all for any one wait."""

    connect: float = CONNECT_TIMEOUT
    read: float = READ_TIMEOUT
    operation: float = OPERATION_TIMEOUT

    @classmethod
    def parse(cls, connect: Any, read: Any, operation: Any) -> Bounds:
        """From option values (strings too); each is at most ``operation``. ValueError if not seconds."""
        values = []
        for name, value in (("connect_timeout", connect), ("read_timeout", read), ("timeout", operation)):
            try:
                seconds = float(value)
            except (TypeError, ValueError):
                seconds = float("nan")
            if not 0 < seconds < float("inf"):
                raise ValueError(f"Supabase option {name} must be a positive number of seconds, got {value!r}")
            values.append(seconds)
        connect_s, read_s, operation_s = values
        return cls(min(connect_s, operation_s), min(read_s, operation_s), operation_s)

    def __str__(self) -> str:
        return (
            f"connect_timeout {_shown(self.connect)} s, read_timeout {_shown(self.read)} s, "
            f"timeout {_shown(self.operation)} s, 1 attempt: a request that times out is not sent again"
        )


def _shown(seconds: float) -> str:
    return f"{seconds:.0f}" if seconds >= 10 else f"{round(seconds, 1):g}"


def new_storage_client(base_url: str, key: str, bounds: Bounds) -> Any:
    """The storage client ``supabase.create_client(url, key).storage`` builds, made directly.

    ``supabase.Client.storage`` is a ``storage3.SyncStorageClient`` at
    ``{url}/storage/v1/`` (``base_url`` here: the Storage API's base, which a
    self-hosted Storage server without the gateway serves at its root) with
    these two headers; importing storage3 alone skips the auth, realtime and
    PostgREST clients (about 0.7 s per process).
    """
    import httpx
    from storage3 import SyncStorageClient

    # HTTP/1.1 on purpose: h2's header encoder logs header values (the key) at DEBUG level.
    # storage3 sends every request through this client and retries nothing: each request is one
    # attempt, bounded by connect_timeout and by read_timeout without a byte either way, except that
    # a connection lost under a request before its answer is tried once more (see _OnceMore).
    timeout = httpx.Timeout(connect=bounds.connect, read=bounds.read, write=bounds.read, pool=bounds.operation)
    http = httpx.Client(http2=False, timeout=timeout, follow_redirects=True, transport=_once_more())
    headers = {"apiKey": key, "Authorization": f"Bearer {key}"}
    return SyncStorageClient(f"{base_url.rstrip('/')}/", headers, http_client=http)


def _once_more() -> Any:
    """An HTTP transport that sends a request once more when its connection broke before the answer began.

    A pooled keep-alive connection can die under a request: the server (or
    something between) closed it while it sat idle, or, with many threads
    sharing the pool, it was closed as expired just as a request took it
    (``ReadError: [Errno 9] Bad file descriptor``). The request is sent again
    on another connection, once, if its body can be sent again (bytes or a
    multipart form; not a one-shot stream). Every request wfe sends may be
    repeated: reads and listings change nothing, uploads go to a key of their
    own or rewrite the same bytes, and a create-only upload or move repeated
    after the first went through finds the key taken, which is what it would
    find had another writer won. A timeout is never sent again.
    """
    import httpx

    class OnceMore(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            try:
                return super().handle_request(request)
            except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError) as exc:
                if not _repeatable(request):
                    raise
                log.debug("%s %s: connection lost (%s); sending it once more", request.method, request.url.path, exc)
                return super().handle_request(request)

    # Keep as many idle connections as wfe has requests in flight, so a busy pool does not churn.
    return OnceMore(limits=httpx.Limits(max_connections=100, max_keepalive_connections=64))


def _repeatable(request: Any) -> bool:
    import httpx

    return isinstance(request.stream, httpx.ByteStream) or type(request.stream).__name__ == "MultipartStream"


def stream_range(proxy: Any, bucket: str, key: str, start: int, end: int | None) -> bytearray:
    """One ranged GET of ``bucket/key``, streamed into one preallocated buffer.

    storage3's ``download()`` takes no headers and buffers the whole body
    twice; this uses the same client's HTTP connection, base URL and
    headers (apiKey, Authorization) on the same endpoint. Errors are raised
    as storage3's ``StorageApiError``, for the caller to translate.
    """
    url = str(proxy._base_url.joinpath("object", bucket, *key.split("/")))
    headers = dict(proxy._headers)
    headers["Range"] = f"bytes={start}-" if end is None else f"bytes={start}-{end - 1}"
    with proxy._client.stream("GET", url, headers=headers) as response:
        if response.status_code >= 400:
            response.read()
            raise _api_error(response)
        length = response.headers.get("Content-Length")
        buffer = bytearray(int(length)) if length is not None else bytearray()
        filled = 0
        for chunk in response.iter_bytes():
            if filled + len(chunk) <= len(buffer):
                buffer[filled : filled + len(chunk)] = chunk
            else:
                buffer[filled:] = chunk
            filled += len(chunk)
        del buffer[filled:]
        if response.status_code == 200 and (start or end is not None):
            return buffer[start:end]  # the server ignored Range and sent the whole object
    return buffer


# Past this many bytes an upload asks the server to close the connection after answering. The server
# refuses an upload (an existing key without upsert, a row-level-security denial, a missing bucket) before
# it reads the body, and answers with keep-alive: from about 150 KB of unread body on, the next request on
# that connection then never gets an answer. Closed, it costs one new connection per large upload.
KEEPALIVE_UPLOAD_LIMIT = 64 * 1024


@contextlib.contextmanager
def upload_body(source: bytes | str | IO[bytes]) -> Iterator[tuple[Any, int]]:
    """What storage3's ``upload`` can send (bytes, or a fresh handle it streams from disk) and its size."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        yield data, len(data)
        return
    name = source if isinstance(source, str) else getattr(source, "name", None)
    if isinstance(name, str) and os.path.isfile(name):
        if not isinstance(source, str) and hasattr(source, "flush"):
            source.flush()
        with open(name, "rb") as handle:  # a BufferedReader: httpx sends it in chunks
            yield handle, os.fstat(handle.fileno()).st_size
        return
    assert not isinstance(source, str)
    source.seek(0)
    data = source.read()
    yield data, len(data)


def _api_error(response: Any) -> Exception:
    """The StorageApiError storage3 would raise for this error response (translated by ``_errors``)."""
    import httpx
    from storage3.exceptions import StorageApiError

    try:
        body = response.json()
        error = StorageApiError(body["message"], body["error"], body["statusCode"])
    except (KeyError, TypeError, ValueError):
        message = f"Unable to parse error message: {response.text}"
        error = StorageApiError(message, "InternalError", response.status_code)
    error.__cause__ = httpx.HTTPStatusError("storage error", request=response.request, response=response)
    return error


class SupabaseFile(AbstractBufferedFile):  # type: ignore[misc]  # fsspec is untyped
    """Reads fetch one block per ranged request; writes spool to a local file and upload on close.

    ``wb`` replaces an existing object; ``xb`` refuses one (FileExistsError on close).
    """

    fs: SupabaseFileSystem

    def __init__(self, fs: SupabaseFileSystem, path: str, mode: str = "rb", *args: Any, **kwargs: Any) -> None:
        if mode == "ab":
            raise NotImplementedError("Supabase Storage objects cannot be appended to")
        super().__init__(fs, path, mode, *args, **kwargs)
        self._spool: IO[bytes] | None = None

    def _fetch_range(self, start: int, end: int) -> bytearray:
        return self.fs._read_range(self.path, start, end)  # bytes-like, not copied again

    def _upload_chunk(self, final: bool = False) -> bool:
        data = self.buffer.getvalue()
        if final and self._spool is None:
            self.fs.upload(self.path, data, overwrite=self.mode != "xb")
            return True
        if self._spool is None:
            self._spool = tempfile.NamedTemporaryFile(prefix="wfe-supabase-", delete=False)  # noqa: SIM115
        self._spool.write(data)
        if final:
            self._spool.close()
            try:
                self.fs.upload(self.path, self._spool.name, overwrite=self.mode != "xb")
            finally:
                self.discard()
        return True

    def discard(self) -> None:
        if self._spool is not None:
            self._spool.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._spool.name)
            self._spool = None

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self.mode != "rb":
                self.discard()
