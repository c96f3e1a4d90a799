"""Records checked by hand: the workflow graph, function specs and run records.

A run validates a workflow, writes an action entry and a run record, and
reads a few back; none of it needs a schema library, and importing one costs
more than the rest of a small run. A :class:`Record` declares its fields as
``(name, check, default)``; a check takes a value and where it sits and
returns the value to keep, or raises :class:`RecordError` saying where and
what (``nodes.3.id: invalid node id '..'``). Checks are strict: no strings
taken for numbers, no numbers for booleans; a JSON integer is taken for a
float. Records dump to plain dicts and JSON with the usual names
(``model_validate``, ``model_validate_json``, ``model_dump``,
``model_dump_json``, ``model_copy``, ``model_extra``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Any, ClassVar, Literal, NamedTuple, TypeVar

from ._errors import RecordError

Where = tuple[str | int, ...]
Check = Callable[[Any, Where], Any]  # (value, where) -> value to keep; raises RecordError
R = TypeVar("R", bound="Record")


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


class Field(NamedTuple):
    name: str
    check: Check
    default: Any = REQUIRED
    factory: Callable[[], Any] | None = None  # a fresh default per record (a list, a dict)


def slots(fields: Iterable[Field], *more: str) -> tuple[str, ...]:
    """A record's ``__slots__``: its fields' names and ``more`` (``_extra`` where ``EXTRA = "allow"``)."""
    return (*(field.name for field in fields), *more)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def fail(where: Where, what: str) -> RecordError:
    return RecordError(".".join(str(part) for part in where), what)


# Checks. Each returns the value to keep.

def text(min_length: int = 0, max_length: int | None = None, then: Callable[[str], str] | None = None) -> Check:
    """A str within the lengths; ``then`` may check it further, raising ValueError with the reason."""

    def check(value: Any, where: Where) -> str:
        if not isinstance(value, str):
            raise fail(where, f"expected a string, not {_kind(value)}")
        if len(value) < min_length:
            raise fail(where, f"should have at least {min_length} character{'s' * (min_length != 1)}")
        if max_length is not None and len(value) > max_length:
            raise fail(where, f"should have at most {max_length} characters")
        if then is not None:
            try:
                return then(value)
            except ValueError as exc:
                raise fail(where, str(exc)) from None
        return value

    return check


def integer(ge: int | None = None, le: int | None = None) -> Check:
    def check(value: Any, where: Where) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise fail(where, f"expected an integer, not {_kind(value)}")
        if ge is not None and value < ge:
            raise fail(where, f"should be at least {ge}")
        if le is not None and value > le:
            raise fail(where, f"should be at most {le}")
        return value

    return check


def number(value: Any, where: Where) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(where, f"expected a number, not {_kind(value)}")
    return float(value)


def boolean(value: Any, where: Where) -> bool:
    if not isinstance(value, bool):
        raise fail(where, f"expected true or false, not {_kind(value)}")
    return value


MAX_DEPTH = 200  # how deeply a JSON value in a record may nest: far below what dumping it back would need


def _within(value: Any, limit: int) -> bool:
    """Whether the lists and objects in ``value`` nest at most ``limit`` deep (counted without recursing)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list, tuple)))
    return True


def anything(value: Any, where: Where) -> Any:
    """Any JSON value, nested at most :data:`MAX_DEPTH` deep (a record from a store may be hostile)."""
    if isinstance(value, (dict, list, tuple)) and not _within(value, MAX_DEPTH):
        raise fail(where, f"nested deeper than {MAX_DEPTH} levels")
    return value


def one_of(*choices: str) -> Check:
    shown = " or ".join(filter(None, (", ".join(map(repr, choices[:-1])), repr(choices[-1]))))

    def check(value: Any, where: Where) -> str:
        if not isinstance(value, str) or value not in choices:
            raise fail(where, f"should be {shown}, not {value!r:.60}")
        return value

    return check


def optional(inner: Check) -> Check:
    def check(value: Any, where: Where) -> Any:
        return None if value is None else inner(value, where)

    return check


def list_of(inner: Check, min_length: int = 0, max_length: int | None = None) -> Check:
    """A JSON array (a list or tuple) checked item by item, kept as a list."""

    def check(value: Any, where: Where) -> list[Any]:
        if not isinstance(value, (list, tuple)):
            raise fail(where, f"expected a list, not {_kind(value)}")
        if len(value) < min_length:
            raise fail(where, f"List should have at least {min_length} item{'s' * (min_length != 1)}")
        if max_length is not None and len(value) > max_length:
            raise fail(where, f"List should have at most {max_length} items")
        return [inner(item, (*where, index)) for index, item in enumerate(value)]

    return check


