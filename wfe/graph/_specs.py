"""What a function takes and gives: input and output specs, and the stored function spec."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ._mime import mime_base, validate_mime
from ._model import OutputKind


class InputSpec(BaseModel):
    """One declared input of a function: a MIME pattern, delivered decoded or as a local path."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    mime: str
    as_path: bool = False
    name: str | None = None

    @field_validator("mime")
    @classmethod
    def _mime(cls, value: str) -> str:
        return validate_mime(value)


INLINE_LIMIT = 64 * 1024  # bytes of JSON an inline output may hold


class OutputSpec(BaseModel):
    """One declared output: its MIME type, an optional port name and how it is kept.

    - ``persisted`` (default): a blob in the store.
    - ``ephemeral``: kept in memory for the run, never written; a consumer
      that needs it after a restart makes the producer run again.
    - ``inline``: a small JSON value kept in the action record itself.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    mime: str
    name: str | None = None
    kind: OutputKind = "persisted"

    @field_validator("mime")
    @classmethod
    def _mime(cls, value: str) -> str:
        return validate_mime(value)

    @model_validator(mode="after")
    def _inline_is_json(self) -> OutputSpec:
        base = mime_base(self.mime)
        if self.kind == "inline" and not (base == "application/json" or base.endswith("+json")):
            raise ValueError(f"an inline output must be JSON, not {self.mime}")
        return self


class FunctionSpec(BaseModel):
    """What the function store records for a name."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    name: str = Field(min_length=1, max_length=256)
    ref: str  # "module:qualname"
    version: str
    inputs: tuple[InputSpec, ...] = ()
    outputs: tuple[OutputSpec, ...] = ()

    @field_validator("outputs", mode="before")
    @classmethod
    def _outputs(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return tuple(OutputSpec(mime=v) if isinstance(v, str) else v for v in value)
        return value

    @property
    def output_mimes(self) -> tuple[str, ...]:
        return tuple(o.mime for o in self.outputs)
