"""What keeps stored bytes from acting in the app's origin, and the app from answering other sites.

Stored bytes leave the app only through :func:`blob_response`: under
``Content-Security-Policy: sandbox`` (no script runs and the document has no
origin, framed or opened on its own) with ``default-src 'none'`` (nothing is
fetched), ``X-Content-Type-Options: nosniff``, and as an attachment unless
it is a type the pages preview inline. Every other response gets the pages'
policy (scripts from ``/static`` only) from :class:`SecurityHeaders`.
:class:`HostCheck` answers only requests addressed to the app's own names.
"""

from __future__ import annotations

import mimetypes
import os
import re
import tempfile
import time
from collections.abc import Iterable

from starlette.background import BackgroundTask
from starlette.responses import FileResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..graph._model import Artifact
from ..ops._outputs import read_bytes
from ..store._store import Store
from ._previews import base_mime, kind_of

IN_MEMORY_BYTES = 16 * 1024 * 1024  # blobs served from memory; larger ones from a verified temporary copy
# The app's own pages: scripts and styles from this origin only (inline style attributes for the graph's colours).
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "frame-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
# Stored bytes: no scripts, no origin, nothing fetched from anywhere; framed only by the app's own pages.
BLOB_CSP = ("sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:; "
            "frame-ancestors 'self'")
SAFE_MIME = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+\-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+\-]{0,126}")
INLINE_KINDS = ("image", "frame", "text", "json", "csv")


def header_mime(mime: str) -> str:
    """``mime`` as a Content-Type can carry it, or ``application/octet-stream``."""
    mime = base_mime(mime)
    return mime if SAFE_MIME.fullmatch(mime) else "application/octet-stream"


def blob_response(store: Store, artifact: Artifact, *, download: bool, stem: str) -> Response:
    """The verified bytes of ``artifact``, under headers that keep them from scripting this origin."""
    mime = header_mime(artifact.mime)
    inline = not download and kind_of(mime) in INLINE_KINDS
    media_type = mime if download or inline else "application/octet-stream"
    filename = re.sub(r"[^A-Za-z0-9_.\-]", "_", stem)[:100] + (mimetypes.guess_extension(mime) or ".bin")
    headers = {
        "Content-Security-Policy": BLOB_CSP,
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": f'{"inline" if inline else "attachment"}; filename="{filename}"',
        "Cache-Control": "private, max-age=300",
        "X-Frame-Options": "SAMEORIGIN",
    }
    if artifact.kind is not None or artifact.size <= IN_MEMORY_BYTES:
        return Response(read_bytes(store, artifact), media_type=media_type, headers=headers)
    handle, path = tempfile.mkstemp(prefix="wfe-ui-")
    os.close(handle)
    try:
        store.blobs.export(artifact.digest, path)  # verified as it is copied
    except BaseException:
        os.unlink(path)
        raise
    return FileResponse(path, media_type=media_type, headers=headers, background=BackgroundTask(os.unlink, path))


class SecurityHeaders:
    """Headers on every response that does not set its own: the pages' CSP, no sniffing, no framing, no referrer;
    and ``Server-Timing``, the time taken to make the response."""

    DEFAULTS: tuple[tuple[bytes, bytes], ...] = (
        (b"content-security-policy", PAGE_CSP.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"cross-origin-resource-policy", b"same-origin"),
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend((name, value) for name, value in self.DEFAULTS if name not in present)
                # How long the page took to make (benchmarks/bench_ui.py reads it; so do browsers' dev tools).
                took = (time.perf_counter() - began) * 1000
                headers.append((b"server-timing", f"app;dur={took:.1f}".encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


class HostCheck:
    """Answers only requests addressed to one of ``hosts``: another site's page cannot reach the app by a DNS
    name it points at 127.0.0.1 (DNS rebinding)."""

    def __init__(self, app: ASGIApp, hosts: Iterable[str]) -> None:
        self.app = app
        self.hosts = {h.lower() for h in hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "*" not in self.hosts:
            host = dict(scope.get("headers", [])).get(b"host", b"").decode("latin-1").lower()
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name.strip("[]") not in self.hosts:
                response = Response("unknown host: open the address wfe ui printed\n", status_code=400,
                                    media_type="text/plain")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
