"""Codecs: stored bytes <-> Python values, chosen by MIME type.

Built in: JSON (``application/json`` and ``+json``), text (``text/*``) and
raw bytes (everything else). More come from the ``wfe.codecs`` entry point
group (name: a MIME type, value: ``"module:Class"``), loaded on first use;
wfe ships Parquet (pyarrow tables, pandas frames), NumPy arrays and pickle
that way, and any package can add its own. Users may also call
:func:`register_codec`.

Pickle decodes only when the user opts in (``WFE_ALLOW_PICKLE=1``): a
pickle runs code when loaded, and a shared store is not a trusted source.
"""

from __future__ import annotations

import functools
import importlib
import io
import json
import os
from typing import Any

from .._errors import WfeError
from ._mime import mime_base

Encoded = Any  # bytes, an os.PathLike to stream from, or a binary file object

# A mapped node's output: a JSON list of the element artifacts. A function that declares an
# input of this type receives the list of decoded element values.
ARTIFACT_LIST = "application/vnd.wfe.artifacts+json"


_OUTPUT_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)  # made once, used per node


def encode_json(value: Any) -> bytes:
    """The one JSON encoding of output values (deterministic for a given value)."""
    return _OUTPUT_JSON.encode(value).encode("utf-8")


# What json.loads runs, without its encoding and whitespace checks (set in __init__; typeshed does not list it).
_SCAN = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def decode_json(data: bytes | str) -> Any:
    """``json.loads(data)``, several times faster for the usual case (UTF-8, nothing around the value).

    Anything else (another encoding, a byte order mark, whitespace, trailing
    data, no JSON at all) goes to ``json.loads`` itself, which decides. Nesting too deep for the
    parser is a ValueError, as any other bad JSON.
    """
    try:
        try:
            text = data.decode("utf-8") if isinstance(data, bytes) else data
            value, end = _SCAN(text, 0)
        except (UnicodeDecodeError, StopIteration, ValueError):
            return json.loads(data)
        if end != len(text):
            return json.loads(data)
        return value
    except RecursionError:  # bytes from a store or a node are anyone's: absurd nesting is bad JSON, not a crash
        raise ValueError("JSON nested too deeply") from None


class Codec:
    """Turns bytes of some MIME types into values and back.

    ``decode`` receives the verified bytes of a blob. ``encode`` returns
    bytes, a path or a binary file object to stream into the store, and
    raises TypeError (with a message that says what to return) for a value
    it cannot store.
    """

    def decode(self, data: bytes, mime: str) -> Any:
        return data

    def encode(self, value: Any, mime: str) -> Encoded:
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value)
        if isinstance(value, os.PathLike) or hasattr(value, "read"):
            return value
        if isinstance(value, str):
            # Only where a str is what the type holds: anywhere else it is most likely a file's path,
            # and storing the path's text would lose the file.
            if is_text(mime):
                return value.encode("utf-8")
            raise TypeError(
                f"returned a str for {'an' if mime[:1] in 'aeiou' else 'a'} {mime} output; "
                "return bytes, or a pathlib.Path to store a file"
            )
        hint = " (or declare the output application/json)" if isinstance(value, (dict, list, int, float)) else ""
        accepted = "bytes, str, a path or a binary file" if is_text(mime) else "bytes, a path or a binary file"
        raise TypeError(f"cannot store a {type(value).__name__} as {mime}: return {accepted}{hint}")


_JSON_TYPES = frozenset({dict, list, str, int, float, bool, type(None)})  # values that are JSON: no other checks


class JsonCodec(Codec):
    def decode(self, data: bytes, mime: str) -> Any:
        return decode_json(data)

    def encode(self, value: Any, mime: str) -> Encoded:
        if type(value) not in _JSON_TYPES and (
            isinstance(value, (bytes, bytearray, memoryview, os.PathLike)) or hasattr(value, "read")
        ):
            return super().encode(value, mime)
        try:
            return encode_json(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"cannot encode {type(value).__name__} as {mime}: {exc}") from None


class TextCodec(Codec):
    def decode(self, data: bytes, mime: str) -> Any:
        return data.decode("utf-8")

    def encode(self, value: Any, mime: str) -> Encoded:
        if isinstance(value, str):
            return value.encode("utf-8")
        return super().encode(value, mime)


