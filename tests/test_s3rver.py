"""wfe on s3rver, a third-party S3 server nobody here wrote, which ignores ``If-None-Match``.

The S3 backend must find that out at opening (not trust the API's name) and
then never lean on conditional writes; ``wfe check-store`` must say so in one
line, skip what rests on it, tell any failing property in full, and finish
within its budget whatever the server does.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

import wfe

pytest.importorskip("s3fs")

from servers.s3rver import S3rver, Unavailable, s3rver_server

LACKS = (
    "lacks create-if-absent writes (the endpoint ignores If-None-Match): "
    "first-result-wins and leases are not held on this store"
)


@pytest.fixture
def s3rver() -> Iterator[S3rver]:
    """s3rver on a free loopback port, with a fresh bucket and data folder; stopped after the test."""
    try:
        with s3rver_server() as server:
            yield server
    except Unavailable as exc:
        pytest.skip(str(exc))


def _check_store(server: S3rver, *args: str, timeout: float) -> tuple[subprocess.CompletedProcess[str], float]:
    """``wfe check-store`` on a new prefix of the server, in a process of its own; the result and its seconds."""
    options = [f"--store-option={name}={value}" for name, value in server.options.items()]
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    env.pop("PYTEST_ADDOPTS", None)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "wfe", "check-store", server.url(f"check-{uuid.uuid4().hex[:8]}"),
                           *options, *args], capture_output=True, text=True, timeout=timeout, env=env)  # fmt: skip
    return done, time.monotonic() - started


def test_s3rver_ignores_if_none_match(s3rver: S3rver) -> None:
    client = s3rver.client()
    client.put_object(Bucket=s3rver.bucket, Key="k", Body=b"first", IfNoneMatch="*")
    client.put_object(Bucket=s3rver.bucket, Key="k", Body=b"second", IfNoneMatch="*")  # AWS would answer 412
    assert client.get_object(Bucket=s3rver.bucket, Key="k")["Body"].read() == b"second"


def test_a_store_on_s3rver_finds_out_and_does_not_rely_on_conditional_writes(s3rver: S3rver) -> None:
    from wfe.store._digest import digest_of
    from wfe.store._manifest import ActionResult

    store = wfe.open_store(s3rver.url("store"), **s3rver.options)
    assert store.io.conditional_create is False and store.io.exclusive_publish is False
    assert "If-None-Match" in store.io.capability_notes["conditional_create"]
    assert store.blobs.put_new(b"twice")[2] is True
    assert store.blobs.put_new(b"twice")[2] is False  # told by looking first, not by a refusal that never comes
    key = digest_of(b"an action")
    first = ActionResult(outputs=[], function="first", version="1", config=digest_of(b""), inputs=[], created=0.0)
    second = first.model_copy(update={"function": "second"})
    assert store.actions.put(key, first) is True
    assert store.actions.put(key, second) is False  # the entry is there: kept, not overwritten
    assert wfe.open_store(s3rver.url("store"), **s3rver.options).actions.get(key).function == "first"


@pytest.mark.slow  # four properties that race writers over HTTP: most of a minute
def test_check_store_on_s3rver_skips_what_rests_on_conditional_writes(s3rver: S3rver) -> None:
    done, _seconds = _check_store(s3rver, "-k", "first_result_wins or concurrent_action_puts", timeout=300)
    lines = done.stdout.splitlines()
    assert LACKS in lines, done.stdout
    skipped = [line for line in lines if line.startswith("actions    skipped")]
    assert len(skipped) == 2 and all("first_result_wins" in line for line in skipped), done.stdout
    assert f"  skipped 2: the backend {LACKS}" in lines, done.stdout
    # What holds without conditional writes (one racing result kept whole) is still checked. s3rver may tear
    # racing PUTs of one key: if that shows, the property is told with its counterexample, never passed over.
    failed = _told_failures(lines)
    racing = {f"test_concurrent_action_puts_from_{how}_keep_one_of_the_results" for how in ("threads", "processes")}
    assert set(failed) <= racing, done.stdout
    assert all(any(entry.startswith(("Failing test case", "Falsifying")) for entry in told) for told in failed.values())
    expected = f"{len(failed)} propert{'y' if len(failed) == 1 else 'ies'} failed on s3://" if failed else "all "
    assert lines[-1].startswith(expected) and done.returncode == (1 if failed else 0), done.stdout + done.stderr


def _told_failures(lines: list[str]) -> dict[str, list[str]]:
    """Each ``  failed: NAME`` in a check-store summary, with the lines that tell it (stripped)."""
    told: dict[str, list[str]] = {}
    for index, line in enumerate(lines):
        if line.startswith("  failed: "):
            entries = told[line.removeprefix("  failed: ")] = []
            for follow in lines[index + 1 :]:
                if not follow.startswith("    "):
                    break
                entries.append(follow.strip())
            assert entries and ": " in entries[0], lines  # "AssertionError: ...", or the exception's line
    return told


@pytest.mark.slow  # the whole suite over HTTP to a Node.js server: a few minutes
def test_check_store_on_s3rver_finishes_within_its_budget_and_tells_every_failure(s3rver: S3rver) -> None:
    budget = 180
    done, seconds = _check_store(s3rver, f"--budget={budget}s", timeout=budget + 120)
    lines = done.stdout.splitlines()
    assert seconds < budget + 60, f"{seconds:.0f} s\n{done.stdout}"
    assert LACKS in lines, done.stdout
    assert not [line for line in lines if line.split()[1:2] == ["hung"]], done.stdout
    # Every failing property is named with what failed, where, and (where hypothesis drove it) its counterexample.
    for told in _told_failures(lines).values():
        assert any(entry.startswith("at ") for entry in told), done.stdout
    # The verdict: all hold, or how many failed, or how many the budget left out (which is not a pass).
    verdict = lines[-1]
    failed = sum(line.startswith("  failed: ") for line in lines)
    left = sum(
        int(found) for line in lines for found in re.findall(r"^\w+ +(?:FAIL|-) +\d+ passed.*?, (\d+) not run", line)
    )
    if failed:
        assert verdict.startswith(f"{failed} propert"), done.stdout
    if left:
        assert f"{left} not run within the budget of {budget // 60} min" in verdict, done.stdout
    assert (done.returncode == 0) == verdict.startswith("all properties hold on s3://") == (not failed and not left)


def test_the_server_is_stopped_when_its_context_exits() -> None:
    try:
        with s3rver_server() as server:
            process = server.process
            assert process is not None and process.poll() is None
    except Unavailable as exc:
        pytest.skip(str(exc))
    assert process.poll() is not None
