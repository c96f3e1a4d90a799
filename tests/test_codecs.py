from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import wfe
from wfe.graph._codecs import Codec, codec_for, decode, decode_json, encode, register_codec


def test_builtin_codecs_by_mime() -> None:
    assert decode(b'{"a": [1, 2]}', "application/json") == {"a": [1, 2]}
    assert decode(b'{"a": 1}', "application/geo+json; charset=utf-8") == {"a": 1}
    assert decode("é".encode(), "text/csv") == "é"
    assert decode(b"\x00\xff", "image/png") == b"\x00\xff"
    assert encode({"b": 1, "a": 2}, "application/json") == b'{"b":1,"a":2}'
    assert encode("é", "text/plain") == "é".encode()
    with pytest.raises(TypeError, match="declare the output application/json"):
        encode({"a": 1}, "application/octet-stream")
    with pytest.raises(TypeError, match="cannot encode"):
        encode(float("nan"), "application/json")


def test_numpy_round_trip_refuses_object_arrays() -> None:
    numpy = pytest.importorskip("numpy")
    array = numpy.arange(12, dtype="float32").reshape(3, 4)
    back = decode(encode(array, "application/x-npy"), "application/x-npy")
    assert back.dtype == array.dtype and (back == array).all()
    with pytest.raises(ValueError):
        encode(numpy.array([{"a": 1}], dtype=object), "application/x-npy")


def test_parquet_round_trip_from_pandas_and_arrow() -> None:
    pa = pytest.importorskip("pyarrow")
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame({"region": ["north", "south"], "revenue": [1.5, 2.5]})
    table = decode(encode(frame, "application/vnd.apache.parquet"), "application/vnd.apache.parquet")
    assert isinstance(table, pa.Table) and table.to_pandas().equals(frame)
    again = encode(table, "application/vnd.apache.parquet")
    assert encode(table, "application/vnd.apache.parquet") == again  # deterministic bytes, stable digests


def test_pickle_needs_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encode({"x": {1, 2}}, "application/x-python-pickle")
    assert isinstance(data, bytes) and pickle.loads(data) == {"x": {1, 2}}
    monkeypatch.delenv("WFE_ALLOW_PICKLE", raising=False)
    with pytest.raises(wfe.WfeError, match="WFE_ALLOW_PICKLE=1"):
        decode(data, "application/x-python-pickle")
    monkeypatch.setenv("WFE_ALLOW_PICKLE", "1")
    assert decode(data, "application/x-python-pickle") == {"x": {1, 2}}


def test_user_codec_takes_precedence(tmp_path: Path) -> None:
    class Reversed(Codec):
        def decode(self, data: bytes, mime: str) -> bytes:
            return data[::-1]

        def encode(self, value: bytes, mime: str) -> bytes:
            return bytes(value)[::-1]

    register_codec("application/x-reversed-test", Reversed())
    assert isinstance(codec_for("application/x-reversed-test"), Reversed)
    assert decode(encode(b"abc", "application/x-reversed-test"), "application/x-reversed-test") == b"abc"
    assert encode(b"abc", "application/x-reversed-test") == b"cba"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)


def _outcome(parse: Any, data: bytes | str) -> tuple[str, Any]:
    try:
        return "value", parse(data)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError both are
        return "error", type(exc).__name__


@settings(max_examples=300)
@given(
    JSON_VALUES,
    st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-32-le", "str"]),
    st.sampled_from(["", " ", "\n\t", "x", "]", "1"]),
    st.binary(max_size=3),
)
def test_the_fast_json_parse_answers_as_json_loads(value: Any, encoding: str, around: str, noise: bytes) -> None:
    """``decode_json`` takes a short cut for plain UTF-8; whatever the bytes, it parses or refuses as json.loads."""
    text = json.dumps(value, ensure_ascii=False)
    for document in (text, around + text, text + around):
        data: bytes | str = document if encoding == "str" else document.encode(encoding, "surrogatepass")
        assert _outcome(decode_json, data) == _outcome(json.loads, data)
        if isinstance(data, bytes):
            assert _outcome(decode_json, data + noise) == _outcome(json.loads, data + noise)
