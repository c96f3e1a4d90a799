"""Conformance of the run store: manifests under their run id, updated in place, listed oldest first."""

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

PART = "runs"


def _files(store: wfe.Store) -> set[str]:
    return {path for path in data_files(store) if path.startswith("runs/")}


def test_run_manifest_round_trips_and_put_overwrites(conformance: Conformance) -> None:
    @conformance.given(manifest=S.run_manifests(), update=S.run_manifests())
    def put_then_get(manifest: wfe.RunManifest, update: wfe.RunManifest) -> None:
        with conformance.fresh_store(PART) as store:
            store.runs.put(manifest)
            assert store.runs.get(manifest.run_id) == manifest
            assert store.runs.exists(manifest.run_id)
            assert list(store.runs) == [manifest.run_id]
            assert all(S.SAFE_KEY_RE.fullmatch(path) for path in raw_files(store))
            later = update.model_copy(update={"run_id": manifest.run_id})
            store.runs.put(later)
            assert store.runs.get(manifest.run_id) == later
            assert len(_files(store)) == 1

    put_then_get()


def test_missing_run_raises_not_found(conformance: Conformance) -> None:
    @conformance.given(run_id=S.run_ids)
    def read_missing(run_id: str) -> None:
        with conformance.fresh_store(PART) as store:
            with pytest.raises(wfe.NotFoundError):
                store.runs.get(run_id)
            assert not store.runs.exists(run_id)
            assert store.runs.delete(run_id) is False

    read_missing()


def test_invalid_run_ids_are_rejected(conformance: Conformance) -> None:
    @conformance.given(run_id=S.invalid_run_ids)
    def reject(run_id: Any) -> None:
        with conformance.fresh_store(PART) as store:
            for method in (store.runs.get, store.runs.exists, store.runs.delete):
                with pytest.raises(wfe.InvalidNameError):
                    method(run_id)
            assert raw_files(store) == set()

    reject()


def test_runs_are_listed_oldest_first_and_agree_with_deletes(conformance: Conformance) -> None:
    # Plain manifests: this property is about run ids, and simple values keep a failure quick to shrink.
    @conformance.given(ids=st.sets(S.run_ids, max_size=6), data=st.data())
    def agree(ids: set[str], data: st.DataObject) -> None:
        with conformance.fresh_store(PART) as store:
            for run_id in ids:
                store.runs.put(wfe.RunManifest(run_id=run_id, workflow="w", workflow_digest=S.sha256_digest(b""),
                                               started=0.0))
            doomed = data.draw(st.sets(st.sampled_from(sorted(ids))) if ids else st.just(set()))
            for run_id in doomed:
                assert store.runs.delete(run_id) is True
            assert list(store.runs) == sorted(ids - doomed)
            for run_id in ids:
                assert store.runs.exists(run_id) == (run_id not in doomed)
            assert len(_files(store)) == len(ids - doomed)

    agree()


LONG_LISTING = 1501  # past one page of every service known: S3 lists 1,000 keys, Supabase 100 by default, 1,500 at most


def test_listings_are_complete_past_one_page(conformance: Conformance) -> None:
    """A client that stops at its first page of results loses records silently: list more than any page holds."""
    ids = [f"20260101T000000000Z-{n:06x}" for n in range(LONG_LISTING)]
    digest = S.sha256_digest(b"")
    with conformance.fresh_store(PART) as store:

        def put(run_id: str) -> None:
            store.runs.put(wfe.RunManifest(run_id=run_id, workflow="w", workflow_digest=digest, started=0.0))

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(put, ids))
        listed = list(store.runs)
        assert len(listed) == len(ids), f"listed {len(listed)} of {len(ids)} records"
        assert listed == ids


def test_concurrent_run_updates_from_threads_and_processes(conformance: Conformance) -> None:
    @conformance.given(heavy=True, run_id=S.run_ids, versions=st.lists(S.run_manifests(), min_size=2, max_size=4))
    def race(run_id: str, versions: list[wfe.RunManifest]) -> None:
        same = [m.model_copy(update={"run_id": run_id}) for m in versions]
        with conformance.fresh_store(PART) as store:
            barrier = threading.Barrier(len(same))

            def work(manifest: wfe.RunManifest) -> None:
                barrier.wait()
                store.runs.put(manifest)

            with concurrent.futures.ThreadPoolExecutor(len(same)) as pool:
                list(pool.map(work, same))
            assert store.runs.get(run_id) in same  # one whole version, never a mix
            if store.shared:
                module = _workers.filesystem_module(store)
                futures = [
                    _workers.pool().submit(_workers.put_run, store.url, store.options, module, m.model_dump_json())
                    for m in same
                ]
                [future.result() for future in futures]
                assert store.runs.get(run_id) in same
            assert list(store.runs) == [run_id]

    race()


class RunMachine(RuleBasedStateMachine):
    """Random puts (overwriting), gets and deletes over a small pool of run ids."""

    def __init__(self, conformance: Conformance) -> None:
        super().__init__()
        self.conformance = conformance
        self.store = conformance.new_store(PART)
        self.model: dict[str, wfe.RunManifest] = {}

    run_id = st.sampled_from([f"2026010{n}T120000000Z-00000{n}" for n in range(1, 6)])

    @rule(run_id=run_id, manifest=S.run_manifests())
    def put(self, run_id: str, manifest: wfe.RunManifest) -> None:
        self.conformance.step(PART)
        manifest = manifest.model_copy(update={"run_id": run_id})
        self.store.runs.put(manifest)
        self.model[run_id] = manifest

    @rule(run_id=run_id)
    def get(self, run_id: str) -> None:
        self.conformance.step(PART)
        if run_id in self.model:
            assert self.store.runs.get(run_id) == self.model[run_id]
        else:
            with pytest.raises(wfe.NotFoundError):
                self.store.runs.get(run_id)

    @rule(run_id=run_id)
    def delete(self, run_id: str) -> None:
        self.conformance.step(PART)
        assert self.store.runs.delete(run_id) is (run_id in self.model)
        self.model.pop(run_id, None)

    @invariant()
    def store_matches_model(self) -> None:
        assert list(self.store.runs) == sorted(self.model)
        assert len(_files(self.store)) == len(self.model)

    def teardown(self) -> None:
        remove_store(self.store)


def test_run_state_machine(conformance: Conformance) -> None:
    run_state_machine_as_test(lambda: RunMachine(conformance), settings=conformance.settings())
