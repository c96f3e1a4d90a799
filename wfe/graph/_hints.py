"""MIME types from type hints, for a function registered without ``inputs=`` or ``outputs=``.

:func:`wfe.function` declares inputs and outputs by MIME type. Where a side
is not declared, it is read from the function's type hints
(``typing.get_type_hints``, so ``from __future__ import annotations`` works);
a declared side is used exactly as given, hints or not. Each hint maps to:

=====================================  ================================  ==============================================
hint                                   MIME type                         what the function receives / may return
=====================================  ================================  ==============================================
``str``                                ``text/plain``                    a ``str``
``bytes``                              ``application/octet-stream``      ``bytes``
``pathlib.Path``                       ``application/octet-stream``      input: a ``Path`` to a verified local copy;
                                                                         output: a ``Path`` whose file is stored
``dict``, ``list``, ``int``,           ``application/json``              the decoded JSON value, as is (not validated)
``float``, ``bool``, ``list[int]``,
``dict[str, X]``, ``TypedDict``,
``Literal[...]``, ``X | None``
pydantic model, dataclass (or a        ``application/json``              input: validated into the hinted type;
JSON hint holding them:                                                  output: dumped with pydantic's
``list[Model]``, ``Model | None``)                                       ``TypeAdapter(hint).dump_python(mode="json")``
``pandas.DataFrame``                   ``application/vnd.apache.parquet``  input: ``Table.to_pandas()``; output: stored
                                                                         without its index
``pyarrow.Table``                      ``application/vnd.apache.parquet``  a ``pyarrow.Table``
``numpy.ndarray`` (``NDArray[...]``)   ``application/x-npy``             a NumPy array
=====================================  ================================  ==============================================

- **Inputs** are the positional parameters without a default, in order;
  keyword-only and defaulted parameters (and ``*args``, ``**kwargs``) are
  config. Each input becomes a port named after its parameter. If no input
  parameter is hinted the function has no inputs, as before hints were
  read; if some are and some are not, that is an error.
- **Outputs** come from the return hint: one output, or one per element of
  ``tuple[A, B]``. ``-> None`` is no outputs; no return hint keeps the
  default, one ``application/octet-stream`` output.
- **JSON** is chosen only where a value round-trips through it: ``dict``
  keys must be ``str``; ``tuple``, ``set``, ``bytes`` inside JSON, ``Any``
  or ``object`` on their own (they name no type) and anything else are an
  error at decoration. Inside a JSON hint, ``str``, ``Any`` and ``object``
  are plain JSON values. A union maps to JSON when every member is JSON
  (``None`` is JSON only: ``str | None`` is JSON, not text), else to the one
  MIME type all its members share (``bytes | Path`` output), else it is an
  error. ``Annotated[X, ...]`` is ``X``.
- Conversions (pydantic models, dataclasses, ``Path`` and ``pandas`` inputs)
  apply only to inferred sides: a declared side delivers and stores values
  exactly as its MIME type's codec does.
- pandas, pyarrow and NumPy are imported only for a hint from one of them.

A hint that cannot be resolved or maps to no MIME type is a one-line
:class:`HintError` (a :class:`wfe.FunctionError` and a ``TypeError``)
naming the function and the parameter, raised when the function is
registered. Inference leaves the function's derived version alone: that is
computed from its code only.
"""

from __future__ import annotations

import dataclasses
import inspect
import pathlib
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

from .._errors import FunctionError
from ._specs import InputSpec, OutputSpec

JSON = "application/json"
TEXT = "text/plain"
BYTES = "application/octet-stream"
PARQUET = "application/vnd.apache.parquet"
NPY = "application/x-npy"

Convert = Callable[[Any], Any]


class HintError(FunctionError, TypeError):
    """A type hint that cannot be resolved, or names no MIME type, on a function being registered."""


@dataclasses.dataclass(frozen=True)
class Mapped:
    """What one hint maps to: a MIME type, a path input or not, and conversions to apply."""

    mime: str
    as_path: bool = False
    load: Convert | None = None  # the decoded input -> the hinted type
    dump: Convert | None = None  # the returned value -> what the codec stores


