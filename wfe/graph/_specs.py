"""What a function takes and gives: input and output specs, and the stored function spec."""

from __future__ import annotations

from typing import Any

from .._shape import Field, Record, boolean, one_of, optional, record, slots, text, tuple_of
from ._mime import mime_base, validate_mime
from ._model import OutputKind

_mime = text(then=validate_mime)


class InputSpec(Record):
    """One declared input of a function: a MIME pattern, delivered decoded or as a local path."""

    FIELDS = (Field("mime", _mime), Field("as_path", boolean, False), Field("name", optional(text()), None))
    __slots__ = slots(FIELDS)
    FROZEN = True

    mime: str
    as_path: bool
    name: str | None


INLINE_LIMIT = 64 * 1024  # bytes of JSON an inline output may hold


class OutputSpec(Record):
    """One declared output: its MIME type, an optional port name and how it is kept.

    - ``persisted`` (default): a blob in the store.
    - ``ephemeral``: kept in memory for the run, never written; a consumer
      that needs it after a restart makes the producer run again.
    - ``inline``: a small JSON value kept in the action record itself.
    """

    FIELDS = (
        Field("mime", _mime),
        Field("name", optional(text()), None),
        Field("kind", one_of("persisted", "ephemeral", "inline"), "persisted"),
    )
    __slots__ = slots(FIELDS)
    FROZEN = True

    mime: str
    name: str | None
    kind: OutputKind

    def _after(self) -> None:
        base = mime_base(self.mime)
        if self.kind == "inline" and not (base == "application/json" or base.endswith("+json")):
            raise ValueError(f"an inline output must be JSON, not {self.mime}")


def _outputs(value: Any, where: Any) -> tuple[OutputSpec, ...]:
    if isinstance(value, (list, tuple)):  # a bare MIME type stands for an output of that type
        value = [{"mime": v} if isinstance(v, str) else v for v in value]
    return tuple_of(record(OutputSpec))(value, where)  # type: ignore[no-any-return]


class FunctionSpec(Record):
    """What the function store records for a name."""

    FIELDS = (
        Field("name", text(min_length=1, max_length=256)),
        Field("ref", text()),  # "module:qualname"
        Field("version", text()),
        Field("inputs", tuple_of(record(InputSpec)), ()),
        Field("outputs", _outputs, ()),
    )
    __slots__ = slots(FIELDS)
    FROZEN = True

    name: str
    ref: str
    version: str
    inputs: tuple[InputSpec, ...]
    outputs: tuple[OutputSpec, ...]

    @property
    def output_mimes(self) -> tuple[str, ...]:
        return tuple(o.mime for o in self.outputs)
