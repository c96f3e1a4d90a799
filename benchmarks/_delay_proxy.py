"""A loopback HTTP/1.1 proxy that adds a fixed delay to every request and counts requests.

It stands in for the distance to a remote object store: put it between a
client and a server on 127.0.0.1 and every request costs one round trip of
``delay`` seconds more, as it would against a server far away::

    with delay_proxy("http://127.0.0.1:9000", 0.020) as proxy:
        client = make_client(endpoint=proxy.url)
        ...
        proxy.counts()  # {"GET": 12, "HEAD": 40, "PUT": 9}

How it works: each client connection gets a thread and its own upstream
connection, opened at its first request and kept for as long as both ends keep
it (keep-alive on either side is mirrored: when the server closes an idle
connection, the proxy closes the client's). A request is read up to the end
of its head, held for ``delay`` seconds, then forwarded; bodies go through as
they come, in pieces of at most 64 KiB (chunked or with a Content-Length, either
way, never held whole), and so do answers. Interim answers (``100 Continue``)
are relayed, so a client that sends ``Expect: 100-continue`` waits for the
server's, not for its own timeout; the delay is added once per request, not
again for the interim answer. Protocol upgrades (WebSocket, HTTP/2 cleartext) and
``CONNECT`` are not supported.

Standard library only: sockets and threads.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from urllib.parse import urlsplit

__all__ = ["Proxy", "delay_proxy"]

PIECE = 64 * 1024  # bytes read from a socket at once, and so the most a body is held in memory per connection
HEAD_LIMIT = 256 * 1024  # longest request or response head accepted
BAD_GATEWAY = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
UPSTREAM_TIMEOUT = 600.0  # seconds without a byte from the server before the connection is given up


class _Closed(Exception):
    """The peer closed its connection (or sent something this proxy cannot frame)."""


class _Stream:
    """A socket with a read buffer the proxy can see into (to tell buffered bytes from an idle peer)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def _fill(self) -> bool:
        data = self.sock.recv(PIECE)
        if not data:
            return False
        self.buffer += data
        return True

    def read_head(self) -> bytes | None:
        """Bytes up to and including the blank line that ends a head; None if the peer closed first."""
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end >= 0:
                end += 4
                break
            end = self.buffer.find(b"\n\n")  # bare LF line ends: tolerated, as most servers do
            if end >= 0:
                end += 2
                break
            if len(self.buffer) > HEAD_LIMIT:
                raise _Closed("head too long")
            if not self._fill():
                if self.buffer.strip():
                    raise _Closed("connection closed inside a head")
                return None
        head = bytes(self.buffer[:end])
        del self.buffer[:end]
        return head

    def read_line(self) -> bytes:
        """One line, with its line end (a chunk-size line or a trailer)."""
        while (end := self.buffer.find(b"\n")) < 0:
            if len(self.buffer) > HEAD_LIMIT:
                raise _Closed("line too long")
            if not self._fill():
                raise _Closed("connection closed inside a chunked body")
        line = bytes(self.buffer[: end + 1])
        del self.buffer[: end + 1]
        return line

    def read_some(self, limit: int) -> bytes:
        """Between 1 and ``limit`` bytes: what is buffered, else one read from the socket."""
        if not self.buffer and not self._fill():
            raise _Closed("connection closed inside a body")
        piece = bytes(self.buffer[:limit])
        del self.buffer[:limit]
        return piece

    def read_to_close(self) -> Iterator[bytes]:
        """Everything until the peer closes (a response body without a length)."""
        if self.buffer:
            yield bytes(self.buffer)
            self.buffer.clear()
        while data := self.sock.recv(PIECE):
            yield data