def tuple_of(inner: Check) -> Check:
    items = list_of(inner)

    def check(value: Any, where: Where) -> tuple[Any, ...]:
        return tuple(items(value, where))

    return check


def mapping(inner: Check = anything) -> Check:
    """A JSON object: a dict with str keys, each value checked."""

    def check(value: Any, where: Where) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise fail(where, f"expected an object, not {_kind(value)}")
        for key in value:
            if not isinstance(key, str):
                raise fail(where, f"expected string keys, not {_kind(key)}")
        if inner is anything:
            anything(value, where)
            return value
        return {key: inner(item, (*where, key)) for key, item in value.items()}

    return check


def record(cls: type[R]) -> Check:
    """A record of ``cls``: one already built is kept as it is, a dict is checked."""

    def check(value: Any, where: Where) -> R:
        return value if isinstance(value, cls) else cls._from(value, where)

    return check


_PLAIN = frozenset({str, int, float, bool, type(None)})
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)  # made once: each dumps() makes one


def compact_json(value: Any) -> str:
    """``value`` as compact JSON, non-ASCII kept as it is."""
    return _COMPACT.encode(value)


def dump_value(value: Any, json_mode: bool, exclude_none: bool) -> Any:
    """A field's value as :meth:`Record.model_dump` gives it: records as dicts, containers copied."""
    if type(value) in _PLAIN:
        return value
    if isinstance(value, Record):
        return value._dump(json_mode, exclude_none, None)
    if isinstance(value, (list, tuple)):
        items = [item if type(item) in _PLAIN else dump_value(item, json_mode, exclude_none) for item in value]
        return items if json_mode or isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {key: item if type(item) in _PLAIN else dump_value(item, json_mode, exclude_none)
                for key, item in value.items()}
    return value


def _rebuild(cls: type[R], values: tuple[Any, ...], extra: dict[str, Any] | None) -> R:
    made = object.__new__(cls)
    for field, value in zip(cls.FIELDS, values, strict=True):
        object.__setattr__(made, field.name, value)
    if cls.EXTRA == "allow":
        object.__setattr__(made, "_extra", extra)
    return made


