"""A real S3 API server on 127.0.0.1, in its own process, that counts what it is asked.

The server is moto's S3 emulator (no MinIO or similar server installs from
the package registries here) served over HTTP by werkzeug, wrapped in a small
WSGI layer that logs every request's method, path and query. The log lives in
the server process and is read over HTTP at ``/_wfe/requests``, so a test
counts the GETs the server actually received, whatever client caching
happened on the other side.

Use :func:`s3_server` as a context manager::

    with s3_server() as server:
        store = wfe.open_store(server.url("prefix"), **server.options)
        server.reset_requests()
        ...
        assert server.count("GET", "/blobs/") == 1

Run as ``python -m servers.s3`` it serves until killed and
prints its port on the first line of stdout.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import urllib.request
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from servers._process import exit_with_parent, read_port, stop

# Recognisable fakes: moto accepts any key pair.
FAKE_KEY = "wfe-test-access-key"
FAKE_SECRET = "wfe-test-secret-key-not-real"
STATS_PATH = "/_wfe/requests"


@dataclass
class S3Server:
    """A running server: its endpoint, one bucket made for the caller, and its request log."""

    endpoint_url: str
    bucket: str
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def options(self) -> dict[str, str]:
        """Store options that reach this server (fake credentials included)."""
        return {"endpoint_url": self.endpoint_url, "key": FAKE_KEY, "secret": FAKE_SECRET}

    @property
    def env(self) -> dict[str, str]:
        """Environment variables for a child process that uses this server through the AWS defaults."""
        return {
            "AWS_ACCESS_KEY_ID": FAKE_KEY,
            "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def url(self, prefix: str = "") -> str:
        """``s3://bucket/prefix`` for a store on this server."""
        return f"s3://{self.bucket}/{prefix}".rstrip("/")

    def filesystem(self) -> Any:
        """A raw s3fs filesystem on this server, to check storage behind the store's back."""
        import s3fs

        return s3fs.S3FileSystem(
            key=FAKE_KEY,
            secret=FAKE_SECRET,
            client_kwargs={"endpoint_url": self.endpoint_url},
            use_listings_cache=False,
            skip_instance_cache=True,
        )

    def make_bucket(self, name: str | None = None) -> str:
        name = name or f"wfe-{uuid.uuid4().hex[:12]}"
        self.filesystem().call_s3("create_bucket", Bucket=name)
        return name

    def requests(self) -> list[dict[str, str]]:
        """Every request the server received since the last reset: ``{"method", "path", "query"}``."""
        with urllib.request.urlopen(self.endpoint_url + STATS_PATH, timeout=10) as response:
            entries: list[dict[str, str]] = json.loads(response.read())
            return entries

    def reset_requests(self) -> None:
        request = urllib.request.Request(self.endpoint_url + STATS_PATH, method="DELETE")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def count(self, method: str, path_contains: str = "", *, query: str | None = None) -> int:
        """How many requests with this method whose path contains ``path_contains``.

        ``query`` (if given) must equal the request's query string, so ``query=""``
        counts plain object reads and leaves out listings and multipart calls.
        """
        return sum(
            1
            for entry in self.requests()
            if entry["method"] == method
            and path_contains in entry["path"]
            and (query is None or entry["query"] == query)
        )


@contextlib.contextmanager
def s3_server(bucket: str = "wfe-test", *, check_keys: bool = False) -> Iterator[S3Server]:
    """Start the server process on a free loopback port, make ``bucket``, stop it on exit.

    With ``check_keys`` the server refuses every request (HTTP 403), as S3
    does for an access key it does not know; no bucket is made then.
    """
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    if check_keys:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"  # moto: authenticate every request
    process = subprocess.Popen(
        [sys.executable, "-m", "servers.s3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    try:
        port = read_port(process, "S3")
        server = S3Server(f"http://127.0.0.1:{port}", bucket, process)
        if not check_keys:
            server.make_bucket(bucket)
        yield server
    finally:
        stop(process)


class _Counting:
    """WSGI middleware: log each request, answer the log's own endpoint; one conditional write at a time.

    S3 decides a conditional PUT (``If-None-Match: *``, ``If-Match``) and
    writes it as one step: of racing create-only PUTs of a key, exactly one
    succeeds. moto checks, then writes, in a thread per request, so two can
    both pass the check; here its conditional writes are taken one at a time,
    which is what S3 promises of them. Writes to different keys, conditional
    or not, still run side by side (a lock per key, striped over a few).
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._log: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._conditional = [threading.Lock() for _ in range(64)]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "")
        if path == STATS_PATH:
            with self._lock:
                if method == "DELETE":
                    self._log.clear()
                body = json.dumps(self._log).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if not path.startswith("/moto-api"):
            with self._lock:
                self._log.append({"method": method, "path": path, "query": environ.get("QUERY_STRING", "")})
        if method == "PUT" and ("HTTP_IF_NONE_MATCH" in environ or "HTTP_IF_MATCH" in environ):
            with self._conditional[zlib.crc32(path.encode()) % len(self._conditional)]:
                return list(self._app(environ, start_response))
        return self._app(environ, start_response)


def main() -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    app = _Counting(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    print(server.port, flush=True)
    exit_with_parent()
    server.serve_forever()


if __name__ == "__main__":
    main()
