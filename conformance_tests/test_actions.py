"""Conformance of the action cache: action key -> result, where the first result wins."""

from __future__ import annotations

import concurrent.futures
import threading
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

import wfe
from wfe.store._manifest import ActionResult

from . import _workers
from . import strategies as S
from ._support import Conformance, data_files, raw_files, raw_write, remove_store
from .plugin import capability_lines

PART = "actions"


def _files(store: wfe.Store) -> set[str]:
    return {path for path in data_files(store) if path.startswith("actions/")}


def _same(left: ActionResult | None, right: ActionResult | None) -> bool:
    dump = lambda r: None if r is None else r.model_dump_json()  # noqa: E731
    return dump(left) == dump(right)


def _atomic_exclusive(store: wfe.Store) -> bool:
    """True if the backend promises that one of racing exclusive writes wins (see StorageIO flags)."""
    return bool(getattr(store.io, "exclusive_publish", False) or getattr(store.io, "conditional_create", False))


def _needs_create_if_absent(conformance: Conformance) -> None:
    """Skip, saying why, where the backend declares it cannot refuse a second writer of one key."""
    with conformance.fresh_store(PART) as store:
        if not _atomic_exclusive(store):
            lacks = [line for line in capability_lines(store.io) if line.startswith("lacks create-if-absent")]
            pytest.skip(f"the backend {lacks[0] if lacks else 'lacks create-if-absent writes'}")


def test_action_round_trips_and_first_result_wins(conformance: Conformance) -> None:
    @conformance.given(key=S.digests, first=S.action_results, second=S.action_results)
    def put_then_get(key: str, first: ActionResult, second: ActionResult) -> None:
        with conformance.fresh_store(PART) as store:
            assert store.actions.lookup(key) is None
            assert store.actions.put(key, first) is True
            assert _same(store.actions.get(key), first)
            assert store.actions.put(key, second) is False  # a repeat never replaces the first result
            assert _same(store.actions.lookup(key), first)
            assert store.actions.put(key, second, overwrite=True) is True
            assert _same(store.actions.get(key), second)
            assert list(store.actions) == [key]
            assert len(_files(store)) == 1
            assert all(S.SAFE_KEY_RE.fullmatch(p) for p in raw_files(store))

    put_then_get()


def test_missing_action_is_a_miss(conformance: Conformance) -> None:
    @conformance.given(key=S.digests)
    def read_missing(key: str) -> None:
        with conformance.fresh_store(PART) as store:
            assert store.actions.lookup(key) is None
            with pytest.raises(wfe.NotFoundError):
                store.actions.get(key)
            assert not store.actions.exists(key)
            assert store.actions.delete(key) is False

    read_missing()


def test_malformed_action_keys_are_rejected(conformance: Conformance) -> None:
    @conformance.given(value=S.malformed_digests, result=S.action_results)
    def reject(value: Any, result: ActionResult) -> None:
        with conformance.fresh_store(PART) as store:
            for method in (store.actions.get, store.actions.lookup, store.actions.exists, store.actions.delete):
                with pytest.raises(wfe.InvalidDigestError):
                    method(value)
            with pytest.raises(wfe.InvalidDigestError):
                store.actions.put(value, result)
            assert raw_files(store) == set()

    reject()


def test_action_exists_delete_and_iterate_agree(conformance: Conformance) -> None:
    # Plain values: this property is about keys, and simple values keep a failure quick to shrink.
    results = st.builds(ActionResult, outputs=st.just([]), function=st.text(max_size=3), version=st.just("1"),
                        config=st.just(S.sha256_digest(b"{}")), inputs=st.just([]), created=st.just(0.0))

    @conformance.given(entries=st.dictionaries(S.digests, results, max_size=6), data=st.data())
    def agree(entries: dict[str, ActionResult], data: st.DataObject) -> None:
        with conformance.fresh_store(PART) as store:
            for key, result in entries.items():
                assert store.actions.put(key, result) is True
            doomed = data.draw(st.sets(st.sampled_from(sorted(entries))) if entries else st.just(set()))
            for key in doomed:
                assert store.actions.delete(key) is True
            kept = set(entries) - doomed
            assert set(store.actions) == kept
            for key in entries:
                assert store.actions.exists(key) == (key in kept)
                assert _same(store.actions.lookup(key), entries[key] if key in kept else None)
            assert len(_files(store)) == len(kept)

    agree()


def test_damaged_action_entry_is_a_miss_and_put_repairs_it(conformance: Conformance) -> None:
    @conformance.given(key=S.digests, result=S.action_results, garbage=st.binary(max_size=64))
    def damage(key: str, result: ActionResult, garbage: bytes) -> None:
        with conformance.fresh_store(PART) as store:
            if not store.io.tamperable:
                pytest.skip(f"{type(store.io).__name__} does not allow writing behind the store's back")
            store.actions.put(key, result)
            (path,) = _files(store)
            raw_write(store, path, garbage)
            assert store.actions.lookup(key) is None
            assert store.actions.put(key, result, overwrite=True) is True
            assert _same(store.actions.get(key), result)

    damage()


