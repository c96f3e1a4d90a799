"""Previews of stored bytes by MIME type, as HTML built here and escaped here.

Nothing is decoded by a codec and nothing is unpickled: CSV is read with
:mod:`csv`, Parquet with pyarrow's reader (never pandas' object columns), JSON
with :mod:`json`, text as UTF-8. Bytes a preview reads are verified against
their digest first (whole, up to :data:`PREVIEW_BYTES`). Images, HTML and SVG
are not read here at all: the page points an ``<img>`` or a sandboxed
``<iframe>`` at the blob route, which serves them under ``Content-Security-Policy:
sandbox``. A preview never raises for what the bytes hold: bytes that do not
parse as their type say so.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from typing import Any

from markupsafe import Markup

from .._errors import WfeError
from .._humanize import human_size
from ..graph._model import Artifact
from ..ops._outputs import read_bytes
from ..store._store import Store

PREVIEW_BYTES = 16 * 1024 * 1024  # larger outputs are offered for download only
TABLE_ROWS = 20
TYPE_SAMPLE = 200  # rows read to tell a CSV column's type
TEXT_CHARS = 64 * 1024
JSON_ITEMS = 2000  # values drawn in a JSON tree before it says "…"
JSON_DEPTH = 40
CELL_CHARS = 200

IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp"})
FRAMED = frozenset({"text/html", "image/svg+xml", "application/xhtml+xml"})
PARQUET = frozenset({"application/vnd.apache.parquet", "application/x-parquet", "application/parquet"})
CSV = frozenset({"text/csv", "application/csv", "text/tab-separated-values"})
_JSON = re.compile(r"application/(?:[\w.\-]+\+)?json|text/json")


def base_mime(mime: str) -> str:
    return mime.split(";", 1)[0].strip().lower()


def kind_of(mime: str) -> str:
    """How a MIME type is previewed: image, frame, parquet, csv, json, text or binary."""
    mime = base_mime(mime)
    if mime in IMAGES:
        return "image"
    if mime in FRAMED:
        return "frame"
    if mime in PARQUET:
        return "parquet"
    if mime in CSV:
        return "csv"
    if _JSON.fullmatch(mime):
        return "json"
    if mime.startswith("text/") or mime in ("application/xml", "application/yaml", "application/x-yaml"):
        return "text"
    return "binary"


def preview(store: Store, artifact: Artifact, view_url: str) -> Markup:
    """The preview of ``artifact``: a table, a tree, an image, a frame, text, or a line saying why not."""
    kind = kind_of(artifact.mime)
    size = human_size(artifact.size)
    if kind == "binary":
        return _note(f"binary, {artifact.size:,} bytes ({artifact.mime})")
    if kind == "image":
        return Markup('<img class="preview-image" alt="{}" src="{}">').format(artifact.name or artifact.mime, view_url)
    if kind == "frame":
        return Markup('<iframe class="preview-frame" sandbox="" referrerpolicy="no-referrer" title="{}" src="{}">'
                      "</iframe>").format(f"{artifact.mime} preview", view_url)
    if artifact.size > PREVIEW_BYTES:
        return _note(f"{size}: too large to preview here; download it")
    try:
        data = read_bytes(store, artifact)
    except WfeError as exc:
        return _note(f"cannot read it: {' '.join(str(exc).split())}", problem=True)
    if kind == "csv":
        delimiter = "\t" if base_mime(artifact.mime) == "text/tab-separated-values" else ","
        return csv_table(data, delimiter)
    if kind == "parquet":
        return parquet_table(data)
    if kind == "json":
        return json_tree(data)
    return text_block(data)


def _note(text: str, *, problem: bool = False) -> Markup:
    return Markup('<p class="note{}">{}</p>').format(" problem" if problem else "", text)


def text_block(data: bytes) -> Markup:
    text = data.decode("utf-8", errors="replace")
    clipped = len(text) > TEXT_CHARS
    more = Markup('<p class="note">first {:,} characters of {:,}</p>').format(TEXT_CHARS, len(text)) if clipped else ""
    return Markup('<pre class="preview-text">{}</pre>{}').format(text[:TEXT_CHARS], more)


def csv_table(data: bytes, delimiter: str = ",") -> Markup:
    """The first rows of a CSV file, with each column's type guessed from the first rows."""
    text = data.decode("utf-8", errors="replace")
    rows: list[list[str]] = []
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        for row in reader:
            rows.append(row)
            if len(rows) > TYPE_SAMPLE:
                break
        total = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
    except csv.Error as exc:
        return _note(f"not a readable CSV file: {exc}", problem=True)
    if not rows:
        return _note("an empty CSV file")
    header, body = rows[0], rows[1:]
    width = max(len(r) for r in rows)
    header = header + [""] * (width - len(header))
    types = [_column_type(r[i] if i < len(r) else "" for r in body) for i in range(width)]
    shown = body[:TABLE_ROWS]
    caption = f"first {len(shown)} of {max(total - 1, len(body)):,} rows · {width} columns"
    return _table(header, types, shown, caption)


