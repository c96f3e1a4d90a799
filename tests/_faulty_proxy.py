"""A loopback HTTP proxy that injects faults between an S3 client and the S3 server.

Faults follow a fixed schedule (every ``every``-th request, kinds in turn),
so a run is reproducible, and each kind has a budget, so the faults stop:

- ``http500`` / ``http503``: an S3 XML error answered instead of forwarding
  the request (the server never sees it);
- ``slow``: the request is held for ``delay`` seconds, then forwarded;
- ``reset``: the request is read and the connection closed with a TCP RST,
  no answer;
- ``restart``: once, after ``restart_after`` requests, the proxy stops
  listening and drops every connection for ``downtime`` seconds, then listens
  again on the same port (the server's state survives, as S3's does).
- ``hang``: from the ``hang_after``-th request on, a request is read and never
  answered (or, with ``hang_body``, answered with its headers and half its
  body, then nothing more), until the proxy stops: a server that went silent.

:meth:`FaultyProxy.stop` makes the endpoint refuse connections, as a dead
server does; :meth:`FaultyProxy.start` revives it on the same port.

Two endpoints that are not the server at all: :func:`silent_server` accepts
connections and never answers; :func:`plain_http_server` is a web server
that is not an object store (404 pages, or 501 to everything).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["KINDS", "FaultyProxy", "plain_http_server", "silent_server"]

KINDS = ("http500", "http503", "slow", "reset")
_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "expect", "upgrade", "te"}
_ERRORS = {
    "http500": (500, "InternalError", "We encountered an internal error. Please try again."),
    "http503": (503, "SlowDown", "Please reduce your request rate."),
}


class FaultyProxy:
    """Forward HTTP requests to ``upstream``, injecting scheduled faults; counts what it did."""

    def __init__(
        self,
        upstream: str,
        *,
        every: int = 0,
        budget: int = 3,
        delay: float = 0.5,
        restart_after: int = 0,
        downtime: float = 1.5,
    ) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.every = every
        self.budget = budget
        self.delay = delay
        self.restart_after = restart_after
        self.downtime = downtime
        self.die_after = 0
        self.hang_after = 0
        self.hang_body = False
        self._stopped = threading.Event()
        self.injected: Counter[str] = Counter()
        self.requests = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def configure(
        self,
        *,
        every: int = 0,
        restart_after: int = 0,
        die_after: int = 0,
        hang_after: int = 0,
        hang_body: bool = False,
    ) -> None:
        """Set a new schedule and clear the counts; ``die_after`` requests, stop for good."""
        with self._lock:
            self.every, self.restart_after, self.die_after = every, restart_after, die_after
            self.hang_after, self.hang_body = hang_after, hang_body
            self.injected.clear()
            self.requests = 0

    handler: type[_Handler]  # the request handler; a subclass may forward requests differently

    def start(self) -> FaultyProxy:
        proxy = self

        class Handler(self.handler):  # type: ignore[name-defined,misc]
            owner = proxy

        self._stopped.clear()
        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        server.allow_reuse_address = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and drop open connections: clients now get 'connection refused'."""
        server, self._server = self._server, None
        self._stopped.set()  # releases the requests held by "hang"
        if server is not None:
            server.shutdown()
            server.server_close()
        _Handler.drop_all(self)

    def __enter__(self) -> FaultyProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def next_fault(self) -> str | None:
        """Count a request and say which fault (if any) it gets."""
        with self._lock:
            self.requests += 1
            number = self.requests
            if self.die_after and number >= self.die_after:
                return "die"
            if self.hang_after and number >= self.hang_after:
                self.injected["hang"] += 1
                return "hang_body" if self.hang_body else "hang"
            if self.restart_after and number == self.restart_after and not self.injected["restart"]:
                self.injected["restart"] += 1
                return "restart"
            if not self.every or number % self.every:
                return None
            kind = KINDS[(number // self.every) % len(KINDS)]
            if self.injected[kind] >= self.budget:
                return None
            self.injected[kind] += 1
            return kind

    def _restart(self) -> None:
        self.stop()
        time.sleep(self.downtime)
        self.start()


class _Handler(BaseHTTPRequestHandler):
    owner: FaultyProxy
    protocol_version = "HTTP/1.1"
    _open: dict[int, set[socket.socket]] = {}
    _open_lock = threading.Lock()

    def setup(self) -> None:
        super().setup()
        with self._open_lock:
            self._open.setdefault(id(self.owner), set()).add(self.connection)

    def finish(self) -> None:
        with self._open_lock:
            self._open.get(id(self.owner), set()).discard(self.connection)
        with contextlib.suppress(OSError):  # the peer may be gone, or reset on purpose
            super().finish()

    @classmethod
    def drop_all(cls, owner: FaultyProxy) -> None:
        with cls._open_lock:
            connections = cls._open.pop(id(owner), set())
        for connection in connections:
            _reset(connection)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the counts say what happened

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fault = self.owner.next_fault()
        if fault == "restart":
            threading.Thread(target=self.owner._restart, daemon=True).start()
            time.sleep(0.1)
            _reset(self.connection)
            self.close_connection = True
            return
        if fault == "die":
            threading.Thread(target=self.owner.stop, daemon=True).start()
            _reset(self.connection)
            self.close_connection = True
            return
        if fault == "hang":
            self.owner._stopped.wait()
            _reset(self.connection)
            self.close_connection = True
            return
        if fault == "reset":
            _reset(self.connection)
            self.close_connection = True
            return
        if fault in _ERRORS:
            status, code, message = _ERRORS[fault]
            payload = (
                f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message></Error>'
            ).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        if fault == "slow":
            time.sleep(self.owner.delay)
        upstream = http.client.HTTPConnection(*self.owner.upstream, timeout=60)
        try:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in _HOP and name.lower() != "content-length":
                    upstream.putheader(name, value)
            upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body)
            response = upstream.getresponse()
            self.send_response_only(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in _HOP:
                    self.send_header(name, value)
            if response.getheader("Content-Length") is None:
                self.close_connection = True  # the body ends when the connection does
            self.end_headers()
            if self.command != "HEAD" and fault == "hang_body":
                self.wfile.write(response.read(int(response.getheader("Content-Length") or 2) // 2))
                self.wfile.flush()
                self.owner._stopped.wait()
                _reset(self.connection)
                self.close_connection = True
                return
            if self.command != "HEAD":
                while chunk := response.read(1 << 20):
                    self.wfile.write(chunk)
        finally:
            upstream.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward


def _reset(connection: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a crashed peer or a middlebox does."""
    try:
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.close()
    except OSError:
        pass


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A loopback server that accepts every connection and never answers; yields its URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.1)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        listener.close()


class _NothingImplemented(BaseHTTPRequestHandler):
    """Answers 501 to every method, as a bare ``http.server`` handler does."""

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def plain_http_server(kind: str, folder: Path) -> Iterator[str]:
    """``kind`` "files": ``python -m http.server`` serving ``folder`` (404 pages); "nothing": 501 to all."""
    handler: type[BaseHTTPRequestHandler]
    if kind == "files":

        class Files(SimpleHTTPRequestHandler):
            def __init__(self, *args: object, **kwargs: object) -> None:
                super().__init__(*args, directory=str(folder), **kwargs)  # type: ignore[arg-type]

            def log_message(self, format: str, *args: object) -> None:
                pass

        handler = Files
    else:
        handler = _NothingImplemented
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


FaultyProxy.handler = _Handler