class Record:
    """A record of declared fields, checked when built, dumped to JSON-ready dicts.

    A subclass lists ``FIELDS`` then ``__slots__ = slots(FIELDS)`` (plus
    ``"_extra"`` if ``EXTRA == "allow"``), and may override :meth:`_after` for
    checks across fields. ``EXTRA`` says what a key it does not declare does:
    ``forbid`` (an error), ``ignore`` (dropped: a newer wfe's field) or
    ``allow`` (kept, in :attr:`model_extra`). A ``FROZEN`` record is hashable
    and refuses assignment.
    """

    __slots__ = ()
    FIELDS: ClassVar[tuple[Field, ...]] = ()
    EXTRA: ClassVar[Literal["forbid", "ignore", "allow"]] = "forbid"
    FROZEN: ClassVar[bool] = False
    _NAMES: ClassVar[frozenset[str]] = frozenset()
    _FIELD_NAMES: ClassVar[tuple[str, ...]] = ()
    _VALUES: ClassVar[Callable[..., tuple[Any, ...]]]

    def __init__(self, **data: Any) -> None:
        self._fill(data, ())

    def _fill(self, data: dict[str, Any], where: Where) -> None:
        put = object.__setattr__
        given = 0
        for field in self.FIELDS:
            value = data.get(field.name, REQUIRED)
            if value is REQUIRED:
                if field.factory is not None:
                    value = field.factory()
                elif field.default is REQUIRED:
                    raise fail((*where, field.name), "Field required")
                else:
                    value = field.default
            else:
                given += 1
                value = field.check(value, (*where, field.name))
            put(self, field.name, value)
        extra = None
        if given < len(data):  # keys it does not declare
            names = self._NAMES
            extra = {key: value for key, value in data.items() if key not in names}
            if self.EXTRA == "forbid":
                raise fail((*where, str(next(iter(extra)))), "unknown key")
            if self.EXTRA == "allow":
                extra = {key: anything(value, (*where, key)) for key, value in extra.items()}
        if self.EXTRA == "allow":
            put(self, "_extra", extra)
        try:
            self._after()
        except RecordError as exc:
            prefix = ".".join(str(part) for part in where)
            raise RecordError(".".join(p for p in (prefix, exc.where) if p), exc.what) from None
        except ValueError as exc:
            raise fail(where, str(exc)) from None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names = tuple(field.name for field in cls.FIELDS)
        cls._FIELD_NAMES = names
        cls._NAMES = frozenset(names)
        cls._VALUES = attrgetter(*names) if len(names) > 1 else (lambda record: (getattr(record, names[0]),))
        if not cls.FROZEN and cls.EXTRA != "allow":
            cls.__setattr__ = object.__setattr__  # type: ignore[assignment]  # nothing to refuse or keep aside

    @classmethod
    def construct(cls: type[R], **values: Any) -> R:
        """A record of values wfe made or checked itself, not checked again (every field given)."""
        return _rebuild(cls, tuple(values[name] for name in cls._FIELD_NAMES), None)

    def _after(self) -> None:
        """Checks across fields, once every field is in: raise ValueError with the reason."""

    @classmethod
    def _from(cls: type[R], data: Any, where: Where) -> R:
        if not isinstance(data, dict):
            raise fail(where, f"expected an object, not {_kind(data)}")
        made = object.__new__(cls)
        made._fill(data, where)
        return made

    @classmethod
    def model_validate(cls: type[R], data: Any) -> R:
        """``data`` as a record of this class: one already is returned as it is; a dict is checked."""
        return data if isinstance(data, cls) else cls._from(data, ())

    @classmethod
    def model_validate_json(cls: type[R], data: bytes | str) -> R:
        """A record from its JSON; JSON that does not parse, or nests past Python's limit, is a RecordError."""
        try:
            document = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise fail((), f"invalid JSON: {str(exc)[:200] or type(exc).__name__}") from None
        return cls._from(document, ())

    def _dump(self, json_mode: bool, exclude_none: bool, exclude: Iterable[str] | None) -> dict[str, Any]:
        pairs = zip(self._FIELD_NAMES, self._VALUES(self), strict=True)
        if exclude is not None:
            pairs = ((name, value) for name, value in pairs if name not in exclude)  # type: ignore[assignment]
        out = {name: value for name, value in pairs if value is not None} if exclude_none else dict(pairs)
        for name, value in out.items():  # values replaced in place: the keys stay as they are
            if type(value) not in _PLAIN:
                out[name] = dump_value(value, json_mode, exclude_none)
        if self.EXTRA == "allow":
            for key, value in (self.model_extra or {}).items():
                if not (exclude_none and value is None) and (exclude is None or key not in exclude):
                    out[key] = dump_value(value, json_mode, exclude_none)
        return out

    def model_dump(self, *, mode: Literal["json", "python"] = "python", exclude_none: bool = False,
                   exclude: Iterable[str] | None = None) -> dict[str, Any]:
        """The fields as a dict (nested records as dicts; in ``json`` mode, tuples as lists)."""
        return self._dump(mode == "json", exclude_none, exclude)

    def model_dump_json(self, *, exclude_none: bool = False) -> str:
        """Compact JSON of :meth:`model_dump` in ``json`` mode."""
        return compact_json(self._dump(True, exclude_none, None))

    def to_json(self, *, exclude_none: bool = True) -> bytes:
        """The record as stored: compact UTF-8 JSON."""
        return self.model_dump_json(exclude_none=exclude_none).encode("utf-8")

    def model_copy(self: R, *, update: dict[str, Any] | None = None) -> R:
        """A shallow copy with ``update``'s fields replaced (not checked, as they were given by code)."""
        copy = _rebuild(type(self), self._values(), dict(self.model_extra or {}) or None)
        for name, value in (update or {}).items():
            if name not in self._NAMES:
                raise AttributeError(f"{type(self).__name__} has no field {name!r}")
            object.__setattr__(copy, name, value)
        return copy

    @property
    def model_extra(self) -> dict[str, Any] | None:
        """Keys a record of ``EXTRA = "allow"`` was given beyond its fields (None if none or not allowed)."""
        return getattr(self, "_extra", None) if self.EXTRA == "allow" else None

    def _values(self) -> tuple[Any, ...]:
        return self._VALUES(self)

    def __setattr__(self, name: str, value: Any) -> None:
        if self.FROZEN:
            raise AttributeError(f"{type(self).__name__} is frozen: {name} cannot be set")
        if self.EXTRA == "allow" and name not in self._NAMES and not name.startswith("_"):
            extra = self.model_extra
            if extra is None:
                extra = {}
                object.__setattr__(self, "_extra", extra)
            extra[name] = value  # an extra field, kept and dumped with the others
            return
        object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:  # only for names not found otherwise: an extra field
        try:
            extra = object.__getattribute__(self, "_extra")
        except AttributeError:
            extra = None
        if extra and name in extra:
            return extra[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Record)
        return self._values() == other._values() and self.model_extra == other.model_extra

    def __hash__(self) -> int:
        if not self.FROZEN:
            raise TypeError(f"unhashable type: {type(self).__name__!r}")
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        shown = ", ".join(f"{field.name}={getattr(self, field.name)!r}" for field in self.FIELDS)
        return f"{type(self).__name__}({shown})"

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (type(self), self._values(), self.model_extra)