def _column_type(values: Iterable[str]) -> str:
    seen = [v.strip() for v in values if v.strip()]
    if not seen:
        return "empty"
    for name, test in (("integer", _is_int), ("number", _is_float), ("boolean", _is_bool), ("date", _is_date)):
        if all(test(v) for v in seen):
            return name
    return "text"


def _is_int(value: str) -> bool:
    return re.fullmatch(r"[+-]?\d{1,30}", value) is not None


def _is_float(value: str) -> bool:
    return re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", value) is not None


def _is_bool(value: str) -> bool:
    return value.lower() in ("true", "false")


def _is_date(value: str) -> bool:
    return re.fullmatch(r"\d{4}-\d{2}(-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?)?", value) is not None


def parquet_table(data: bytes) -> Markup:
    """The schema and first rows of a Parquet file; a line if pyarrow is missing or the file does not parse."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return _note("a Parquet file: install pyarrow (pip install 'wfe[arrow]') to preview it")
    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
        schema = parquet.schema_arrow
        total = parquet.metadata.num_rows
        names = [str(n) for n in schema.names]
        types = [str(t) for t in schema.types]
        rows: list[list[str]] = []
        for batch in parquet.iter_batches(batch_size=TABLE_ROWS):
            columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
            rows.extend([_cell(c[r]) for c in columns] for r in range(batch.num_rows))
            break
    except Exception as exc:  # pyarrow's errors for bytes that are no Parquet file are many (ArrowInvalid, OSError, …)
        return _note(f"not a readable Parquet file: {' '.join(str(exc).split())[:300]}", problem=True)
    caption = f"first {len(rows)} of {total:,} rows · {len(names)} columns"
    return _table(names, types, rows[:TABLE_ROWS], caption)


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"


def _table(header: list[str], types: list[str], rows: list[list[str]], caption: str) -> Markup:
    head = Markup("").join(Markup("<th>{}<br><small>{}</small></th>").format(_cell(h), t)
                           for h, t in zip(header, types, strict=False))
    body = Markup("").join(
        Markup("<tr>{}</tr>").format(Markup("").join(Markup("<td>{}</td>").format(_cell(c)) for c in row))
        for row in rows
    )
    return Markup('<div class="table-scroll"><table class="preview-table"><caption>{}</caption><thead><tr>{}</tr>'
                  "</thead><tbody>{}</tbody></table></div>").format(caption, head, body)


def json_tree(data: bytes) -> Markup:
    """A JSON document as nested ``<details>``; a line if it is not JSON."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:
        return _note(f"not valid JSON: {' '.join(str(exc).split())[:300]}", problem=True)
    budget = [JSON_ITEMS]
    return Markup('<div class="json-tree">{}</div>').format(_json_node(None, value, 0, budget))


def _json_node(key: str | None, value: Any, depth: int, budget: list[int]) -> Markup:
    label = Markup('<span class="json-key">{}</span>: ').format(key) if key is not None else Markup("")
    budget[0] -= 1
    if isinstance(value, dict | list):
        items = list(value.items()) if isinstance(value, dict) else [(f"[{i}]", v) for i, v in enumerate(value)]
        n, plural = len(items), "" if len(items) == 1 else "s"
        count = f"{{{n} key{plural}}}" if isinstance(value, dict) else f"[{n} item{plural}]"
        if depth >= JSON_DEPTH or budget[0] <= 0:
            return Markup('<div class="json-leaf">{}<span class="json-more">{} …</span></div>').format(label, count)
        children = []
        for child_key, child in items:
            if budget[0] <= 0:
                children.append(Markup('<div class="json-more">… (more not shown)</div>'))
                break
            children.append(_json_node(str(child_key), child, depth + 1, budget))
        opened = " open" if depth < 2 else ""
        return Markup('<details{}><summary>{}<span class="json-count">{}</span></summary>{}</details>').format(
            Markup(opened), label, count, Markup("").join(children)
        )
    shown = json.dumps(value, ensure_ascii=False)
    kind = "string" if isinstance(value, str) else "null" if value is None else "other"
    return Markup('<div class="json-leaf">{}<span class="json-{}">{}</span></div>').format(label, kind, _cell(shown))
