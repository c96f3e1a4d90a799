"""The web app: server-rendered pages over one store, read only.

Every route is a GET (or HEAD). Nothing here runs workflow code, imports a
workflow's modules or unpickles anything: pages are made from run records,
configs and bytes, read through the store like ``wfe show`` reads them.
Stored bytes are served only by the blob routes, through
:func:`wfe.ui._security.blob_response` (``Content-Security-Policy: sandbox``:
an HTML or SVG output runs no script and belongs to no origin, whether
framed or opened on its own); the pages allow scripts from ``/static`` only.
A failure is an error page with one line, never a traceback: a missing run
or blob is 404, a malformed address 400, a damaged record or blob 502.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from .._errors import (
    AddressError,
    BlobNotFoundError,
    IntegrityError,
    InvalidDigestError,
    InvalidNameError,
    NotFoundError,
    StoreError,
    WfeError,
)
from .._humanize import human_seconds as seconds
from .._humanize import human_size
from ..graph._model import Artifact
from ..ops._address import resolve_digest
from ..ops._explain import Explanation, explain
from ..ops._history import producers, resolve_run_id, run_workflow, shown_status
from ..report._graphviz import NEUTRAL, STATUS_COLOURS
from ..report._html import MAX_DRAWN_NODES, Box, graph_svg
from ..store._digest import validate_digest
from ..store._manifest import NodeRecord, RunManifest
from ..store._records import validate_run_id
from ..store._store import Store
from . import _assets
from ._compare import compare
from ._format import cache_word, is_run_id, legend, run_colour, short, store_label, when
from ._listing import PAGE_SIZE, RunIndex, RunRow
from ._previews import json_tree, preview
from ._security import HostCheck, SecurityHeaders, blob_response, header_mime
from ._templates import TEMPLATES

log = logging.getLogger("wfe.ui")

STATUSES = ("succeeded", "failed", "running", "interrupted", "died")
LOG_BYTES = 1024 * 1024  # a log is shown whole up to this size
USES_SHOWN = 500


class _Redirect(Exception):
    def __init__(self, url: str) -> None:
        self.url = url


def _status_of(exc: WfeError) -> tuple[int, str]:
    if isinstance(exc, NotFoundError):
        return 404, "Not found"
    if isinstance(exc, AddressError | InvalidDigestError | InvalidNameError):
        return 400, "Not an address"
    if isinstance(exc, IntegrityError | StoreError):
        return 502, "Damaged in the store"
    return 400, "Cannot show this"


def _one_line(exc: BaseException) -> str:
    from ..cli import one_line  # secrets masked, as on the command line

    return one_line(exc)


Handler = Callable[["Pages", Request], Response]


def _guarded(handler: Handler) -> Handler:
    """A WfeError becomes an error page naming it; anything else a 500 page without a traceback (logged)."""

    @functools.wraps(handler)
    def endpoint(self: Pages, request: Request) -> Response:
        try:
            return handler(self, request)
        except _Redirect as jump:
            return RedirectResponse(jump.url, status_code=302)
        except WfeError as exc:
            status, title = _status_of(exc)
            return self.error(status, title, _one_line(exc))
        except Exception:
            log.exception("error making %s", request.url.path)
            return self.error(500, "Something went wrong", "this page could not be made; the server's log says why")

    return endpoint


class Pages:
    """The routes' handlers over one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.index = RunIndex(store)
        self.label = store_label(store)
        env = jinja2.Environment(loader=jinja2.DictLoader(TEMPLATES), autoescape=True,
                                 undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        env.filters.update(when=when, seconds=seconds, size=human_size, short=short)
        env.globals.update(colours=STATUS_COLOURS, neutral=NEUTRAL, run_colour=run_colour, cache_word=cache_word,
                           store_label=self.label)
        self.env = env

    # rendering

    def render(self, template: str, http_status: int = 200, **values: Any) -> HTMLResponse:
        return HTMLResponse(self.env.get_template(template).render(**values), status_code=http_status,
                            headers={"Cache-Control": "no-store"})

    def error(self, status: int, title: str, message: str) -> HTMLResponse:
        return self.render("error.html", http_status=status, title=title, message=message)

    # runs

    @_guarded
    def runs(self, request: Request) -> Response:
        params = request.query_params
        workflow = params.get("workflow") or None
        status = params.get("status") or None
        if status is not None and status not in STATUSES:
            raise AddressError(f"unknown status {status!r}: one of {', '.join(STATUSES)}")
        before = params.get("before") or None
        if before is not None:
            validate_run_id(before)
        inner = params.get("inner") == "1"
        page = self.index.page(workflow=workflow, status=status, before=before, inner=inner)

        def query(**changes: Any) -> str:
            values = {"workflow": workflow, "status": status, "inner": "1" if inner else None, "before": before}
            values.update(changes)
            return urlencode({k: v for k, v in values.items() if v})

        return self.render("runs.html", page=page, workflow=workflow, status=status, before=before, inner=inner,
                           statuses=STATUSES, workflows=self.index.workflows(), query=query, page_size=PAGE_SIZE)

    def _manifest(self, request: Request) -> RunManifest:
        text = request.path_params["run"]
        try:
            run_id = validate_run_id(text)
        except InvalidNameError:
            run_id = resolve_run_id(self.store, text)  # a prefix or "latest": go to the run's own address
            rest = str(request.scope["path"])[len("/runs/") + len(text) :]
            raise _Redirect(f"/runs/{run_id}{quote(rest)}") from None
        return self.store.runs.get(run_id)

    def _run_values(self, manifest: RunManifest) -> dict[str, Any]:
        status = shown_status(manifest)
        counts = manifest.counts()
        functions = [r for r in manifest.nodes.values() if r.function is not None]
        rerun_of = (manifest.model_extra or {}).get("rerun_of")
        return {
            "run": manifest,
            "status": status,
            "duration": (manifest.finished - manifest.started) if manifest.finished else None,
            "counts": [(s, counts[s]) for s in STATUS_COLOURS if counts.get(s)],
            "hits": sum(1 for r in functions if r.status == "cached"),
            "function_nodes": len(functions),
            "rerun_of": rerun_of if isinstance(rerun_of, str) and is_run_id(rerun_of) else None,
            "graph": Markup(self._graph(manifest)),
            "legend": Markup(legend()),
        }

    def _graph(self, manifest: RunManifest) -> str:
        if len(manifest.nodes) > MAX_DRAWN_NODES:
            return f"<p>{len(manifest.nodes)} nodes: too many to draw; see the table.</p>"
        try:
            graph = run_workflow(self.store, manifest)
            order = [n for n in graph.order if n in manifest.nodes]
            order += [n for n in manifest.nodes if n not in set(order)]
            edges = [(e.source, e.target) for e in graph.edges
                     if e.source in manifest.nodes and e.target in manifest.nodes]
        except WfeError:  # the workflow blob is gone or damaged: the edges the records show
            made_by = producers(manifest)
            order = list(manifest.nodes)
            edges = [(made_by[a.digest], node_id) for node_id, r in manifest.nodes.items() for a in r.inputs
                     if a.digest in made_by and made_by[a.digest] != node_id]
        boxes = {}
        for node_id in order:
            record = manifest.nodes[node_id]
            tip = f"{node_id}: {record.status}" + (f" ({seconds(record.duration)})" if record.duration else "")
            if record.error:
                tip += f"\n{record.error}"
            boxes[node_id] = Box(record.status, record.function or "file", tip, record.function is None)
        return graph_svg(order, edges, boxes)

    @_guarded
    def run(self, request: Request) -> Response:
        manifest = self._manifest(request)
        values = self._run_values(manifest)
        failures = [(node_id, r, self._log(r.log)) for node_id, r in manifest.nodes.items() if r.status == "failed"]
        return self.render("run.html", failures=failures, **values)

    @_guarded
    def live(self, request: Request) -> Response:
        return self.render("live.html", **self._run_values(self._manifest(request)))

    def _log(self, digest: str | None) -> str | None:
        if not digest:
            return None
        try:
            size = self.store.blobs.size(digest)
            if size > LOG_BYTES:
                return f"(the log is {human_size(size)}: download it from its artifact page, /artifacts/{digest})"
            return self.store.blobs.get(digest).decode("utf-8", errors="replace")
        except WfeError as exc:
            return f"(log unavailable: {_one_line(exc)})"

    # a node

    def _node(self, request: Request) -> tuple[RunManifest, str, NodeRecord]:
        manifest = self._manifest(request)
        node_id = request.path_params["node"]
        record = manifest.nodes.get(node_id)
        if record is None:
            raise NotFoundError(f"run {manifest.run_id} has no node {node_id!r}")
        return manifest, node_id, record

    @_guarded
    def node(self, request: Request) -> Response:
        manifest, node_id, record = self._node(request)
        base = f"/runs/{manifest.run_id}/nodes/{quote(node_id, safe='')}"
        sides = []
        for title, side, artifacts in (("Inputs", "inputs", record.inputs), ("Outputs", "outputs", record.outputs)):
            items = []
            for position, artifact in enumerate(artifacts):
                url = f"{base}/{side}/{position}"
                items.append((artifact, preview(self.store, artifact, f"{url}/view"), url))
            sides.append((title, side, items))
        explanation: Explanation | None = None
        explain_error = ""
        try:
            explanation = explain(self.store, manifest.run_id, node_id)
        except WfeError as exc:
            explain_error = f"cannot tell: {_one_line(exc)}"
        return self.render(
            "node.html", run=manifest, node_id=node_id, r=record, spec_ref=self._spec_ref(record),
            config=self._config(record), explanation=explanation, explain_error=explain_error,
            sides=sides, log=self._log(record.log),
        )

    def _spec_ref(self, record: NodeRecord) -> str | None:
        if not record.function:
            return None
        try:
            return self.store.functions.get(record.function).ref  # text only: nothing is imported
        except WfeError:
            return None

    def _config(self, record: NodeRecord) -> Markup | None:
        if not record.config:
            return None
        try:
            value = self.store.config(record.config, record.action_keys())
        except WfeError as exc:
            return Markup('<p class="problem">{}</p>').format(f"cannot read config: {_one_line(exc)}")
        if value == {}:
            return None  # no parameters: nothing to show
        return Markup('<div class="card">{}</div>').format(json_tree(json.dumps(value).encode("utf-8")))

    @_guarded
    def node_blob(self, request: Request) -> Response:
        manifest, node_id, record = self._node(request)
        side, action = request.path_params["side"], request.path_params["action"]
        artifacts = {"inputs": record.inputs, "outputs": record.outputs}.get(side)
        position = request.path_params["index"]
        if artifacts is None or action not in ("view", "download") or not 0 <= position < len(artifacts):
            raise NotFoundError(f"node {node_id!r} of run {manifest.run_id} has no {side} {position}")
        artifact = artifacts[position]
        stem = f"{node_id}-{artifact.name or position}"
        return blob_response(self.store, artifact, download=action == "download", stem=stem)

    # artifacts

    @_guarded
    def artifact_search(self, request: Request) -> Response:
        text = (request.query_params.get("q") or "").strip()
        if not text:
            raise AddressError("give a digest or a digest prefix of at least 12 hex characters")
        raise _Redirect(f"/artifacts/{quote(text, safe=':')}")

    @_guarded
    def artifact(self, request: Request) -> Response:
        text = request.path_params["ref"]
        digest = resolve_digest(self.store, text)
        if digest != text:
            raise _Redirect(f"/artifacts/{digest}")
        size: int | None = None
        missing = ""
        try:
            size = self.store.blobs.size(digest)
        except BlobNotFoundError:
            missing = "not in the blob store (an inline or ephemeral value, or removed by gc)"
        everything = request.query_params.get("scan") == "all"
        uses, scanned, total = self._uses(digest, everything)
        mime = uses[0][3] if uses else None
        shown_preview = None
        if size is not None and mime is not None:
            artifact = Artifact.model_validate({"digest": digest, "mime": mime, "size": size})
            shown_preview = preview(self.store, artifact, f"/artifacts/{digest}/view?{urlencode({'mime': mime})}")
        return self.render("artifact.html", digest=digest, size=size, missing=missing, mime=mime,
                           preview=shown_preview, uses=uses, scanned=scanned, total=total)

    def _uses(self, digest: str, everything: bool) -> tuple[list[tuple[RunRow, str, str, str]], int, int]:
        ids = self.index.ids()
        budget = len(ids) if everything else min(len(ids), 2000)
        newest_first = ids[::-1][:budget]
        found: list[tuple[RunRow, str, str, str]] = []
        for start in range(0, len(newest_first), 200):
            chunk = newest_first[start : start + 200]
            for row in self.index.rows(chunk):
                if row is None or row.summary is None:
                    continue
                found.extend((row, node, role, mime) for d, node, role, mime in row.uses if d == digest)
            if len(found) >= USES_SHOWN:
                return found[:USES_SHOWN], start + len(chunk), len(ids)
        return found, len(newest_first), len(ids)

    @_guarded
    def artifact_blob(self, request: Request) -> Response:
        digest = validate_digest(request.path_params["digest"])
        action = request.path_params["action"]
        if action not in ("view", "download"):
            raise NotFoundError(f"no page {action!r} for an artifact")
        mime = header_mime(request.query_params.get("mime") or "application/octet-stream")
        artifact = Artifact.model_validate({"digest": digest, "mime": mime,
                                            "size": self.store.blobs.size(digest)})
        return blob_response(self.store, artifact, download=action == "download", stem=digest[7:19])

    # two runs

    @_guarded
    def compare(self, request: Request) -> Response:
        a_text = (request.query_params.get("a") or "").strip()
        b_text = (request.query_params.get("b") or "").strip()
        values: dict[str, Any] = {"a_text": a_text, "b_text": b_text, "cmp": None, "error": None}
        if a_text and b_text:
            try:
                a = self.store.runs.get(resolve_run_id(self.store, a_text))
                b = self.store.runs.get(resolve_run_id(self.store, b_text))
            except WfeError as exc:
                values["error"] = _one_line(exc)
            else:
                values["cmp"] = compare(self.store, a, b)
        return self.render("compare.html", **values)

    # the rest

    def home(self, request: Request) -> Response:
        return RedirectResponse("/runs", status_code=302)

    def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        found = {"ui.css": (_assets.CSS, "text/css"), "ui.js": (_assets.JS, "text/javascript")}.get(name)
        if found is None:
            return self.error(404, "Not found", f"no file {name!r}")
        return Response(found[0], media_type=found[1], headers={"Cache-Control": "max-age=300"})


def create_app(store: Store, *, hosts: Iterable[str] = ("127.0.0.1", "localhost", "::1")) -> ASGIApp:
    """The ASGI app over ``store``; it answers requests whose Host is one of ``hosts`` (``"*"``: any)."""
    pages = Pages(store)

    routes = [
        Route("/", pages.home),
        Route("/runs", pages.runs),
        Route("/runs/{run}", pages.run),
        Route("/runs/{run}/live", pages.live),
        Route("/runs/{run}/nodes/{node}", pages.node),
        Route("/runs/{run}/nodes/{node}/{side}/{index:int}/{action}", pages.node_blob),
        Route("/compare", pages.compare),
        Route("/artifacts", pages.artifact_search),
        Route("/artifacts/{ref}", pages.artifact),
        Route("/artifacts/{digest}/{action}", pages.artifact_blob),
        Route("/static/{name}", pages.static),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return pages.error(404, "Not found", f"no page at {request.url.path}")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return pages.error(405, "Read only", "this app only reads the store: it takes no changes")

    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})
    app.state.pages = pages
    return HostCheck(SecurityHeaders(app), hosts)
