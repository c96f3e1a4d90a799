"""Conformance of the config store: JSON objects kept under the digest of their canonical JSON."""

from __future__ import annotations

import concurrent.futures
import json
import threading
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

import wfe

from . import _workers
from . import strategies as S
from ._support import Conformance, data_files, raw_files, raw_read, raw_write, remove_store

PART = "configs"


def _files(store: wfe.Store) -> set[str]:
    return {path for path in data_files(store) if path.startswith("configs/")}


def test_config_round_trips_and_digest_is_sha256_of_canonical_json(conformance: Conformance) -> None:
    @conformance.given(config=S.configs | S.deep_configs)
    def put_then_get(config: dict[str, Any]) -> None:
        with conformance.fresh_store(PART) as store:
            digest = store.configs.put(config)
            assert digest == S.sha256_digest(S.canonical(config))
            assert S.canonical(store.configs.get(digest)) == S.canonical(config)
            assert store.configs.exists(digest)
            assert list(store.configs) == [digest]
            (path,) = _files(store)
            # The raw record is the canonical JSON itself, readable without wfe.
            assert raw_read(store, path) == S.canonical(config)
            assert all(S.SAFE_KEY_RE.fullmatch(p) for p in raw_files(store))

    put_then_get()


def test_config_put_is_idempotent(conformance: Conformance) -> None:
    @conformance.given(config=S.configs)
    def put_twice(config: dict[str, Any]) -> None:
        with conformance.fresh_store(PART) as store:
            first = store.configs.put(config)
            before = data_files(store)
            # Key order does not matter: the canonical form is the same.
            reordered = dict(reversed(list(config.items())))
            assert store.configs.put(reordered) == first
            assert data_files(store) == before
            assert list(store.configs) == [first]

    put_twice()


def test_missing_config_raises_not_found(conformance: Conformance) -> None:
    @conformance.given(digest=S.digests)
    def read_missing(digest: str) -> None:
        with conformance.fresh_store(PART) as store:
            with pytest.raises(wfe.NotFoundError):
                store.configs.get(digest)
            assert not store.configs.exists(digest)
            assert store.configs.delete(digest) is False

    read_missing()


def test_malformed_digests_and_values_are_rejected(conformance: Conformance) -> None:
    @conformance.given(value=S.malformed_digests, not_a_config=st.one_of(st.lists(st.integers()), st.text(), st.none()))
    def reject(value: Any, not_a_config: Any) -> None:
        with conformance.fresh_store(PART) as store:
            for method in (store.configs.get, store.configs.exists, store.configs.delete):
                with pytest.raises(wfe.InvalidDigestError):
                    method(value)
            with pytest.raises(TypeError):
                store.configs.put(not_a_config)
            with pytest.raises(ValueError):
                store.configs.put({"x": float("nan")})
            assert raw_files(store) == set()

    reject()


def test_config_exists_delete_and_iterate_agree(conformance: Conformance) -> None:
    @conformance.given(configs=st.lists(S.configs, max_size=6), data=st.data())
    def agree(configs: list[dict[str, Any]], data: st.DataObject) -> None:
        with conformance.fresh_store(PART) as store:
            digests = {store.configs.put(config) for config in configs}
            doomed = data.draw(st.sets(st.sampled_from(sorted(digests))) if digests else st.just(set()))
            for digest in doomed:
                assert store.configs.delete(digest) is True
            kept = digests - doomed
            assert set(store.configs) == kept
            for digest in digests:
                assert store.configs.exists(digest) == (digest in kept)
            assert len(_files(store)) == len(kept)

    agree()


