from __future__ import annotations

import pickle
from pathlib import Path

import pytest

import wfe
from wfe._codecs import Codec, codec_for, decode, encode, register_codec


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
