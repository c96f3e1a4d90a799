"""Loading a workflow: from a decoded document or a YAML/JSON file, with one-line errors."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .._errors import RecordError, WorkflowError
from ._model import CANONICAL_SLICE, Edge, Node, WorkflowGraph


def parse_workflow(document: Any, source: str = "workflow") -> WorkflowGraph:
    """Validate a decoded workflow document, raising WorkflowError with one line."""
    if not isinstance(document, dict):
        raise WorkflowError(f"{source}: expected a mapping with 'name' and 'nodes'")
    try:
        return WorkflowGraph.model_validate(document)
    except RecordError as exc:
        raise WorkflowError(f"{source}: {exc}") from None


MAX_WORKFLOW_BYTES = 64 * 1024 * 1024


def load_workflow(path: str | Path) -> WorkflowGraph:
    """Load a workflow from a YAML or JSON file."""
    path = Path(path)
    try:
        with path.open("rb") as handle:  # read() to the end: read(n) would first allocate n bytes
            if os.fstat(handle.fileno()).st_size > MAX_WORKFLOW_BYTES:
                raise WorkflowError(f"{path}: workflow file larger than {MAX_WORKFLOW_BYTES} bytes")
            raw = handle.read()
    except OSError as exc:
        raise WorkflowError(f"cannot read workflow {str(path)!r}: {exc.strerror or exc}") from None
    if len(raw) > MAX_WORKFLOW_BYTES:
        raise WorkflowError(f"{path}: workflow file larger than {MAX_WORKFLOW_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WorkflowError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    del raw
    try:
        document = json.loads(text) if path.suffix.lower() == ".json" else _load_yaml(text)
    except RecursionError:
        raise WorkflowError(f"{path}: document nested too deeply") from None
    except Exception as exc:  # yaml and json errors carry positions; keep the first line
        detail = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise WorkflowError(f"{path}: cannot parse: {detail}") from None
    if isinstance(document, dict):  # ours: each node and edge can replace its dict at once
        for key, kind in (("nodes", Node), ("edges", Edge)):
            items = document.get(key)
            if isinstance(items, list) and len(items) > CANONICAL_SLICE:
                _validate_in_place(items, kind)
    return parse_workflow(document, str(path))


MAX_EXPANDED_NODES = 10_000_000  # about what the largest workflow file could write out without aliases


def _load_yaml(text: str) -> Any:
    """``yaml.safe_load(text)``, refusing a document its aliases expand absurdly ("billion laughs").

    A document with anchors is composed first and its size counted with each alias at its
    expanded size (memoised, so in time linear in the document), before any value is built.
    """
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        if "&" in text:  # no anchor, no alias: nothing to expand
            _check_expansion(root)
        return loader.construct_document(root)
    finally:
        loader.dispose()


def _check_expansion(root: Any) -> None:
    """Raise ValueError if the composed YAML ``root`` contains itself or expands past the limit."""

    def parts(node: Any) -> list[Any]:
        return [part for pair in node.value for part in pair] if node.id == "mapping" else node.value

    sizes: dict[int, int] = {}  # expanded size by id of each collection counted (a scalar counts 1)
    entered: set[int] = set()  # collections whose parts are being counted: one met again contains itself
    stack: list[tuple[Any, bool]] = [(root, False)] if root.id != "scalar" else []
    while stack:
        node, counted = stack.pop()
        key = id(node)
        if counted:
            entered.discard(key)
            size = sizes[key] = 1 + sum([sizes.get(id(part), 1) for part in parts(node)])
            if size > MAX_EXPANDED_NODES:
                raise ValueError(f"aliases expand the document past {MAX_EXPANDED_NODES} nodes")
        elif key in entered:
            raise ValueError("an alias refers to a node that contains it")
        elif key not in sizes:
            entered.add(key)
            stack.append((node, True))
            stack.extend([(part, False) for part in parts(node) if part.id != "scalar" and id(part) not in sizes])


def _validate_in_place(items: list[Any], kind: type[Node] | type[Edge]) -> None:
    """Replace decoded nodes or edges by their records one at a time.

    A large workflow then never holds its whole decoded document and its whole graph at once.
    On the first invalid item it stops: the graph's own validation reports the problem, with
    its place in the document (the items before it are records, which pass as they are).
    """
    for index, item in enumerate(items):
        try:
            items[index] = kind.model_validate(item)
        except RecordError:
            return
