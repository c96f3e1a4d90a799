"""The conformance suite is only worth something if it fails on subtly broken backends.

Each filesystem in :mod:`faulty_fs` breaks one promise; the suite, pointed at
it by URL alone, must fail and name a property that covers that promise. The
same filesystem without the fault, and the built-in memory store, must pass.
"""

from __future__ import annotations

from pathlib import Path

import faulty_fs
import pytest

from conformance_tests._run import SuiteResult, run_suite
from wfe.cli import main

pytestmark = pytest.mark.slow  # runs the whole suite over and over: the second tier

# For each fault, the properties that catch it (with --exitfirst the suite stops at the first).
CATCHERS = {
    "faulty-truncate": {"test_multi_mib_blobs_round_trip", "test_no_partial_blob_visible_while_put_is_in_flight"},
    # Racing writers can also catch a torn record half-written.
    "faulty-torn": {
        "test_no_partial_blob_visible_while_put_is_in_flight",
        "test_concurrent_action_puts_from_threads_keep_one_of_the_results",
        "test_concurrent_action_puts_from_threads_first_result_wins",
        "test_concurrent_action_puts_from_processes_keep_one_of_the_results",
        "test_concurrent_action_puts_from_processes_first_result_wins",
        "test_concurrent_puts_from_threads",
        "test_concurrent_puts_from_processes",
        "test_concurrent_config_puts_from_threads",
        "test_concurrent_config_puts_from_processes",
        "test_concurrent_function_puts_from_threads_and_processes",
        "test_concurrent_run_updates_from_threads_and_processes",
    },
    "faulty-listing": {
        "test_action_exists_delete_and_iterate_agree",
        "test_action_state_machine",
        "test_concurrent_action_puts_from_threads_keep_one_of_the_results",
        "test_concurrent_action_puts_from_threads_first_result_wins",
        "test_exists_delete_and_iterate_agree",
        "test_concurrent_puts_from_threads",
        "test_concurrent_puts_from_processes",
        "test_blob_state_machine",
        "test_config_exists_delete_and_iterate_agree",
        "test_concurrent_config_puts_from_threads",
        "test_concurrent_config_puts_from_processes",
        "test_config_state_machine",
        "test_function_exists_delete_and_iterate_agree",
        "test_function_state_machine",
        "test_runs_are_listed_oldest_first_and_agree_with_deletes",
        "test_run_state_machine",
        "test_listings_are_complete_past_one_page",
    },
    # Only a listing longer than any service's page shows a client that stops at its first page.
    "faulty-long-listing": {"test_listings_are_complete_past_one_page"},
    "faulty-delete": {
        "test_action_exists_delete_and_iterate_agree",
        "test_action_state_machine",
        "test_exists_delete_and_iterate_agree",
        "test_blob_state_machine",
        "test_config_exists_delete_and_iterate_agree",
        "test_config_state_machine",
        "test_function_exists_delete_and_iterate_agree",
        "test_function_state_machine",
        "test_runs_are_listed_oldest_first_and_agree_with_deletes",
        "test_run_state_machine",
    },
}


def _url(protocol: str) -> str:
    return f"{protocol}://conformance"


def _suite(protocol: str, base: Path, *extra: str) -> SuiteResult:
    return run_suite(_url(protocol), options={"base": str(base)}, extra_args=extra)


def test_every_fault_is_registered_under_its_own_protocol() -> None:
    protocols = {str(cls.protocol) for cls in faulty_fs.ALL}
    assert protocols == {"faultless", *CATCHERS}


@pytest.mark.parametrize("protocol", sorted(CATCHERS))
def test_suite_fails_on_faulty_backend(protocol: str, tmp_path: Path) -> None:
    result = _suite(protocol, tmp_path, "--exitfirst")
    assert not result.passed, f"the suite passed on {protocol}:\n{result.output[-2000:]}"
    assert result.failed, result.output[-2000:]
    assert result.failed_names() <= CATCHERS[protocol], result.output[-4000:]


def test_suite_passes_on_the_same_filesystem_without_faults(tmp_path: Path) -> None:
    result = _suite("faultless", tmp_path)
    assert result.passed, result.output[-4000:]
    assert {o.part for o in result.outcomes} == {"blobs", "functions", "configs", "actions", "runs"}
    # Shared on disk, so the multi-process properties ran too.
    assert "test_concurrent_puts_from_processes" in {o.name for o in result.outcomes if o.outcome == "passed"}
    # A generic filesystem cannot refuse a second writer: what rests on that is skipped, saying so.
    skipped = {o.name: o.detail for o in result.outcomes if o.outcome == "skipped"}
    assert set(skipped) == {
        "test_concurrent_action_puts_from_threads_first_result_wins",
        "test_concurrent_action_puts_from_processes_first_result_wins",
    }
    assert all(why.startswith("the backend lacks create-if-absent writes") for why in skipped.values()), skipped


def test_check_store_says_why_it_skipped_a_property(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    only = ["-k", "concurrent_action_puts_from_threads"]
    code = main(["check-store", _url("faultless"), "--store-option", f"base={tmp_path}", *only])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "actions    ok    1 passed, 1 skipped" in out, out
    assert (
        "  skipped 1: the backend lacks create-if-absent writes (a second create is refused, but objects are seen "
        "while they are written): first-result-wins and leases are not held"
    ) in out


def test_check_store_passes_on_memory(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check-store", "memory://conformance-check"])
    out = capsys.readouterr().out
    assert code == 0, out
    for part in ("blobs", "functions", "configs", "actions", "runs"):
        assert f"\n{part}" in out or out.startswith(part)
    assert "all properties hold" in out


def test_check_store_fails_on_faulty_backend_and_names_the_property(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["check-store", _url("faulty-torn"), "--store-option", f"base={tmp_path}"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "blobs      FAIL" in out
    assert "failed: test_no_partial_blob_visible_while_put_is_in_flight" in out
    assert "a partial blob was visible" in out
    assert "failed on faulty-torn://conformance" in out


def test_check_store_shows_a_shrunk_counterexample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check-store", _url("faulty-delete"), "--store-option", f"base={tmp_path}", "--exitfirst"])
    out = capsys.readouterr().out
    assert code == 1, out
    (name,) = (line.split("failed: ", 1)[1] for line in out.splitlines() if "failed: " in line)
    assert name in CATCHERS["faulty-delete"], out
    assert "Failing test case" in out or "Falsifying example" in out, out


def test_check_store_rejects_a_bad_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-store", "nosuchscheme://x"]) == 2
    assert capsys.readouterr().err.startswith("error: ")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("memory://x", "memory://x/t-1"),
        ("memory://x/", "memory://x/t-1"),
        ("s3://bucket/prefix?endpoint_url=http://127.0.0.1:9000", "s3://bucket/prefix/t-1?endpoint_url=http://127.0.0.1:9000"),
        ("/tmp/store", "/tmp/store/t-1"),
    ],
)
def test_fresh_stores_go_under_a_sub_prefix_before_the_query(url: str, expected: str) -> None:
    from conformance_tests._support import with_subprefix

    assert with_subprefix(url, "t-1") == expected