@dataclasses.dataclass(frozen=True)
class Conversions:
    """Per-input and per-output conversions of a function whose hints need them."""

    loads: tuple[Convert | None, ...]
    dumps: tuple[Convert | None, ...]

    def __call__(self, func: Callable[..., Any], args: Sequence[Any], config: dict[str, Any]) -> Any:
        loads = self.loads
        converted = [load(arg) if load is not None else arg for load, arg in zip(loads, args, strict=False)]
        value = func(*converted, *args[len(loads):], **config)
        dumps = self.dumps
        if len(dumps) == 1:
            return value if dumps[0] is None else dumps[0](value)
        if any(dumps) and isinstance(value, tuple) and len(value) == len(dumps):
            return tuple(item if dump is None else dump(item) for dump, item in zip(dumps, value, strict=True))
        return value  # a wrong shape is reported where outputs are stored


@dataclasses.dataclass(frozen=True)
class Hinted:
    """What the hints give: inputs and outputs (None for a side left as declared) and the conversions."""

    inputs: tuple[InputSpec, ...] | None
    outputs: tuple[OutputSpec, ...] | None
    conversions: Conversions | None


def from_hints(func: Callable[..., Any], *, inputs: bool, outputs: bool) -> Hinted:
    """Infer the sides asked for (``inputs``, ``outputs``) from ``func``'s hints; HintError if one maps to nothing."""
    if not inputs and not outputs:
        return Hinted(None, None, None)
    where = getattr(func, "__name__", repr(func))
    parameters = list(inspect.signature(func).parameters.values())
    candidates = [p.name for p in parameters if p.kind in _POSITIONAL and p.default is inspect.Parameter.empty]
    annotated = set(inspect.get_annotations(func))
    wanted = ([n for n in candidates if n in annotated] if inputs else []) + (
        ["return"] if outputs and "return" in annotated else []
    )
    hints = _resolve(func, wanted, where)

    input_specs: tuple[InputSpec, ...] | None = None
    loads: tuple[Convert | None, ...] = ()
    if inputs and any(n in hints for n in candidates):
        missing = [n for n in candidates if n not in hints]
        if missing:
            raise HintError(
                f"{where}: parameter {missing[0]!r} has no type hint; hint every input parameter "
                "(positional, without a default) or declare inputs="
            )
        mapped = [_top(hints[n], "input", f"{where}: parameter {n!r}") for n in candidates]
        input_specs = tuple(InputSpec(mime=m.mime, as_path=m.as_path, name=n) for n, m in zip(candidates, mapped,
                                                                                               strict=True))
        loads = tuple(m.load for m in mapped)

    output_specs: tuple[OutputSpec, ...] | None = None
    dumps: tuple[Convert | None, ...] = ()
    if outputs and "return" in hints:
        returned = _strip(hints["return"])
        if returned is None or returned is type(None):
            output_specs = ()
        else:
            label = f"{where}: return hint"
            if typing.get_origin(returned) is tuple or returned is tuple:
                elements = typing.get_args(returned)
                if not elements or elements[-1] is Ellipsis or elements == ((),):
                    raise HintError(
                        f"{label} {_show(returned)} gives no number of outputs; "
                        "hint tuple[A, B] for several outputs, or declare outputs="
                    )
                outs = [_top(e, "output", f"{label} element {i}") for i, e in enumerate(elements)]
            else:
                outs = [_top(returned, "output", label)]
            output_specs = tuple(OutputSpec(mime=m.mime) for m in outs)
            dumps = tuple(m.dump for m in outs)

    conversions = Conversions(loads, dumps) if any(loads) or any(dumps) else None
    return Hinted(input_specs, output_specs, conversions)


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _resolve(func: Callable[..., Any], names: list[str], where: str) -> dict[str, Any]:
    """The resolved hints of ``names``; a hint elsewhere that cannot be resolved does not matter."""
    if not names:
        return {}
    try:
        every = typing.get_type_hints(func, include_extras=True)
        return {n: every[n] for n in names if n in every}
    except Exception:  # some hint fails: find out whether it is one that matters
        pass
    raw = inspect.get_annotations(func)
    resolved = {}
    for name in names:
        def holder() -> None: ...

        holder.__annotations__ = {name: raw[name]}
        try:
            resolved[name] = typing.get_type_hints(holder, globalns=getattr(func, "__globals__", {}),
                                                   include_extras=True)[name]
        except Exception as exc:  # NameError, SyntaxError, TypeError: all mean the same here
            what = "return hint" if name == "return" else f"parameter {name!r}"
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            shown = raw[name] if isinstance(raw[name], str) else _show(raw[name])
            raise HintError(f"{where}: cannot resolve the type hint of {what} ({shown}): {why}") from None
    return resolved


