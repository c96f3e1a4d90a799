"""Building a workflow in Python from function objects, and writing it as a workflow file.

``Workflow`` records nodes and edges as calls are made (``wf.node(fn, upstream, months=6)``)
and gives the same :class:`WorkflowGraph` a workflow file would: ``to_yaml()`` and
``to_json()`` write that file, and loading it back gives the same workflow digest, so a
workflow built in Python and its file share one cache.

``modules`` lists each module of a function used whose file lies in ``base_dir`` (the
folder the workflow file is written to, and file nodes are read from). Functions of
other modules are found through their reference (``module:qualname``); functions of a
script or notebook (``__main__``) run in this process, or in worker processes forked
from it, and are refused before anything runs where a worker could not import them.
"""

from __future__ import annotations

import inspect
import json
import multiprocessing
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from .._errors import ExecutorError, WorkflowError
from ._functions import Registered, function, registered_functions
from ._load import _load_yaml, parse_workflow
from ._model import CACHE_POLICIES, WorkflowGraph


class Handle:
    """A node (or one named output port of it) of a :class:`Workflow`, to wire into later nodes."""

    __slots__ = ("id", "port", "workflow")

    def __init__(self, workflow: Workflow, node_id: str, port: str | None = None) -> None:
        self.workflow = workflow
        self.id = node_id
        self.port = port

    def __getitem__(self, port: str) -> Handle:
        if not isinstance(port, str) or not port:
            raise WorkflowError(f"node {self.id!r}: an output port is named by a string, got {port!r}")
        if self.port is not None:
            raise WorkflowError(f"node {self.id!r}: output port {self.port!r} has no ports of its own")
        return Handle(self.workflow, self.id, port)

    def __repr__(self) -> str:
        return f"<wfe node {self.id}{'' if self.port is None else '[' + repr(self.port) + ']'}>"


