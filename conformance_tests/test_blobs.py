"""Conformance of the blob store: immutable bytes under their sha256 digest."""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import os
import random
import tempfile
import threading
from typing import Any

import pytest
from hypothesis import example
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

import wfe
from wfe.store._paths import blob_path

from . import _workers
from . import strategies as S
from ._support import Conformance, data_files, raw_files, raw_fs, raw_path, raw_read, raw_write, remove_store

PART = "blobs"


def _put(store: wfe.Store, data: bytes, how: str) -> str:
    if how == "bytes":
        return store.blobs.put(data)
    if how == "bytearray":
        return store.blobs.put(bytearray(data))
    if how == "memoryview":
        return store.blobs.put(memoryview(data))
    if how == "file":
        return store.blobs.put(io.BytesIO(data))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "blob")
        with open(path, "wb") as handle:
            handle.write(data)
        import pathlib

        return store.blobs.put(pathlib.Path(path))


def _staging_leftovers(store: wfe.Store) -> set[str]:
    return {path for path in raw_files(store) if path.startswith("tmp/")}


def test_put_returns_sha256_and_round_trips(conformance: Conformance) -> None:
    @conformance.given(data=S.blobs, how=st.sampled_from(["bytes", "bytearray", "memoryview", "file", "path"]))
    def put_then_read(data: bytes, how: str) -> None:
        with conformance.fresh_store(PART) as store:
            digest = _put(store, data, how)
            assert digest == S.sha256_digest(data)
            assert store.blobs.get(digest) == data
            with store.blobs.open(digest) as handle:
                assert handle.read() == data
            assert store.blobs.size(digest) == len(data)
            assert store.blobs.exists(digest)
            assert list(store.blobs) == [digest]
            # Independently of the store: the raw object holds exactly the bytes.
            assert raw_read(store, blob_path(digest)) == data
            assert data_files(store) == {blob_path(digest)}
            assert _staging_leftovers(store) == set()

    put_then_read()


def test_multi_mib_blobs_round_trip(conformance: Conformance) -> None:
    @conformance.given(heavy=True, size=S.big_blob_sizes, seed=st.integers(0, 2**32), stream=st.booleans())
    @example(size=9 * S.MiB + 7, seed=1, stream=True)  # always past the chunk size and the spool limit
    @example(size=9 * S.MiB + 7, seed=2, stream=False)
    def big_put_then_read(size: int, seed: int, stream: bool) -> None:
        data = S.pseudo_random_bytes(size, seed)
        with conformance.fresh_store(PART) as store:
            digest = store.blobs.put(io.BytesIO(data) if stream else data)
            assert digest == S.sha256_digest(data)
            assert store.blobs.size(digest) == size
            hasher, total = hashlib.sha256(), 0
            with store.blobs.open(digest) as handle:
                while chunk := handle.read(1 << 20):
                    hasher.update(chunk)
                    total += len(chunk)
            assert (total, "sha256:" + hasher.hexdigest()) == (size, digest)
            raw = raw_read(store, blob_path(digest))
            assert (len(raw), S.sha256_digest(raw)) == (size, digest)

    big_put_then_read()


def test_put_is_idempotent(conformance: Conformance) -> None:
    @conformance.given(data=S.blobs, times=st.integers(2, 4))
    def put_repeatedly(data: bytes, times: int) -> None:
        with conformance.fresh_store(PART) as store:
            first = store.blobs.put_new(data)
            assert first == (S.sha256_digest(data), len(data), True)
            for attempt in range(times):
                source: Any = io.BytesIO(data) if attempt % 2 else data
                assert store.blobs.put_new(source) == (first[0], len(data), False)
            assert list(store.blobs) == [first[0]]
            assert store.blobs.get(first[0]) == data
            assert data_files(store) == {blob_path(first[0])}

    put_repeatedly()


def test_missing_blob_raises_blob_not_found(conformance: Conformance) -> None:
    @conformance.given(digest=S.digests)
    def read_missing(digest: str) -> None:
        with conformance.fresh_store(PART) as store:
            for read in (store.blobs.get, store.blobs.open, store.blobs.size):
                with pytest.raises(wfe.BlobNotFoundError) as caught:
                    read(digest)
                assert isinstance(caught.value, FileNotFoundError)
                assert isinstance(caught.value, wfe.NotFoundError)
            assert not store.blobs.exists(digest)
            assert store.blobs.delete(digest) is False
            assert list(store.blobs) == []

    read_missing()