def _race_threads(conformance: Conformance, *, first_wins: bool) -> None:
    @conformance.given(key=S.digests, results=st.lists(S.action_results, min_size=2, max_size=4))
    def race(key: str, results: list[ActionResult]) -> None:
        with conformance.fresh_store(PART) as store:
            barrier = threading.Barrier(len(results))

            def work(result: ActionResult) -> bool:
                barrier.wait()
                return store.actions.put(key, result)

            with concurrent.futures.ThreadPoolExecutor(len(results)) as pool:
                won = list(pool.map(work, results))
            stored = store.actions.get(key)
            assert any(_same(stored, r) for r in results), "the stored result is none of those put"
            winners = [r for r, ok in zip(results, won, strict=True) if ok]
            assert winners, "no concurrent put reports writing"
            if first_wins and len({r.model_dump_json() for r in results}) == len(results):
                assert len(winners) == 1, f"{len(winners)} concurrent puts all claim to have won"
                assert _same(stored, winners[0])
            assert list(store.actions) == [key]

    race()


def _race_processes(conformance: Conformance, *, first_wins: bool) -> None:
    @conformance.given(heavy=True, key=S.digests, results=st.lists(S.action_results, min_size=2, max_size=2))
    def race(key: str, results: list[ActionResult]) -> None:
        with conformance.fresh_store(PART) as store:
            if not store.shared:
                pytest.skip(f"{store.url} is not shared between processes")
            module = _workers.filesystem_module(store)
            futures = [
                _workers.pool().submit(_workers.put_action, store.url, store.options, module, key, r.model_dump_json())
                for r in results
            ]
            won = [future.result() for future in futures]
            stored = store.actions.get(key)
            assert any(_same(stored, r) for r in results), "the stored result is none of those put"
            assert any(won), "no concurrent put reports writing"
            if first_wins and results[0].model_dump_json() != results[1].model_dump_json():
                assert won.count(True) == 1, f"{won.count(True)} processes all claim to have won"
                assert _same(stored, results[won.index(True)])
            assert list(store.actions) == [key]

    race()


def test_concurrent_action_puts_from_threads_keep_one_of_the_results(conformance: Conformance) -> None:
    _race_threads(conformance, first_wins=False)


def test_concurrent_action_puts_from_threads_first_result_wins(conformance: Conformance) -> None:
    # Exactly one of racing puts reports writing, and its result is the one stored.
    _needs_create_if_absent(conformance)
    _race_threads(conformance, first_wins=True)


def test_concurrent_action_puts_from_processes_keep_one_of_the_results(conformance: Conformance) -> None:
    _race_processes(conformance, first_wins=False)


def test_concurrent_action_puts_from_processes_first_result_wins(conformance: Conformance) -> None:
    _needs_create_if_absent(conformance)
    _race_processes(conformance, first_wins=True)


class ActionMachine(RuleBasedStateMachine):
    """Random puts (first wins, or overwrite), lookups and deletes against a dict model."""

    keys = Bundle("keys")

    def __init__(self, conformance: Conformance) -> None:
        super().__init__()
        self.conformance = conformance
        self.store = conformance.new_store(PART)
        self.model: dict[str, str] = {}

    @rule(target=keys, key=S.digests)
    def new_key(self, key: str) -> str:
        return key

    @rule(key=keys, result=S.action_results, overwrite=st.booleans())
    def put(self, key: str, result: ActionResult, overwrite: bool) -> None:
        self.conformance.step(PART)
        wrote = self.store.actions.put(key, result, overwrite=overwrite)
        assert wrote is (overwrite or key not in self.model)
        if wrote:
            self.model[key] = result.model_dump_json()

    @rule(key=keys)
    def lookup(self, key: str) -> None:
        self.conformance.step(PART)
        found = self.store.actions.lookup(key)
        assert (None if found is None else found.model_dump_json()) == self.model.get(key)

    @rule(key=keys)
    def delete(self, key: str) -> None:
        self.conformance.step(PART)
        assert self.store.actions.delete(key) is (key in self.model)
        self.model.pop(key, None)

    @invariant()
    def store_matches_model(self) -> None:
        assert set(self.store.actions) == set(self.model)
        assert len(_files(self.store)) == len(self.model)

    def teardown(self) -> None:
        remove_store(self.store)


def test_action_state_machine(conformance: Conformance) -> None:
    run_state_machine_as_test(lambda: ActionMachine(conformance), settings=conformance.settings())