class PickleCodec(Codec):
    """``application/x-python-pickle``: any Python object, for users who opt in."""

    def decode(self, data: bytes, mime: str) -> Any:
        if os.environ.get("WFE_ALLOW_PICKLE") != "1":
            raise WfeError(
                "refusing to unpickle a blob: pickles run code when loaded; set WFE_ALLOW_PICKLE=1 "
                "if you trust every writer of this store"
            )
        import pickle  # only for users who opt in: a run of JSON nodes never loads it

        return pickle.loads(data)

    def encode(self, value: Any, mime: str) -> Encoded:
        import pickle

        return pickle.dumps(value, protocol=5)


class NumpyCodec(Codec):
    """``application/x-npy``: one NumPy array in .npy format (no pickled objects)."""

    def decode(self, data: bytes, mime: str) -> Any:
        import numpy

        return numpy.load(io.BytesIO(data), allow_pickle=False)

    def encode(self, value: Any, mime: str) -> Encoded:
        import numpy

        if not isinstance(value, numpy.ndarray):
            return super().encode(value, mime)
        buffer = io.BytesIO()
        numpy.save(buffer, value, allow_pickle=False)
        return buffer.getvalue()


class ParquetCodec(Codec):
    """``application/vnd.apache.parquet``: decodes to a pyarrow Table; encodes Tables and pandas frames."""

    def decode(self, data: bytes, mime: str) -> Any:
        import pyarrow as pa
        import pyarrow.parquet as pq

        return pq.read_table(pa.BufferReader(data))

    def encode(self, value: Any, mime: str) -> Encoded:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if type(value).__module__.startswith("pandas"):
            value = pa.Table.from_pandas(value, preserve_index=False)
        if not isinstance(value, pa.Table):
            return super().encode(value, mime)
        sink = pa.BufferOutputStream()
        pq.write_table(value, sink)
        return sink.getvalue().to_pybytes()


_BYTES = Codec()
_JSON = JsonCodec()
_TEXT = TextCodec()
_REGISTERED: dict[str, Codec] = {}


def register_codec(mime: str, codec: Codec) -> None:
    """Use ``codec`` for ``mime`` (an exact type, or ``major/*``), ahead of entry points."""
    _REGISTERED[mime_base(mime)] = codec
    codec_for.cache_clear()


# The codecs that ship with wfe, known in code so a source checkout without installed metadata
# finds them too; the same names are declared as entry points, where third parties add theirs.
KNOWN_CODECS = {
    "application/vnd.apache.parquet": "wfe.graph._codecs:ParquetCodec",
    "application/x-npy": "wfe.graph._codecs:NumpyCodec",
    "application/x-python-pickle": "wfe.graph._codecs:PickleCodec",
}


@functools.cache
def _entry_point_codecs() -> dict[str, str]:
    from importlib.metadata import entry_points

    return {ep.name.lower(): ep.value for ep in entry_points(group="wfe.codecs")}


def _load(target: str) -> Codec:
    module_name, _, attribute = target.partition(":")
    codec_class = getattr(importlib.import_module(module_name), attribute)
    return codec_class() if isinstance(codec_class, type) else codec_class  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=256)
def codec_for(mime: str) -> Codec:
    """The codec for a MIME type: exact, then ``+json``, then ``major/*``, then raw bytes."""
    base = mime_base(mime)
    major = base.partition("/")[0] + "/*"
    for key in (base, major):
        if key in _REGISTERED:
            return _REGISTERED[key]
    if base == "application/json" or base.endswith("+json"):
        return _JSON
    if base == "application/octet-stream":
        return _BYTES  # raw bytes by definition; no need to look through installed packages
    for key in (base, major):
        target = KNOWN_CODECS.get(key) or _entry_point_codecs().get(key)
        if target is not None:
            return _load(target)
    if major == "text/*":
        return _TEXT
    return _BYTES


@functools.lru_cache(maxsize=256)
def is_text(mime: str) -> bool:
    """True for the types a returned ``str`` may be stored as (UTF-8): ``text/*`` and JSON."""
    base = mime_base(mime)
    return base.startswith("text/") or base == "application/json" or base.endswith("+json")


def is_json(mime: str) -> bool:
    return isinstance(codec_for(mime), JsonCodec)


def decode(data: bytes, mime: str) -> Any:
    """Bytes -> the value a function receives for an input of this MIME type."""
    return codec_for(mime).decode(data, mime)


def encode(value: Any, mime: str) -> Encoded:
    """A returned value -> what to store for an output of this MIME type."""
    return codec_for(mime).encode(value, mime)
