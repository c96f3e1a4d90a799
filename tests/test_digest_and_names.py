from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

import wfe
from wfe.store._digest import action_key, canonical_json, digest_of, validate_digest
from wfe.store._names import MAX_ENCODED_LENGTH, decode_name, encode_name

SUPABASE_KEY_ALPHABET = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_/!.*'() &$=@;:+,?-")


@pytest.mark.parametrize(
    "bad",
    ["sha256:../../etc/passwd", "sha256:" + "A" * 64, "sha256:" + "0" * 63, "md5:" + "0" * 32,
     "sha256:" + "0" * 64 + "\n", "", None, 42, "sha256:" + "0" * 64 + "/x"],
)
def test_malformed_digests_are_rejected(bad: object) -> None:
    with pytest.raises(wfe.InvalidDigestError, match="invalid digest"):
        validate_digest(bad)


def test_digest_is_sha256_of_bytes() -> None:
    assert digest_of(b"abc") == "sha256:" + hashlib.sha256(b"abc").hexdigest()


def test_canonical_json_ignores_key_order_and_refuses_nan() -> None:
    assert canonical_json({"b": 1, "a": [1, "é"]}) == canonical_json({"a": [1, "é"], "b": 1})
    assert canonical_json({"a": "é"}) == '{"a":"é"}'.encode()
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_action_key_changes_with_each_part() -> None:
    base = ("f", "v1", digest_of(b"{}"), [digest_of(b"x")])
    key = action_key(*base)
    assert key == action_key(*base)
    assert key != action_key("g", *base[1:])
    assert key != action_key(base[0], "v2", *base[2:])
    assert key != action_key(*base[:2], digest_of(b"{1}"), base[3])
    assert key != action_key(*base[:3], [digest_of(b"y")])
    assert key != action_key(*base[:3], [digest_of(b"x"), digest_of(b"x")])


@given(st.text(), st.text(), st.text(), st.lists(st.text(), max_size=3))
def test_action_key_is_the_digest_of_the_canonical_json_of_its_parts(
    function: str, version: str, config: str, inputs: list[str]
) -> None:
    parts = {"function": function, "version": version, "config": config, "inputs": inputs}
    try:
        expected = digest_of(canonical_json(parts))
    except UnicodeEncodeError:  # a lone surrogate is not text: neither form can hash it
        with pytest.raises(UnicodeEncodeError):
            action_key(function, version, config, inputs)
        return
    assert action_key(function, version, config, inputs) == expected


@given(st.text(min_size=1, max_size=40))
def test_name_encoding_round_trips_into_the_narrowest_key_alphabet(name: str) -> None:
    try:
        encoded = encode_name(name)
    except wfe.InvalidNameError as exc:
        surrogate = any(0xD800 <= ord(c) <= 0xDFFF for c in name)  # lone surrogates are not text
        assert surrogate or "too long" in str(exc)
        return
    assert set(encoded) <= SUPABASE_KEY_ALPHABET
    assert "/" not in encoded and not encoded.startswith(".")
    assert decode_name(encoded) == name


@pytest.mark.parametrize("name", [".", "..", "../x", "a/b", "+", "é", " x"])
def test_names_that_could_escape_a_folder_are_escaped(name: str) -> None:
    encoded = encode_name(name)
    assert encoded not in (".", "..") and "/" not in encoded and not encoded.startswith(".")
    assert decode_name(encoded) == name


def test_name_limits() -> None:
    with pytest.raises(wfe.InvalidNameError):
        encode_name("")
    with pytest.raises(wfe.InvalidNameError, match="too long"):
        encode_name("é" * MAX_ENCODED_LENGTH)
    for bad in ("a+2", "+41", ".x", "a%20", "x+2E", "+2f"):  # not the canonical form of any name
        with pytest.raises(wfe.InvalidNameError):
            decode_name(bad)


def test_public_api_is_sorted_and_importable() -> None:
    assert wfe.__all__ == sorted(wfe.__all__)
    for name in wfe.__all__:
        assert getattr(wfe, name) is not None
    for name in ("IntegrityError", "InvalidDigestError", "BlobNotFoundError", "WorkflowError", "StoreURLError"):
        assert issubclass(getattr(wfe, name), wfe.WfeError)
    assert issubclass(wfe.BlobNotFoundError, FileNotFoundError)