def test_malformed_digests_are_rejected(conformance: Conformance) -> None:
    @conformance.given(value=S.malformed_digests)
    def reject(value: Any) -> None:
        with conformance.fresh_store(PART) as store:
            for method in (store.blobs.get, store.blobs.open, store.blobs.size, store.blobs.exists,
                           store.blobs.delete):
                with pytest.raises(wfe.InvalidDigestError):
                    method(value)
            assert raw_files(store) == set()

    reject()


def test_exists_delete_and_iterate_agree(conformance: Conformance) -> None:
    @conformance.given(payloads=st.lists(S.blobs, max_size=8), data=st.data())
    def agree(payloads: list[bytes], data: st.DataObject) -> None:
        with conformance.fresh_store(PART) as store:
            digests = {store.blobs.put(payload) for payload in payloads}
            doomed = data.draw(st.sets(st.sampled_from(sorted(digests))) if digests else st.just(set()))
            for digest in doomed:
                assert store.blobs.delete(digest) is True
                assert store.blobs.delete(digest) is False
            kept = digests - doomed
            assert set(store.blobs) == kept
            assert sorted(store.blobs) == sorted(set(store.blobs)), "iteration repeats a digest"
            for digest in digests:
                assert store.blobs.exists(digest) == (digest in kept)
            for digest in doomed:
                with pytest.raises(wfe.BlobNotFoundError):
                    store.blobs.get(digest)
            assert data_files(store) == {blob_path(digest) for digest in kept}

    agree()


def test_a_digest_prefix_lists_exactly_the_blobs_it_starts(conformance: Conformance) -> None:
    """Addresses such as ``wfe cat 3fa9c1e0b2d4`` list by a prefix of a name, not of a folder (one request on S3)."""

    @conformance.given(payloads=st.lists(S.blobs, min_size=1, max_size=8), data=st.data())
    def agree(payloads: list[bytes], data: st.DataObject) -> None:
        with conformance.fresh_store(PART) as store:
            digests = sorted({store.blobs.put(payload) for payload in payloads})
            chosen = data.draw(st.sampled_from(digests)).removeprefix("sha256:")
            length = data.draw(st.integers(2, 64), label="length")
            other = data.draw(st.text("0123456789abcdef", min_size=2, max_size=5), label="other")
            limit = data.draw(st.integers(1, 9), label="limit")
            for prefix in (chosen[:length], chosen[:2], other):
                wanted = [d for d in digests if d.removeprefix("sha256:").startswith(prefix)][:limit]
                assert store.blobs.with_prefix(prefix, limit) == wanted, prefix

    agree()


def test_tampered_blob_is_detected(conformance: Conformance) -> None:
    @conformance.given(data=S.blobs, tampered=S.blobs)
    def tamper(data: bytes, tampered: bytes) -> None:
        if data == tampered:
            tampered = data + b"\0"
        with conformance.fresh_store(PART) as store:
            if not store.io.tamperable:
                pytest.skip(f"{type(store.io).__name__} does not allow writing behind the store's back")
            digest = store.blobs.put(data)
            raw_write(store, blob_path(digest), tampered)
            with pytest.raises(wfe.IntegrityError) as caught:
                store.blobs.get(digest)
            assert caught.value.digest == digest
            with pytest.raises(wfe.IntegrityError), store.blobs.open(digest) as handle:
                handle.read()

    tamper()


def test_concurrent_puts_from_threads(conformance: Conformance) -> None:
    @conformance.given(payloads=st.lists(S.blobs, min_size=1, max_size=6), seed=st.integers(0, 1000))
    def race(payloads: list[bytes], seed: int) -> None:
        with conformance.fresh_store(PART) as store:
            # Every thread puts every payload (the same content) plus one of its own (different content).
            jobs = [[*payloads, f"thread {n}".encode()] for n in range(4)]
            for n, job in enumerate(jobs):
                random.Random(seed + n).shuffle(job)
            barrier = threading.Barrier(len(jobs))

            def work(job: list[bytes]) -> list[str]:
                barrier.wait()
                return [store.blobs.put(payload) for payload in job]

            with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
                results = list(pool.map(work, jobs))
            expected = {S.sha256_digest(p) for job in jobs for p in job}
            for job, digests in zip(jobs, results, strict=True):
                assert digests == [S.sha256_digest(p) for p in job]
            assert set(store.blobs) == expected
            for job in jobs:
                for payload in job:
                    assert store.blobs.get(S.sha256_digest(payload)) == payload
            assert _staging_leftovers(store) == set()

    race()


