"""A large local blob is read and hashed at once, into the bytes handed back: the same answers as read-then-hash."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wfe
from wfe.storage import _fill

CHUNK = _fill.CHUNK

# sizes at and around the chunk edges, where an off-by-one would drop or repeat bytes, and in between
SIZES = st.one_of(
    st.sampled_from([0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 2 * CHUNK + 1, 3 * CHUNK - 1]),
    st.integers(min_value=0, max_value=3 * CHUNK + 5),
)


def _content(size: int, seed: bytes) -> bytes:
    """``size`` bytes that differ from chunk to chunk (a repeated random block, cheap to make)."""
    block = hashlib.sha256(seed).digest() * 4099  # an odd length: no chunk equals another
    return (block * (size // len(block) + 1))[:size]


TAMPERING = st.one_of(
    st.just(("none", 0)),
    st.tuples(st.just("flip"), st.floats(min_value=0, max_value=1, exclude_max=True)),
    st.tuples(st.just("truncate"), st.floats(min_value=0, max_value=1, exclude_max=True)),
    st.tuples(st.just("append"), st.integers(min_value=1, max_value=CHUNK + 3)),
)


def _tamper(path: Path, data: bytes, how: tuple[str, float]) -> bytes:
    kind, amount = how
    if kind == "flip" and data:
        at = int(amount * len(data))
        changed = bytearray(data)
        changed[at] ^= 0x80
        data = bytes(changed)
    elif kind == "truncate" and data:
        data = data[: int(amount * len(data))]
    elif kind == "append":
        data = data + b"\x07" * int(amount)
    path.chmod(0o644)
    path.write_bytes(data)
    return data


@pytest.mark.parametrize("in_place", [True, False], ids=["filled-in-place", "read-then-hashed"])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=SIZES, seed=st.binary(min_size=1, max_size=8), how=TAMPERING)
def test_a_blob_read_is_its_bytes_or_an_integrity_error_whatever_the_file_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_place: bool, size: int, seed: bytes, how: tuple[str, float]
) -> None:
    if not in_place:
        monkeypatch.setattr(_fill, "fresh_bytes", lambda size: None)
    store = wfe.open_store(str(tmp_path / f"store-{seed.hex()}-{size}"))
    data = _content(size, seed)
    digest = store.blobs.put(data)
    path = Path(store.blobs.local_path(digest) or "")
    stored = _tamper(path, data, how)
    if stored == data:
        got = store.blobs.get(digest)
        assert got == data
        assert type(got) is bytes and memoryview(got).readonly
        assert size < 2 or sys.getrefcount(got) == 2  # nothing else holds it: no view of it was kept
    else:
        with pytest.raises(wfe.IntegrityError, match=digest):
            store.blobs.get(digest)


@settings(max_examples=40, deadline=None)
@given(actual=SIZES, told=SIZES, seed=st.binary(min_size=1, max_size=4))
def test_a_file_that_changed_size_since_it_was_measured_is_read_as_it_is_and_hashed_as_returned(
    actual: int, told: int, seed: bytes, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("sizes") / "f"
    data = _content(actual, seed)
    path.write_bytes(data)
    hasher = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY)
    try:
        got = _fill.read_hashing(fd, told, hasher)
    finally:
        os.close(fd)
    assert got == data
    assert hasher.digest() == hashlib.sha256(data).digest()


def test_a_failed_read_midway_raises_and_the_next_read_is_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = wfe.open_store(str(tmp_path / "store"))
    data = _content(3 * CHUNK + 11, b"x")
    digest = store.blobs.put(data)
    real = os.readv
    calls = [0]

    def failing(fd: int, buffers: list[memoryview]) -> int:
        calls[0] += 1
        if calls[0] == 2:
            raise OSError(5, "Input/output error")
        return real(fd, buffers)

    monkeypatch.setattr(os, "readv", failing)
    with pytest.raises(wfe.StoreError, match="Input/output error"):
        store.blobs.get(digest)
    assert store.blobs.get(digest) == data


def test_bytes_filled_in_place_are_ordinary_bytes() -> None:
    made = _fill.fresh_bytes(CHUNK + 3)
    if made is None:
        pytest.skip(f"no in-place filling on {sys.implementation.name}")
    data, view = made
    del made
    view[:] = b"\x05" * len(view)
    view.release()
    assert data == b"\x05" * (CHUNK + 3) and hash(data) == hash(b"\x05" * (CHUNK + 3))
    assert sys.getrefcount(data) == 2