def _strip(hint: Any) -> Any:
    while typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    return hint


def _show(hint: Any) -> str:
    if isinstance(hint, type) and not typing.get_args(hint):
        plain = hint.__module__ in ("builtins", "typing")
        return hint.__qualname__ if plain else f"{hint.__module__}.{hint.__qualname__}"
    return repr(hint).replace("typing.", "")


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _top(hint: Any, role: str, label: str) -> Mapped:
    """The mapping of an input's or output's whole hint; HintError naming ``label`` if there is none."""
    hint = _strip(hint)
    origin = typing.get_origin(hint) or hint
    if isinstance(origin, type):
        if issubclass(origin, pathlib.PurePath):
            return Mapped(BYTES, as_path=role == "input", load=origin if role == "input" else None)
        if origin is str:
            return Mapped(TEXT)
        if origin is bytes:
            return Mapped(BYTES)
        library = _library_type(origin, role)
        if library is not None:
            return library
    if hint in (Any, object):
        raise HintError(f"{label}: hint {_show(hint)} names no MIME type; hint a type or declare {role}s=")
    if _is_union(hint):
        members = [_strip(m) for m in typing.get_args(hint)]
        if not all(m is str for m in members) and all(_json(m, set()) is not None for m in members):
            return _json_mapping(hint, label)
        mapped = [_try(m, role) for m in members if m is not type(None)]
        if type(None) not in members and all(m is not None and m == mapped[0] and m.load is None
                                               and m.dump is None for m in mapped):
            return mapped[0]  # type: ignore[return-value]
        raise HintError(f"{label}: hint {_show(hint)} has no single MIME type; use one type or declare {role}s=")
    if _json(hint, set()) is not None:
        return _json_mapping(hint, label)
    raise HintError(f"{label}: hint {_show(hint)} maps to no MIME type; declare {role}s= with its MIME type")


def _try(hint: Any, role: str) -> Mapped | None:
    try:
        return _top(hint, role, "")
    except HintError:
        return None


def _library_type(cls: type, role: str) -> Mapped | None:
    """pandas, pyarrow and NumPy types, imported only when the hint comes from one of them."""
    module = getattr(cls, "__module__", "") or ""
    if module.startswith("pandas"):
        import pandas

        if issubclass(cls, pandas.DataFrame):
            return Mapped(PARQUET, load=_to_pandas if role == "input" else None)
    elif module.startswith("pyarrow"):
        import pyarrow

        if issubclass(cls, pyarrow.Table):
            return Mapped(PARQUET)
    elif module.startswith("numpy"):
        import numpy

        if issubclass(cls, numpy.ndarray):
            return Mapped(NPY)
    return None


def _to_pandas(table: Any) -> Any:
    return table.to_pandas()


def _json_mapping(hint: Any, label: str) -> Mapped:
    if not _json(hint, set()):
        return Mapped(JSON)
    from pydantic import TypeAdapter

    try:
        adapter: Any = TypeAdapter(hint)
    except Exception as exc:  # pydantic cannot build a schema: the hint is no JSON
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HintError(f"{label}: hint {_show(hint)} cannot be converted to JSON: {first}") from None
    return Mapped(JSON, load=adapter.validate_python,
                  dump=lambda value: adapter.dump_python(value, mode="json", warnings=False))


def _json(hint: Any, seen: set[int]) -> bool | None:
    """None if values of ``hint`` do not round-trip through JSON; else whether they need converting."""
    hint = _strip(hint)
    if hint in (Any, object, None, type(None), bool, int, float, str, dict, list):
        return False
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Literal:
        return False if all(v is None or isinstance(v, (bool, int, float, str)) for v in args) else None
    if _is_union(hint) or origin is list:
        found = [_json(a, seen) for a in args]
        return None if None in found else any(found)
    if origin is dict:
        if not args:
            return False
        if _strip(args[0]) not in (str, Any):
            return None
        return _json(args[1], seen)
    if not isinstance(hint, type):
        return None
    if id(hint) in seen:
        return False
    seen.add(id(hint))
    if typing.is_typeddict(hint):
        try:
            fields = typing.get_type_hints(hint, include_extras=True)
        except Exception:  # an unresolvable field: not a JSON hint we can vouch for
            return None
        found = [_json(f, seen) for f in fields.values()]
        return None if None in found else any(found)
    from pydantic import BaseModel

    if issubclass(hint, BaseModel) or dataclasses.is_dataclass(hint):
        return True
    return None