class _Head:
    """A parsed request or response head; ``raw`` is forwarded as it came."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        lines = raw.decode("latin-1").split("\n")
        self.start = lines[0].strip().split(" ", 2)
        self.headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if colon:
                key = name.strip().lower()
                value = value.strip()
                # repeated headers that matter here (Connection, Transfer-Encoding) are lists: join them
                self.headers[key] = f"{self.headers[key]}, {value}" if key in self.headers else value

    def with_target(self, target: str) -> _Head:
        """The same request head for another request target (path and query)."""
        rest = self.raw[self.raw.index(b"\n") + 1 :]
        return _Head(f"{self.start[0]} {target} {self.start[2]}\r\n".encode("latin-1") + rest)

    def tokens(self, name: str) -> set[str]:
        return {token.strip().lower() for token in self.headers.get(name, "").split(",") if token.strip()}

    @property
    def chunked(self) -> bool:
        return "chunked" in self.tokens("transfer-encoding")

    @property
    def length(self) -> int | None:
        value = self.headers.get("content-length")
        if value is None:
            return None
        try:
            return int(value.split(",")[0])
        except ValueError:
            raise _Closed("bad Content-Length") from None

    def keeps_alive(self, version: str) -> bool:
        """Whether this side keeps the connection open after this message."""
        connection = self.tokens("connection")
        if version.upper() == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection


class Proxy:
    """The running proxy: ``url`` to point a client at, ``delay`` (seconds, may be changed), counts.

    Counts are kept per (method, path without query) for every request read
    from a client; :meth:`counts` sums them by method.

    ``strip_prefix`` (e.g. ``/storage/v1``) is removed from the start of each
    request's path before it is forwarded, as Supabase's API gateway does in
    front of its Storage server; counts keep the path as the client sent it.
    """

    def __init__(self, upstream_url: str, delay_s: float = 0.0, *, strip_prefix: str = "") -> None:
        parts = urlsplit(upstream_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be http://HOST:PORT, got {upstream_url!r}")
        self.upstream = (parts.hostname, parts.port or 80)
        self.delay = float(delay_s)
        self.strip_prefix = strip_prefix.rstrip("/")
        self._counts: Counter[tuple[str, str]] = Counter()
        self._targets: Counter[tuple[str, str, bool]] = Counter()  # (method, path and query, conditional PUT)
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # counting

    def reset(self) -> None:
        """Forget every request counted so far."""
        with self._lock:
            self._counts.clear()
            self._targets.clear()

    def counts(self, prefix: str = "") -> dict[str, int]:
        """Requests by method since the last :meth:`reset`, of those whose path starts with ``prefix``."""
        totals: Counter[str] = Counter()
        with self._lock:
            for (method, path), number in self._counts.items():
                if path.startswith(prefix):
                    totals[method] += number
        return dict(totals)

    def total(self, prefix: str = "") -> int:
        """How many requests since the last :meth:`reset` (whose path starts with ``prefix``)."""
        return sum(self.counts(prefix).values())

    def paths(self) -> dict[tuple[str, str], int]:
        """Requests by (method, path without query) since the last :meth:`reset`."""
        with self._lock:
            return dict(self._counts)

    def targets(self) -> dict[tuple[str, str, bool], int]:
        """Requests by (method, path with query, whether a PUT with If-None-Match or If-Match) since :meth:`reset`."""
        with self._lock:
            return dict(self._targets)

    def _count(self, method: str, target: str, conditional: bool = False) -> None:
        path = target.split("?", 1)[0]
        with self._lock:
            self._counts[(method, path)] += 1
            self._targets[(method, target, conditional)] += 1

    # running

    def start(self) -> Proxy:
        """Listen on a free loopback port and serve in background threads."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(1024)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._stopping.clear()
        self._thread = threading.Thread(target=self._accept, name=f"delay-proxy-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and close every open connection."""
        self._stopping.set()
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            connections, self._open = self._open, set()
        for connection in connections:
            _close(connection)

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by stop()
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._open.add(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _track(self, sock: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._open.add(sock)
            else:
                self._open.discard(sock)

    def _drop(self, sock: socket.socket) -> None:
        _close(sock)
        self._track(sock, False)

    def _serve(self, client_sock: socket.socket) -> None:
        """One client connection, request after request, until either side closes it."""
        client = _Stream(client_sock)
        upstream: _Stream | None = None
        try:
            while True:
                if upstream is not None and not client.buffer and not _client_first(client_sock, upstream.sock):
                    return  # the server closed the idle connection: so does the client's, as the server's would
                raw = client.read_head()
                if raw is None:
                    return
                request = _Head(raw)
                if len(request.start) < 3:
                    raise _Closed("bad request line")
                method, target, version = request.start
                self._count(method, target, method == "PUT" and bool(
                    {"if-none-match", "if-match"} & request.headers.keys()))
                if self.strip_prefix and (target + "/").startswith(self.strip_prefix + "/"):
                    target = target[len(self.strip_prefix) :] or "/"
                    request = request.with_target(target)
                if self.delay > 0:
                    time.sleep(self.delay)
                if upstream is not None and not upstream.buffer and _readable(upstream.sock):
                    self._drop(upstream.sock)  # the server closed it as the request came: use a new one
                    upstream = None
                if upstream is None:
                    try:
                        upstream_sock = socket.create_connection(self.upstream, timeout=UPSTREAM_TIMEOUT)
                    except OSError:
                        client_sock.sendall(BAD_GATEWAY)
                        return
                    upstream_sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    self._track(upstream_sock, True)
                    upstream = _Stream(upstream_sock)
                if not self._exchange(client, upstream, request, method, version):
                    return
        except (OSError, _Closed):
            return
        finally:
            _close(client_sock)
            self._track(client_sock, False)
            if upstream is not None:
                self._drop(upstream.sock)

    def _exchange(self, client: _Stream, upstream: _Stream, request: _Head, method: str, version: str) -> bool:
        """Forward one request and its answer; whether both connections stay open for the next."""
        upstream.sock.sendall(request.raw)
        has_body = request.chunked or bool(request.length)
        waits = has_body and "100-continue" in request.tokens("expect")
        body_sent = False
        if has_body and not waits:
            _copy_body(client, upstream.sock, request)
            body_sent = True
        while True:
            raw = upstream.read_head()
            if raw is None:
                raise _Closed("the server closed the connection before answering")
            response = _Head(raw)
            status = int(response.start[1]) if len(response.start) > 1 and response.start[1].isdigit() else 0
            if 100 <= status < 200 and status != 101:
                client.sock.sendall(raw)  # interim: relayed, and the final answer follows
                if status == 100 and not body_sent:
                    _copy_body(client, upstream.sock, request)
                    body_sent = True
                continue
            break
        client.sock.sendall(raw)
        until_close = False
        if method == "HEAD" or status in (204, 304) or status == 101:
            pass
        elif response.chunked:
            _copy_chunked(upstream, client.sock)
        elif (length := response.length) is not None:
            _copy_exact(upstream, client.sock, length)
        else:
            for piece in upstream.read_to_close():
                client.sock.sendall(piece)
            until_close = True
        return (
            body_sent == has_body  # a final answer before the body: the client may or may not send it now
            and not until_close
            and status != 101
            and request.keeps_alive(version)
            and response.keeps_alive(response.start[0])
        )


def _client_first(client: socket.socket, upstream: socket.socket) -> bool:
    """Wait for the next request; False if the server's side closes (or speaks) first."""
    poller = select.poll()  # not select(): descriptors past 1024 with many connections open
    poller.register(client, select.POLLIN)
    poller.register(upstream, select.POLLIN)
    ready = {fd for fd, _ in poller.poll()}
    # an idle server connection that becomes readable is closing, or says why (408): the client's closes too
    return client.fileno() in ready


def _readable(sock: socket.socket) -> bool:
    """Whether ``sock`` has something to read (or its peer closed it) right now."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def _copy_body(source: _Stream, target: socket.socket, head: _Head) -> None:
    if head.chunked:
        _copy_chunked(source, target)
    else:
        _copy_exact(source, target, head.length or 0)


def _copy_exact(source: _Stream, target: socket.socket, length: int) -> None:
    while length > 0:
        piece = source.read_some(min(length, PIECE))
        target.sendall(piece)
        length -= len(piece)


def _copy_chunked(source: _Stream, target: socket.socket) -> None:
    """Relay a chunked body as it is framed, chunk-size lines and trailers included."""
    while True:
        line = source.read_line()
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise _Closed("bad chunk size") from None
        if size == 0:
            pending = [line]
            while True:  # trailers, then the blank line that ends the body
                trailer = source.read_line()
                pending.append(trailer)
                if trailer in (b"\r\n", b"\n"):
                    break
            target.sendall(b"".join(pending))
            return
        target.sendall(line)
        _copy_exact(source, target, size + 2)  # the chunk and its CRLF


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


@contextlib.contextmanager
def delay_proxy(upstream_url: str, delay_s: float, *, strip_prefix: str = "") -> Iterator[Proxy]:
    """A running :class:`Proxy` in front of ``upstream_url`` (``http://127.0.0.1:PORT``), stopped on exit."""
    proxy = Proxy(upstream_url, delay_s, strip_prefix=strip_prefix)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