_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class Workflow:
    """A workflow built from Python calls: ``wf = wfe.Workflow("sales")``.

    ``base_dir`` is the workflow's folder: file nodes are read from it and the modules of
    its functions that live in it are its ``modules``; ``wfe.run(wf)`` uses it, and
    ``to_yaml()`` output belongs there. The current folder when omitted.
    """

    def __init__(self, name: str, *, base_dir: str | os.PathLike[str] | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise WorkflowError(f"a workflow needs a name, got {name!r}")
        self.name = name
        self.base_dir = Path(base_dir if base_dir is not None else os.getcwd()).resolve()
        self._nodes: list[dict[str, Any]] = []
        self._edges: list[dict[str, Any]] = []
        self._inputs: list[dict[str, Any]] = []
        self._outputs: list[dict[str, Any]] = []
        self._ids: set[str] = set()
        self._functions: dict[str, Registered] = {}  # registered name -> entry, of every function node
        self._subworkflows: dict[str, Workflow] = {}  # digest -> workflow, of sub-workflow and loop nodes

    # Nodes ------------------------------------------------------------------------------------

    def file(self, path: str, *, mime: str, id: str | None = None) -> Handle:
        """A file taken in as a source: ``path`` relative to ``base_dir``."""
        if not isinstance(path, str) or not path:
            raise WorkflowError(f"file: expected a path relative to the workflow's folder, got {path!r}")
        node_id = self._new_id(id, Path(path).stem or "file")
        return self._add({"id": node_id, "file": path, "mime": mime}, (), {})

    def input(self, id: str, *, mime: str) -> Handle:
        """An input of this workflow, given by the parent when it is used as a sub-workflow or loop."""
        node_id = self._new_id(id, id)
        self._inputs.append({"id": node_id, "mime": mime})
        return Handle(self, node_id)

    def output(self, id: str, source: Handle) -> None:
        """Declare ``source`` (a node, or ``node["port"]``) as output ``id`` of this workflow."""
        self._own(source, f"output {id!r}")
        if any(out["id"] == id for out in self._outputs):
            raise WorkflowError(f"duplicate output id {id!r}")
        entry: dict[str, Any] = {"id": id, "node": source.id}
        if source.port is not None:
            entry["port"] = source.port
        self._outputs.append(entry)

    def node(self, fn: Callable[..., Any], /, *inputs: Handle, id: str | None = None, cache: str = "use",
             config: Mapping[str, Any] | None = None, **keywords: Any) -> Handle:
        """A function node: ``inputs`` feed its inputs in order, keyword handles its named input ports,
        every other keyword is config.

        ``cache`` is the node's cache policy (``"use"``, ``"recompute"`` or ``"skip"``), the
        file's ``cache:`` key. Config keys named ``id``, ``cache`` or ``config`` go in the
        ``config`` mapping, which the other config keywords are added to.
        """
        entry = self._entry(fn)
        ports = {i.name for i in entry.inputs if i.name is not None}
        merged = _merged(id or entry.name, config, keywords)
        return self._function_node(entry, inputs, id, merged, ports, mapped=False, cache=cache)

    def map(self, fn: Callable[..., Any], items: Handle, /, *inputs: Handle, id: str | None = None,
            cache: str = "use", config: Mapping[str, Any] | None = None, **keywords: Any) -> Handle:
        """A mapped function node: ``fn`` runs once per element of ``items``; the rest as for :meth:`node`."""
        entry = self._entry(fn)
        ports = {i.name for i in entry.inputs if i.name is not None}
        merged = _merged(id or entry.name, config, keywords)
        return self._function_node(entry, (items, *inputs), id, merged, ports, mapped=True, cache=cache)

    def workflow(self, sub: Workflow | str, /, *inputs: Handle, id: str | None = None, **config: Any) -> Handle:
        """A sub-workflow node: ``sub`` a Workflow (referred to by digest) or a workflow file's path.

        Keyword handles feed the sub-workflow's inputs of those names; other keywords map
        inner node ids to config overrides.
        """
        reference, ports, default = self._sub(sub, "workflow")
        node_id = self._new_id(id, default)
        wiring, config = self._split(node_id, config, ports)
        return self._add({"id": node_id, "workflow": reference, "config": self._config(node_id, config)},
                         inputs, wiring)

    def loop(self, sub: Workflow | str, *inputs: Handle, max_iterations: int, condition: str,
             id: str | None = None, **config: Any) -> Handle:
        """A loop node: run ``sub`` until its ``condition`` output is false, at most ``max_iterations`` times.

        Keyword handles feed the sub-workflow's inputs of those names; other keywords map
        inner node ids to config overrides, as for :meth:`workflow`.
        """
        reference, names, default = self._sub(sub, "loop")
        node_id = self._new_id(id, default)
        wiring, config = self._split(node_id, config, names)
        loop = {"workflow": reference, "max_iterations": max_iterations, "condition": condition}
        node: dict[str, Any] = {"id": node_id, "loop": loop}
        if config:
            node["config"] = self._config(node_id, config)
        return self._add(node, inputs, wiring)

    # The graph and the file -------------------------------------------------------------------

    @property
    def modules(self) -> list[str]:
        """The modules of the functions used whose file is in ``base_dir``, in first-use order."""
        names: list[str] = []
        for entry in self._functions.values():
            module = module_beside(entry.func, self.base_dir)
            if module is not None and module not in names:
                names.append(module)
        return names

    def document(self) -> dict[str, Any]:
        """The workflow file's document: what ``to_json`` writes."""
        document: dict[str, Any] = {"name": self.name}
        if self.modules:
            document["modules"] = self.modules
        if self._inputs:
            document["inputs"] = [dict(i) for i in self._inputs]
        if self._outputs:
            document["outputs"] = [dict(o) for o in self._outputs]
        document["nodes"] = [{k: v for k, v in n.items() if not (k == "config" and not v)} for n in self._nodes]
        if self._edges:
            document["edges"] = [dict(e) for e in self._edges]
        return document

    def _repr_html_(self) -> str:
        """In a notebook: the workflow's graph, every node drawn as pending."""
        from ..report._html import workflow_html

        return workflow_html(self.graph())

    def graph(self) -> WorkflowGraph:
        """The validated graph; WorkflowError (one line) if it is not a valid workflow."""
        return parse_workflow(json.loads(json.dumps(self.document())), f"workflow {self.name!r}")

    def digest(self) -> str:
        """The workflow digest: the same as that of the file ``to_yaml`` writes."""
        return self.graph().digest()

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """The workflow file as JSON; also written to ``path`` if given."""
        text = json.dumps(self._checked(), indent=2) + "\n"
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def to_yaml(self, path: str | os.PathLike[str] | None = None) -> str:
        """The workflow file as YAML; also written to ``path`` if given (beside the modules it lists)."""
        import yaml

        document = self._checked()
        text: str = yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=120, allow_unicode=True)
        if _load_yaml(text) != document:  # characters YAML reads as line breaks (U+0085, U+2028) written raw
            text = yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=120)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    # Running ----------------------------------------------------------------------------------

    def prepare_run(self, store: Any, executor: Any) -> WorkflowGraph:
        """The graph to run on ``store`` with ``executor``, with sub-workflows put into the store.

        ExecutorError before anything is written if a function cannot reach the executor's workers.
        """
        graph = self.graph()
        for workflow in self._all():
            for entry in workflow._functions.values():
                check_reachable(entry, executor)
        for workflow in self._all():
            for digest, sub in workflow._subworkflows.items():
                stored = store.blobs.put(sub.graph().canonical())
                if stored != digest:
                    raise WorkflowError(f"sub-workflow {sub.name!r} changed after it was used (now {stored})")
        return graph

    # Internals --------------------------------------------------------------------------------

    def _all(self) -> list[Workflow]:
        found: list[Workflow] = []
        stack: list[Workflow] = [self]
        while stack:
            workflow = stack.pop()
            if all(workflow is not seen for seen in found):
                found.append(workflow)
                stack.extend(workflow._subworkflows.values())
        return found

    def _checked(self) -> dict[str, Any]:
        self.graph()
        return self.document()

    def _entry(self, fn: Any) -> Registered:
        if isinstance(fn, str):
            raise WorkflowError(f"node function {fn!r} is a string; pass the function object itself")
        if not inspect.isfunction(fn):
            raise WorkflowError(f"a node needs a Python function, got {type(fn).__name__} {fn!r:.80}")
        entry = next((e for e in registered_functions().values() if e.func is fn), None)
        if entry is None:
            try:
                function(fn)
            except ValueError as exc:
                raise WorkflowError(str(exc)) from None
            entry = next(e for e in registered_functions().values() if e.func is fn)
        known = self._functions.get(entry.name)
        if known is not None and known.func is not fn:
            raise WorkflowError(f"function name {entry.name!r} names two functions in workflow {self.name!r}")
        self._functions[entry.name] = entry
        return entry

    def _function_node(self, entry: Registered, inputs: Iterable[Handle], node_id: str | None,
                       config: dict[str, Any], ports: set[str], *, mapped: bool, cache: str) -> Handle:
        if not isinstance(cache, str) or cache not in CACHE_POLICIES:
            raise WorkflowError(
                f"node {node_id or entry.name!r}: cache must be 'use', 'recompute' or 'skip', got {cache!r}"
            )
        new_id = self._new_id(node_id, entry.name)
        wiring, config = self._split(new_id, config, ports)
        node: dict[str, Any] = {"id": new_id, "function": entry.name, "config": self._config(new_id, config)}
        if mapped:
            node["map"] = True
        if cache != "use":  # left out, as the graph's canonical form leaves the default out
            node["cache"] = cache
        return self._add(node, tuple(inputs), wiring)

    def _sub(self, sub: Workflow | str, kind: str) -> tuple[str, set[str] | None, str]:
        if isinstance(sub, Workflow):
            if sub is self:
                raise WorkflowError(f"workflow {self.name!r} cannot include itself")
            digest = sub.digest()
            self._subworkflows[digest] = sub
            return digest, {i["id"] for i in sub._inputs}, sub.name
        if isinstance(sub, str) and sub:
            return sub, None, Path(sub).stem if not sub.startswith("sha256:") else kind
        raise WorkflowError(f"{kind}: expected a wfe.Workflow or a workflow file's path, got {type(sub).__name__}")

    def _split(self, node_id: str, keywords: dict[str, Any],
               ports: set[str] | None) -> tuple[dict[str, Handle], dict[str, Any]]:
        """Keyword handles (input ports, which must be among ``ports`` unless None) apart from config."""
        wiring = {k: v for k, v in keywords.items() if isinstance(v, Handle)}
        unknown = [name for name in wiring if ports is not None and name not in ports]
        if unknown:
            raise WorkflowError(
                f"node {node_id!r}: {unknown[0]!r} is given a node but is no input port "
                f"(ports: {', '.join(sorted(ports or ())) or 'none named'})"
            )
        return wiring, {k: v for k, v in keywords.items() if k not in wiring}

    def _config(self, node_id: str, config: dict[str, Any]) -> dict[str, Any]:
        try:
            text = json.dumps(config, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise WorkflowError(f"node {node_id!r}: config is not JSON: {exc}") from None
        return dict(json.loads(text))

    def _new_id(self, given: str | None, default: str) -> str:
        if given is not None:
            if not isinstance(given, str):
                raise WorkflowError(f"a node id is a string, got {given!r}")
            if given in self._ids:
                raise WorkflowError(f"duplicate node id {given!r}")
            self._ids.add(given)
            return given
        base = _ID_UNSAFE.sub("_", default)[:120].strip(".") or "node"
        candidate, count = base, 1
        while candidate in self._ids:
            count += 1
            candidate = f"{base}_{count}"
        self._ids.add(candidate)
        return candidate

    def _own(self, handle: Any, where: str) -> None:
        if not isinstance(handle, Handle):
            raise WorkflowError(f"{where}: expected a node of this workflow, got {type(handle).__name__}")
        if handle.workflow is not self:
            raise WorkflowError(
                f"{where}: node {handle.id!r} belongs to workflow {handle.workflow.name!r}, not {self.name!r}"
            )

    def _add(self, node: dict[str, Any], inputs: Iterable[Handle], wiring: dict[str, Handle]) -> Handle:
        edges = []
        for position, handle in enumerate(inputs):
            self._own(handle, f"node {node['id']!r} input {position + 1}")
            edges.append(_edge(handle, node["id"], None))
        for port, handle in wiring.items():
            self._own(handle, f"node {node['id']!r} input {port!r}")
            edges.append(_edge(handle, node["id"], port))
        self._nodes.append(node)
        self._edges.extend(edges)
        return Handle(self, node["id"])


def _edge(source: Handle, target: str, port: str | None) -> dict[str, Any]:
    edge: dict[str, Any] = {"source": source.id, "target": target}
    if source.port is not None:
        edge["source_port"] = source.port
    if port is not None:
        edge["target_port"] = port
    return edge


def module_beside(func: Callable[..., Any], folder: Path) -> str | None:
    """The name of ``func``'s module if it is a file (or package) in ``folder``; else None."""
    name = getattr(func, "__module__", None) or ""
    if not name.isidentifier() or name == "__main__":
        return None
    module_file = getattr(sys.modules.get(name), "__file__", None)
    if not module_file:
        return None
    path = Path(module_file).resolve()
    if path in (folder / f"{name}.py", folder / name / "__init__.py"):
        return name
    return None


def importable(func: Callable[..., Any]) -> str | None:
    """None if another process can import ``func`` by its reference; else why not."""
    module = getattr(func, "__module__", None) or ""
    if module in ("__main__", "__mp_main__"):
        return "is defined in __main__ (a script or notebook)"
    if "<locals>" in func.__qualname__:
        return "is defined inside another function"
    if not getattr(sys.modules.get(module), "__file__", None):
        return f"comes from module {module!r}, which has no file"
    return None


def check_reachable(entry: Registered, executor: Any) -> None:
    """ExecutorError if ``executor`` (a name) runs tasks where ``entry``'s function cannot be found."""
    if not isinstance(executor, str):
        return
    kind = executor.strip()
    if kind in ("", "inline", "threads"):
        return
    why = importable(entry.func)
    if why is None:
        return
    if kind == "processes":
        if multiprocessing.get_start_method(allow_none=False) == "fork":
            return  # the workers are forked from this process, registry and all
        raise ExecutorError(
            f"function {entry.name!r} {why}, and worker processes start fresh "
            f"({multiprocessing.get_start_method()}); move it into a module, or use --executor threads"
        )
    raise ExecutorError(
        f"function {entry.name!r} {why}, so {kind} workers cannot import it; "
        "move it into a module, or use the threads or processes executor"
    )


def _merged(node: str, config: Mapping[str, Any] | None, keywords: dict[str, Any]) -> dict[str, Any]:
    """The ``config`` mapping with the config keywords added; a key given both ways is an error."""
    if config is None:
        return keywords
    if not isinstance(config, Mapping):
        raise WorkflowError(f"node {node!r}: config must be a mapping of names to values, not {type(config).__name__}")
    odd = [key for key in config if not isinstance(key, str)]
    if odd:
        raise WorkflowError(f"node {node!r}: config keys are strings, not {odd[0]!r}")
    twice = sorted(set(config) & set(keywords))
    if twice:
        raise WorkflowError(f"node {node!r}: config key {twice[0]!r} is given both in config= and as a keyword")
    return {**config, **keywords}