def test_concurrent_puts_from_processes(conformance: Conformance) -> None:
    @conformance.given(heavy=True, payloads=st.lists(S.blobs, min_size=1, max_size=4))
    def race(payloads: list[bytes]) -> None:
        with conformance.fresh_store(PART) as store:
            if not store.shared:
                pytest.skip(f"{store.url} is not shared between processes")
            module = _workers.filesystem_module(store)
            jobs = [[*payloads, f"process {n}".encode()] for n in range(_workers.WORKERS)]
            futures = [
                _workers.pool().submit(_workers.put_blobs, store.url, store.options, module, job) for job in jobs
            ]
            for job, future in zip(jobs, futures, strict=True):
                assert future.result() == [S.sha256_digest(p) for p in job]
            assert set(store.blobs) == {S.sha256_digest(p) for job in jobs for p in job}
            for job in jobs:
                for payload in job:
                    assert store.blobs.get(S.sha256_digest(payload)) == payload

    race()


def test_no_partial_blob_visible_while_put_is_in_flight(conformance: Conformance) -> None:
    data = S.pseudo_random_bytes(12 * S.MiB + 5, seed=3)
    digest = S.sha256_digest(data)
    with conformance.fresh_store(PART) as store:
        path, fs = raw_path(store, blob_path(digest)), raw_fs(store)
        partial: list[str] = []
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                try:
                    if store.blobs.exists(digest) and store.blobs.size(digest) != len(data):
                        partial.append(f"store shows {store.blobs.size(digest)} of {len(data)} bytes")
                    if fs.exists(path) and fs.size(path) != len(data):
                        partial.append(f"raw object has {fs.size(path)} of {len(data)} bytes")
                except FileNotFoundError:
                    continue

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            assert store.blobs.put(io.BytesIO(data)) == digest
        finally:
            done.set()
            watcher.join()
        assert partial == [], f"a partial blob was visible under its digest: {partial[:3]}"
        assert store.blobs.get(digest) == data


class BlobMachine(RuleBasedStateMachine):
    """Random puts, reads and deletes against a dict model."""

    stored = Bundle("stored")

    def __init__(self, conformance: Conformance) -> None:
        super().__init__()
        self.conformance = conformance
        self.store = conformance.new_store(PART)
        self.model: dict[str, bytes] = {}

    @rule(target=stored, data=S.blobs)
    def put(self, data: bytes) -> str:
        self.conformance.step(PART)
        digest = self.store.blobs.put(data)
        assert digest == S.sha256_digest(data)
        self.model[digest] = data
        return digest

    @rule(digest=stored)
    def put_again(self, digest: str) -> None:
        self.conformance.step(PART)
        if digest in self.model:
            assert self.store.blobs.put_new(self.model[digest])[2] is False

    @rule(digest=stored, size=st.integers(0, 5000))
    def read(self, digest: str, size: int) -> None:
        self.conformance.step(PART)
        if digest in self.model:
            assert self.store.blobs.get(digest) == self.model[digest]
            with self.store.blobs.open(digest) as handle:
                assert handle.read(size) == self.model[digest][:size]
        else:
            with pytest.raises(wfe.BlobNotFoundError):
                self.store.blobs.get(digest)

    @rule(digest=stored | S.digests)
    def delete(self, digest: str) -> None:
        self.conformance.step(PART)
        assert self.store.blobs.delete(digest) is (digest in self.model)
        self.model.pop(digest, None)

    @invariant()
    def store_matches_model(self) -> None:
        assert set(self.store.blobs) == set(self.model)
        assert data_files(self.store) == {blob_path(digest) for digest in self.model}

    def teardown(self) -> None:
        remove_store(self.store)


def test_blob_state_machine(conformance: Conformance) -> None:
    run_state_machine_as_test(lambda: BlobMachine(conformance), settings=conformance.settings())
