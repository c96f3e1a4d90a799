"""Registering functions, the allow-list, and versions derived from code.

A function name resolves only to code the user registered with
:func:`wfe.function` in a module the user imported (directly, through the
workflow file's ``modules``, or ``--allow-module``). A stored
:class:`FunctionSpec` naming anything else is refused: reading a store is
never enough to run code.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
import textwrap
import types
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from .._errors import FunctionNotAllowedError, UnknownFunctionError, WorkflowError
from ._hints import Conversions, from_hints
from ._mime import validate_mime
from ._model import OutputKind
from ._specs import FunctionSpec, InputSpec, OutputSpec

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Input:
    """A declared input: ``Input("text/csv")`` or ``Input("application/octet-stream", as_path=True)``."""

    mime: str
    as_path: bool = False
    name: str | None = None


@dataclass
class Registered:
    name: str
    func: Callable[..., Any]
    inputs: tuple[InputSpec, ...]
    outputs: tuple[OutputSpec, ...]
    explicit_version: str | None
    _spec: FunctionSpec | None = field(default=None, repr=False)
    conversions: Conversions | None = field(default=None, repr=False)  # from type hints, see _hints

    def call(self, *args: Any, **config: Any) -> Any:
        """Call the function as a node does: inputs converted to their hinted types, outputs to what is stored."""
        if self.conversions is None:
            return self.func(*args, **config)
        return self.conversions(self.func, args, config)

    @property
    def ref(self) -> str:
        return f"{self.func.__module__}:{self.func.__qualname__}"

    @property
    def spec(self) -> FunctionSpec:
        if self._spec is None:
            version = self.explicit_version or derive_version(self.func)
            self._spec = FunctionSpec(
                name=self.name, ref=self.ref, version=version, inputs=self.inputs, outputs=self.outputs
            )
        return self._spec


_REGISTRY: dict[str, Registered] = {}


@dataclass(frozen=True)
class Output:
    """A declared output: ``Output("application/json", name="totals", kind="inline")``.

    ``kind`` is ``persisted`` (a blob, the default), ``ephemeral`` (kept in
    memory for the run, never stored) or ``inline`` (small JSON kept in the
    action record).
    """

    mime: str
    name: str | None = None
    kind: OutputKind = "persisted"


def _as_output(value: str | Output | OutputSpec) -> OutputSpec:
    if isinstance(value, OutputSpec):
        return value
    if isinstance(value, Output):
        return OutputSpec(mime=value.mime, name=value.name, kind=value.kind)
    return OutputSpec(mime=validate_mime(value))


def _as_input(value: str | Input | InputSpec) -> InputSpec:
    if isinstance(value, InputSpec):
        return value
    if isinstance(value, Input):
        return InputSpec(mime=value.mime, as_path=value.as_path, name=value.name)
    return InputSpec(mime=validate_mime(value))


@overload
def function(func: F) -> F: ...
@overload
def function(
    *,
    name: str | None = ...,
    version: str | None = ...,
    inputs: Sequence[str | Input] | None = ...,
    outputs: Sequence[str | Output] | str | Output | None = ...,
) -> Callable[[F], F]: ...


def function(
    func: F | None = None,
    *,
    name: str | None = None,
    version: str | None = None,
    inputs: Sequence[str | Input] | None = None,
    outputs: Sequence[str | Output] | str | Output | None = None,
) -> F | Callable[[F], F]:
    """Register a function for workflows; returns it unchanged.

    ``inputs`` are MIME types matched against upstream outputs, delivered in
    order as positional arguments (JSON decoded, text as ``str``, else bytes,
    or a local path with ``Input(mime, as_path=True)``); the node's config is
    passed as keyword arguments. ``outputs`` are the MIME types of what the
    function returns (one value, or a tuple for several). ``version``
    overrides the version derived from the code.

    A side not declared is read from the type hints (see :mod:`wfe.graph._hints`):
    inputs from the positional parameters without a default, outputs from the
    return hint. Without hints, a function has no inputs and one
    ``application/octet-stream`` output.
    """

    def register(target: F) -> F:
        if not inspect.isfunction(target):
            raise TypeError("@wfe.function registers plain functions")
        registered_name = name or target.__name__
        hinted = from_hints(target, inputs=inputs is None, outputs=outputs is None)
        listed = (
            ("application/octet-stream",) if outputs is None
            else (outputs,) if isinstance(outputs, (str, Output)) else tuple(outputs)
        )
        declared_outputs = hinted.outputs if hinted.outputs is not None else tuple(_as_output(o) for o in listed)
        declared_inputs = hinted.inputs if hinted.inputs is not None else tuple(_as_input(i) for i in inputs or ())
        for kind, ports in (("input", [i.name for i in inputs or () if isinstance(i, Input)]),
                            ("output", [o.name for o in declared_outputs])):
            named = [p for p in ports if p is not None]
            if len(named) != len(set(named)):
                raise ValueError(f"{target.__name__}: duplicate {kind} port names {named}")
        entry = Registered(
            name=registered_name,
            func=target,
            inputs=declared_inputs,
            outputs=declared_outputs,
            explicit_version=str(version) if version is not None else None,
            conversions=hinted.conversions,
        )
        existing = _REGISTRY.get(registered_name)
        if existing is not None and existing.ref != entry.ref:
            raise ValueError(f"function name {registered_name!r} is already registered by {existing.ref}")
        _REGISTRY[registered_name] = entry
        return target

    return register(func) if func is not None else register


def registered_functions() -> dict[str, Registered]:
    return dict(_REGISTRY)


def resolve(name: str) -> Registered:
    """The registered function called ``name``; UnknownFunctionError lists what is known."""
    entry = _REGISTRY.get(name)
    if entry is None:
        import difflib

        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        known = ", ".join(sorted(_REGISTRY)[:20]) or "none registered"
        raise UnknownFunctionError(f"unknown function {name!r} ({hint}registered: {known})")
    return entry


def resolve_spec(spec: FunctionSpec) -> Registered:
    """Resolve a stored spec, refusing any reference outside the allow-list."""
    entry = _REGISTRY.get(spec.name)
    if entry is None or entry.ref != spec.ref:
        raise FunctionNotAllowedError(
            f"stored function {spec.name!r} names {spec.ref!r}, which is not registered code; "
            "import or allow its module first"
        )
    return entry


def allow_modules(modules: Iterable[str]) -> None:
    """Import modules the user allows (installed or on ``sys.path``), running their registrations."""
    for module_name in modules:
        if not all(part.isidentifier() for part in module_name.split(".")):
            raise FunctionNotAllowedError(f"allowed module {module_name!r} is not a module name (e.g. package.module)")
        try:
            importlib.import_module(module_name)
        except ImportError as exc:
            raise FunctionNotAllowedError(f"cannot import allowed module {module_name!r}: {exc}") from None


def load_workflow_modules(directory: str, modules: Iterable[str]) -> None:
    """Import the modules a workflow file lists; each must be a file in the workflow's folder.

    Restricting them to the workflow's own folder means a workflow file can
    load its own code but cannot make wfe import anything else installed.
    """
    directory = os.path.abspath(directory)
    for module_name in modules:
        if not isinstance(module_name, str) or not module_name.isidentifier():
            raise WorkflowError(f"modules: {module_name!r} is not a module name (a .py file beside the workflow)")
        candidates = [os.path.join(directory, module_name + ".py"), os.path.join(directory, module_name, "__init__.py")]
        path = next((c for c in candidates if os.path.isfile(c)), None)
        if path is None:
            raise WorkflowError(f"modules: no {module_name}.py beside the workflow in {directory}")
        loaded = sys.modules.get(module_name)
        if loaded is not None:
            if os.path.abspath(getattr(loaded, "__file__", "") or "") != path:
                raise WorkflowError(
                    f"modules: {module_name!r} is already imported from {getattr(loaded, '__file__', '?')}, not {path}"
                )
            continue
        if directory not in sys.path:
            sys.path.insert(0, directory)
        try:
            importlib.import_module(module_name)
        except Exception as exc:
            sys.modules.pop(module_name, None)
            raise WorkflowError(f"modules: importing {path} failed: {type(exc).__name__}: {exc}") from None


# Deriving a version from code ------------------------------------------------------------

_CONSTANT_TYPES = (type(None), bool, int, float, complex, str, bytes)


def derive_version(func: Callable[..., Any]) -> str:
    """A digest of the function's code and of the same-module code and constants it uses.

    Covers: the function's own source (as an AST, so comments, blank lines
    and docstrings do not count); every function and class of the same module
    it refers to, transitively; module-level constants it reads. Code from
    other modules counts by name only: pin those with an explicit version.
    """
    hasher = hashlib.sha256()
    _visit(func, hasher, set())
    return "auto:" + hasher.hexdigest()[:20]


def _visit(obj: Any, hasher: Any, seen: set[int]) -> None:
    if id(obj) in seen:
        return
    seen.add(id(obj))
    hasher.update(f"<{getattr(obj, '__qualname__', type(obj).__name__)}>".encode())
    hasher.update(_source_fingerprint(obj))
    module_name = getattr(obj, "__module__", None)
    module_globals = getattr(obj, "__globals__", None)
    if module_globals is None and module_name in sys.modules:
        module_globals = vars(sys.modules[module_name])
    for name in sorted(_referenced_names(obj)):
        if module_globals is None or name not in module_globals:
            continue
        value = module_globals[name]
        hasher.update(f"|{name}=".encode())
        if (inspect.isfunction(value) or inspect.isclass(value)) and getattr(value, "__module__", None) == module_name:
            _visit(value, hasher, seen)
        elif isinstance(value, types.ModuleType):
            hasher.update(f"module:{value.__name__}".encode())
        elif _is_constant(value):
            hasher.update(repr(value).encode())
        elif callable(value):
            hasher.update(f"ref:{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', '?')}".encode())
        else:
            hasher.update(f"type:{type(value).__module__}.{type(value).__qualname__}".encode())


def _is_constant(value: Any, depth: int = 0) -> bool:
    if isinstance(value, _CONSTANT_TYPES):
        return True
    if depth > 6:
        return False
    if isinstance(value, (tuple, list, frozenset, set)):
        return len(value) <= 10_000 and all(_is_constant(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return len(value) <= 10_000 and all(
            _is_constant(k, depth + 1) and _is_constant(v, depth + 1) for k, v in value.items()
        )
    return False


def _source_fingerprint(obj: Any) -> bytes:
    try:
        source = textwrap.dedent(inspect.getsource(obj))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        code = getattr(obj, "__code__", None)
        if code is None:
            return repr(obj).encode()
        return bytes(code.co_code) + repr(code.co_consts).encode()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=False, include_attributes=False).encode()


def _referenced_names(obj: Any) -> set[str]:
    names: set[str] = set()
    code = getattr(obj, "__code__", None)
    if code is not None:
        stack = [code]
        while stack:
            current = stack.pop()
            names.update(current.co_names)
            stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
        return names
    if inspect.isclass(obj):
        for member in vars(obj).values():
            target = getattr(member, "__func__", member)
            if inspect.isfunction(target):
                names |= _referenced_names(target)
    return names
