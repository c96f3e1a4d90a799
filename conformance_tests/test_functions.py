"""Conformance of the function store: name -> spec, stored under an encoded, reversible name."""

from __future__ import annotations

import concurrent.futures
import threading
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

import wfe

from . import _workers
from . import strategies as S
from ._support import Conformance, data_files, raw_files, remove_store

PART = "functions"


def _files(store: wfe.Store) -> set[str]:
    return {path for path in data_files(store) if path.startswith("functions/")}


def test_function_spec_round_trips_under_any_name(conformance: Conformance) -> None:
    @conformance.given(spec=S.function_specs, replacement=S.function_specs)
    def put_then_get(spec: wfe.FunctionSpec, replacement: wfe.FunctionSpec) -> None:
        with conformance.fresh_store(PART) as store:
            store.functions.put(spec)
            assert store.functions.get(spec.name) == spec
            assert store.functions.exists(spec.name)
            assert list(store.functions) == [spec.name]
            # Every raw key stays inside the narrowest object-store alphabet, whatever the name.
            assert all(S.SAFE_KEY_RE.fullmatch(path) for path in raw_files(store))
            store.functions.put(spec)  # a repeat changes nothing
            assert len(_files(store)) == 1
            moved = replacement.model_copy(update={"name": spec.name})
            store.functions.put(moved)  # put overwrites
            assert store.functions.get(spec.name) == moved
            assert list(store.functions) == [spec.name]

    put_then_get()


def test_missing_function_raises_not_found(conformance: Conformance) -> None:
    @conformance.given(name=S.function_names)
    def read_missing(name: str) -> None:
        with conformance.fresh_store(PART) as store:
            with pytest.raises(wfe.NotFoundError):
                store.functions.get(name)
            assert not store.functions.exists(name)
            assert store.functions.delete(name) is False

    read_missing()


def test_unstorable_function_names_are_rejected(conformance: Conformance) -> None:
    @conformance.given(name=st.one_of(st.just(""), st.text(min_size=201, max_size=260), st.none(), st.integers()))
    def reject(name: Any) -> None:
        with conformance.fresh_store(PART) as store:
            for method in (store.functions.get, store.functions.exists, store.functions.delete):
                with pytest.raises(wfe.InvalidNameError):
                    method(name)
            assert raw_files(store) == set()

    reject()


def test_function_exists_delete_and_iterate_agree(conformance: Conformance) -> None:
    # Plain specs: this property is about names, and simple specs keep a failure quick to shrink.
    @conformance.given(names=st.sets(S.function_names, max_size=6), data=st.data())
    def agree(names: set[str], data: st.DataObject) -> None:
        with conformance.fresh_store(PART) as store:
            for name in names:
                store.functions.put(wfe.FunctionSpec(name=name, ref="module:function", version="1"))
            doomed = data.draw(st.sets(st.sampled_from(sorted(names))) if names else st.just(set()))
            for name in doomed:
                assert store.functions.delete(name) is True
            kept = names - doomed
            assert set(store.functions) == kept
            for name in names:
                assert store.functions.exists(name) == (name in kept)
            assert len(_files(store)) == len(kept)

    agree()


def test_concurrent_function_puts_from_threads_and_processes(conformance: Conformance) -> None:
    @conformance.given(heavy=True, specs=st.lists(S.function_specs, min_size=2, max_size=4))
    def race(specs: list[wfe.FunctionSpec]) -> None:
        # All under one name: whichever put lands last, the record is one whole spec.
        same = [spec.model_copy(update={"name": specs[0].name}) for spec in specs]
        with conformance.fresh_store(PART) as store:
            barrier = threading.Barrier(len(same))

            def work(spec: wfe.FunctionSpec) -> None:
                barrier.wait()
                store.functions.put(spec)

            with concurrent.futures.ThreadPoolExecutor(len(same)) as pool:
                list(pool.map(work, same))
            assert store.functions.get(specs[0].name) in same
            if store.shared:
                module = _workers.filesystem_module(store)
                futures = [
                    _workers.pool().submit(_workers.put_function, store.url, store.options, module, s.model_dump_json())
                    for s in same
                ]
                [future.result() for future in futures]
                assert store.functions.get(specs[0].name) in same
            assert list(store.functions) == [specs[0].name]

    race()


class FunctionMachine(RuleBasedStateMachine):
    """Random puts (overwriting), gets and deletes over a small pool of names."""

    def __init__(self, conformance: Conformance) -> None:
        super().__init__()
        self.conformance = conformance
        self.store = conformance.new_store(PART)
        self.model: dict[str, wfe.FunctionSpec] = {}

    names = st.sampled_from(["load", "ünïcödé", "a/b", "..", "+2F", "x" * 16, ".hidden", "日本"])

    @rule(name=names, spec=S.function_specs)
    def put(self, name: str, spec: wfe.FunctionSpec) -> None:
        self.conformance.step(PART)
        spec = spec.model_copy(update={"name": name})
        self.store.functions.put(spec)
        self.model[name] = spec

    @rule(name=names)
    def get(self, name: str) -> None:
        self.conformance.step(PART)
        if name in self.model:
            assert self.store.functions.get(name) == self.model[name]
        else:
            with pytest.raises(wfe.NotFoundError):
                self.store.functions.get(name)

    @rule(name=names)
    def delete(self, name: str) -> None:
        self.conformance.step(PART)
        assert self.store.functions.delete(name) is (name in self.model)
        self.model.pop(name, None)

    @invariant()
    def store_matches_model(self) -> None:
        assert set(self.store.functions) == set(self.model)
        assert len(_files(self.store)) == len(self.model)

    def teardown(self) -> None:
        remove_store(self.store)


def test_function_state_machine(conformance: Conformance) -> None:
    run_state_machine_as_test(lambda: FunctionMachine(conformance), settings=conformance.settings())