def test_tampered_config_is_detected(conformance: Conformance) -> None:
    @conformance.given(config=S.configs, other=S.configs)
    def tamper(config: dict[str, Any], other: dict[str, Any]) -> None:
        if S.canonical(config) == S.canonical(other):
            other = {**other, "tampered": True}
        with conformance.fresh_store(PART) as store:
            if not store.io.tamperable:
                pytest.skip(f"{type(store.io).__name__} does not allow writing behind the store's back")
            digest = store.configs.put(config)
            (path,) = _files(store)
            raw_write(store, path, S.canonical(other))
            with pytest.raises(wfe.IntegrityError):
                store.configs.get(digest)

    tamper()


def test_concurrent_config_puts_from_threads(conformance: Conformance) -> None:
    @conformance.given(configs=st.lists(S.configs, min_size=1, max_size=4))
    def race(configs: list[dict[str, Any]]) -> None:
        with conformance.fresh_store(PART) as store:
            jobs = [[*configs, {"thread": n}] for n in range(4)]
            barrier = threading.Barrier(len(jobs))

            def work(job: list[dict[str, Any]]) -> list[str]:
                barrier.wait()
                return [store.configs.put(config) for config in job]

            with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
                results = list(pool.map(work, jobs))
            expected = {S.sha256_digest(S.canonical(c)) for job in jobs for c in job}
            assert {d for digests in results for d in digests} == expected
            assert set(store.configs) == expected
            for job in jobs:
                for config in job:
                    got = store.configs.get(S.sha256_digest(S.canonical(config)))
                    assert S.canonical(got) == S.canonical(config)

    race()


def test_concurrent_config_puts_from_processes(conformance: Conformance) -> None:
    @conformance.given(heavy=True, configs=st.lists(S.configs, min_size=1, max_size=3))
    def race(configs: list[dict[str, Any]]) -> None:
        with conformance.fresh_store(PART) as store:
            if not store.shared:
                pytest.skip(f"{store.url} is not shared between processes")
            module = _workers.filesystem_module(store)
            jobs = [[*configs, {"process": n}] for n in range(_workers.WORKERS)]
            # Round-trip through JSON so the workers get exactly the canonical values.
            jobs = [json.loads(json.dumps(job)) for job in jobs]
            futures = [_workers.pool().submit(_workers.put_configs, store.url, store.options, module, j) for j in jobs]
            for job, future in zip(jobs, futures, strict=True):
                assert future.result() == [S.sha256_digest(S.canonical(c)) for c in job]
            assert set(store.configs) == {S.sha256_digest(S.canonical(c)) for job in jobs for c in job}

    race()


class ConfigMachine(RuleBasedStateMachine):
    """Random puts, gets and deletes of configs against a dict model."""

    stored = Bundle("stored")

    def __init__(self, conformance: Conformance) -> None:
        super().__init__()
        self.conformance = conformance
        self.store = conformance.new_store(PART)
        self.model: dict[str, bytes] = {}

    @rule(target=stored, config=S.configs)
    def put(self, config: dict[str, Any]) -> str:
        self.conformance.step(PART)
        digest = self.store.configs.put(config)
        self.model[digest] = S.canonical(config)
        return digest

    @rule(digest=stored | S.digests)
    def get(self, digest: str) -> None:
        self.conformance.step(PART)
        if digest in self.model:
            assert S.canonical(self.store.configs.get(digest)) == self.model[digest]
        else:
            with pytest.raises(wfe.NotFoundError):
                self.store.configs.get(digest)

    @rule(digest=stored)
    def delete(self, digest: str) -> None:
        self.conformance.step(PART)
        assert self.store.configs.delete(digest) is (digest in self.model)
        self.model.pop(digest, None)

    @invariant()
    def store_matches_model(self) -> None:
        assert set(self.store.configs) == set(self.model)
        assert {self.store.configs.exists(d) for d in self.model} <= {True}
        assert len(_files(self.store)) == len(self.model)

    def teardown(self) -> None:
        remove_store(self.store)


def test_config_state_machine(conformance: Conformance) -> None:
    run_state_machine_as_test(lambda: ConfigMachine(conformance), settings=conformance.settings())
