"""Reading results: values by node and port, ``wfe.load``, verified local copies, and one addressing scheme."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
from _cli import Cli
from _projects import blob_file
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wfe
from wfe.ops._address import resolve, resolve_digest

SALES = Path(__file__).resolve().parent.parent / "examples" / "sales"
HEALTH = [HealthCheck.function_scoped_fixture]


@wfe.function(name="rr_numbers", outputs="application/json")
def rr_numbers(*, count: int) -> list[int]:
    return list(range(1, count + 1))


@wfe.function(name="rr_words", inputs=["application/json"], outputs="text/plain")
def rr_words(values: list[int]) -> str:
    return " ".join(f"n{v}" for v in values)


@wfe.function(name="rr_raw", inputs=["application/json"], outputs="application/octet-stream")
def rr_raw(values: list[int]) -> bytes:
    return bytes(values) + b"\x00\xff"


@wfe.function(
    name="rr_split",
    inputs=["application/json"],
    outputs=[
        wfe.Output("application/json", name="low"),
        wfe.Output("application/json", name="high"),
        wfe.Output("application/json", name="count", kind="inline"),
    ],
)
def rr_split(values: list[int], *, pivot: int) -> tuple[list[int], list[int], int]:
    return [v for v in values if v < pivot], [v for v in values if v >= pivot], len(values)


@wfe.function(name="rr_boom", inputs=["application/json"], outputs="application/json")
def rr_boom(values: list[int]) -> int:
    raise RuntimeError("no luck")


@wfe.function(name="rr_after", inputs=["application/json"], outputs="application/json")
def rr_after(value: int) -> int:
    return value


def graph(name: str = "reading", count: int = 5, *, failing: bool = True) -> wfe.WorkflowGraph:
    nodes: list[dict[str, Any]] = [
        {"id": "numbers", "function": "rr_numbers", "config": {"count": count}},
        {"id": "words", "function": "rr_words"},
        {"id": "raw", "function": "rr_raw"},
        {"id": "split", "function": "rr_split", "config": {"pivot": 3}},
    ]
    edges = [{"source": "numbers", "target": t} for t in ("words", "raw", "split")]
    if failing:
        nodes += [{"id": "boom", "function": "rr_boom"}, {"id": "after", "function": "rr_after"}]
        edges += [{"source": "numbers", "target": "boom"}, {"source": "boom", "target": "after"}]
    return wfe.WorkflowGraph(name=name, nodes=nodes, edges=edges)


@pytest.fixture
def store(tmp_path: Path) -> wfe.Store:
    return wfe.open_store(str(tmp_path / "store"))


@pytest.fixture
def result(store: wfe.Store) -> wfe.RunResult:
    return wfe.run(graph(), store)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert isinstance(exc, wfe.WfeError), type(exc)
    assert "\n" not in text and text, text
    return text


def run_sales(wfe_cli: Cli, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    project = tmp_path / "sales"
    shutil.copytree(SALES, project)
    root = tmp_path / "store"
    out = wfe_cli("run", str(project / "workflow.yaml"), "--store", str(root), "--json")
    assert out.returncode == 0, out.stderr
    return root, json.loads(out.stdout)


# Python: result[...], value(), outputs(), path() -------------------------------------------------


def test_result_items_are_decoded_by_mime_type_as_json_text_and_bytes(result: wfe.RunResult) -> None:
    assert result["numbers"] == [1, 2, 3, 4, 5]
    assert result["words"] == "n1 n2 n3 n4 n5"
    assert result["raw"] == b"\x01\x02\x03\x04\x05\x00\xff"
    assert result.value("words") == result["words"]


def test_a_port_picks_one_output_of_a_node_with_several_including_an_inline_one(result: wfe.RunResult) -> None:
    assert result.value("split", port="low") == [1, 2]
    assert result.value("split", port="high") == [3, 4, 5]
    assert result.value("split", port="count") == 5
    assert result.output("split", "high").name == "high"


def test_a_node_with_several_outputs_and_no_port_is_one_line_listing_the_ports(result: wfe.RunResult) -> None:
    with pytest.raises(wfe.NotFoundError) as caught:
        result["split"]
    assert "name a port (low, high, count)" in one_line(caught.value)


def test_unknown_nodes_and_ports_are_one_line_errors_that_suggest_the_closest_name(result: wfe.RunResult) -> None:
    for call in (lambda: result.outputs("nope"), lambda: result["nope"], lambda: result.path("nope")):
        with pytest.raises(wfe.NotFoundError) as caught:
            call()
        assert not isinstance(caught.value, KeyError)
        text = one_line(caught.value)
        assert "no node 'nope'" in text and "numbers, words, raw, split" in text
    with pytest.raises(wfe.NotFoundError) as caught:
        result.value("nubmers")
    assert "did you mean 'numbers'?" in one_line(caught.value)
    with pytest.raises(wfe.NotFoundError) as caught:
        result.value("split", port="hihg")
    assert "no output port 'hihg'; did you mean 'high'? ports: low, high, count" in one_line(caught.value)
    with pytest.raises(wfe.NotFoundError) as caught:
        result.value("words", port="text")
    assert "leave the port out" in one_line(caught.value)


def test_failed_and_skipped_nodes_say_so_in_one_line(result: wfe.RunResult) -> None:
    with pytest.raises(wfe.NotFoundError) as caught:
        result["boom"]
    assert "node 'boom'" in one_line(caught.value) and "failed" in str(caught.value)
    assert "no luck" in str(caught.value)
    # a NodeError, which a caller can catch as such, with what the function raised and where
    error = caught.value
    assert isinstance(error, wfe.NodeError) and error.node_id == "boom"
    assert error.message.startswith("RuntimeError: no luck")
    assert 'raise RuntimeError("no luck")' in error.traceback
    with pytest.raises(wfe.NodeError, match="no luck"):
        wfe.load(f"{result.run_id}:boom", store=result.store)
    with pytest.raises(wfe.NotFoundError) as caught:
        result.value("after")
    assert "node 'after'" in one_line(caught.value) and "was skipped" in str(caught.value)


def test_explain_says_a_failed_node_failed_even_the_first_time_it_ran(result: wfe.RunResult) -> None:
    from wfe.ops._explain import explain

    told = explain(result.store, result.run_id, "boom")
    assert told.status == "failed" and told.previous_run is None
    assert told.reasons[0].endswith("nothing like it had run before")
    assert told.reasons[-1] == "it failed: RuntimeError: no luck"


def test_outputs_still_lists_every_artifact_of_a_valid_node(result: wfe.RunResult) -> None:
    (numbers,) = result.outputs("numbers")
    assert result.store.blobs.get(numbers.digest) == b"[1,2,3,4,5]"
    assert [a.name for a in result.outputs("split")] == ["low", "high", "count"]
    assert result.outputs("boom") == []


def test_path_is_a_verified_read_only_copy_and_never_the_stores_own_file(
    result: wfe.RunResult, tmp_path: Path
) -> None:
    path = result.path("raw")
    artifact = result.output("raw")
    assert path.read_bytes() == b"\x01\x02\x03\x04\x05\x00\xff"
    own = blob_file(tmp_path / "store", artifact.digest)
    assert not path.samefile(own) and tmp_path / "store" not in path.parents
    assert not os.stat(path).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert result.path("split", port="count").read_bytes() == b"5"  # an inline value, written out
    os.chmod(path, 0o644)
    path.write_bytes(b"changed by the user")  # a changed copy is not handed out again
    assert result.path("raw").read_bytes() == b"\x01\x02\x03\x04\x05\x00\xff"
    assert own.read_bytes() == b"\x01\x02\x03\x04\x05\x00\xff"


def test_a_tampered_blob_gives_an_integrity_error_not_wrong_bytes(
    store: wfe.Store, tmp_path: Path, wfe_cli: Cli
) -> None:
    result = wfe.run(graph(name="tampered", count=7, failing=False), store)
    made = result["words"]
    damaged = blob_file(tmp_path / "store", result.output("words").digest)
    damaged.chmod(0o644)
    damaged.write_bytes(damaged.read_bytes().replace(b"n1", b"n9"))
    assert result["words"] == made  # the run's own result keeps the bytes it hashed: the right ones
    later = wfe.RunResult(result.manifest, result.store)  # anything else reads the store
    for call in (lambda: result.path("words"), lambda: later["words"],
                 lambda: wfe.load(f"{result.run_id}:words", store=store)):
        with pytest.raises(wfe.IntegrityError) as caught:
            call()
        one_line(caught.value)
    before = snapshot(tmp_path / "store")
    out = wfe_cli("cat", f"{result.run_id}:words", "--store", str(tmp_path / "store"))
    assert out.returncode == 2 and out.stdout == "" and "integrity check failed" in out.stderr
    assert snapshot(tmp_path / "store") == before


# wfe.load and addresses ---------------------------------------------------------------------------


def test_load_takes_latest_a_run_prefix_with_a_port_and_a_digest_prefix(result: wfe.RunResult, tmp_path: Path) -> None:
    url = str(tmp_path / "store")
    assert wfe.load("latest:numbers", store=url) == [1, 2, 3, 4, 5]
    assert wfe.load("latest:words", store=result.store) == "n1 n2 n3 n4 n5"
    prefix = result.run_id[:-3]
    assert wfe.load(f"{prefix}:split:high", store=url) == [3, 4, 5]
    assert wfe.load(f"{prefix}:split:count", store=url) == 5
    digest = result.output("raw").digest
    assert wfe.load(digest[7:19], store=url) == b"\x01\x02\x03\x04\x05\x00\xff"  # no MIME type: bytes
    assert wfe.load(digest[:19], store=url) == wfe.load(digest, store=url)


def test_latest_is_the_newest_run_that_has_the_node(store: wfe.Store) -> None:
    first = wfe.run(graph(name="first", count=4), store)
    other = wfe.WorkflowGraph(name="other", nodes=[{"id": "only", "function": "rr_numbers", "config": {"count": 2}}])
    wfe.run(other, store)
    assert wfe.load("latest:only", store=store) == [1, 2]
    assert wfe.load("latest:numbers", store=store) == [1, 2, 3, 4]
    assert resolve(store, "latest:numbers").run_id == first.run_id
    with pytest.raises(wfe.NotFoundError) as caught:
        wfe.load("latest:nubmers", store=store)
    assert "did you mean 'numbers' (run " in one_line(caught.value)


def test_a_full_digest_is_read_without_listing_and_a_prefix_is_listed(
    result: wfe.RunResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest = result.output("numbers").digest
    listings: list[str] = []
    kind = type(result.store.io)
    real_page, real_walk = kind.list_page, kind.walk

    def page(self: Any, prefix: str, start_after: str = "", limit: int = 1000) -> Any:
        listings.append(prefix)
        return real_page(self, prefix, start_after, limit)

    def walk(self: Any, prefix: str) -> Any:
        listings.append(prefix)
        return real_walk(self, prefix)

    monkeypatch.setattr(kind, "list_page", page)
    monkeypatch.setattr(kind, "walk", walk)
    assert wfe.load(digest, store=result.store) == b"[1,2,3,4,5]"  # a bare digest has no MIME type: bytes
    assert wfe.load(digest[7:71], store=result.store) == b"[1,2,3,4,5]"
    assert listings == []
    assert resolve_digest(result.store, digest[:20]) == digest
    assert set(listings) == {f"blobs/sha256/{digest[7:9]}"}  # that one folder, never the whole store


def test_bad_addresses_are_one_line_wfe_errors(result: wfe.RunResult) -> None:
    cases = {
        "abc": "too short",
        "sha256:0123456789a": "too short",
        "sha256:../../etc/passwd": "invalid digest",
        "0" * 40: "no blob starts with",
        "latest": "invalid address",
        "a:b:c:d": "invalid address",
        "nosuchrun:numbers": "no run 'nosuchrun'",
        f"{result.run_id}:nope": "no node 'nope'",
        f"{result.run_id}:split:middle": "no output port 'middle'",
    }
    for address, message in cases.items():
        with pytest.raises(wfe.WfeError) as caught:
            wfe.load(address, store=result.store)
        assert message in one_line(caught.value), address


# Digest and run prefixes, at random --------------------------------------------------------------


@pytest.fixture(params=["local", "paged"])
def crowded(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[wfe.Store, list[str]]:
    """A store of 300 blobs and two names (not real blobs) sharing their first 40 hex characters.

    ``paged`` is a memory store whose listing comes a page of 7 names at a
    time, in name order, as S3's does a thousand at a time.
    """
    from wfe.store._paths import blob_path

    if request.param == "local":
        store = wfe.open_store(str(tmp_path / "store"))
    else:
        store = wfe.open_store(f"memory://crowded-{tmp_path.name}")
        real = store.io.list_page
        store.io.paged_listing = True  # type: ignore[misc]
        store.io.list_page = lambda prefix, start_after="", limit=1000: real(  # type: ignore[method-assign]
            prefix, start_after, min(limit, 7))
    digests = [store.blobs.put(f"blob {i}".encode()) for i in range(300)]
    shared = "ab" + "c" * 38
    twins = [f"sha256:{shared}{'0' * 24}", f"sha256:{shared}{'1' * 24}"]
    for twin in twins:
        store.io.write_bytes(blob_path(twin), b"a name only")
    return store, digests + twins


@settings(max_examples=150, deadline=None, suppress_health_check=HEALTH)
@given(data=st.data())
def test_random_digest_prefixes_resolve_to_their_blob_or_fail_in_one_line(
    crowded: tuple[wfe.Store, list[str]], data: st.DataObject
) -> None:
    store, digests = crowded
    digest = data.draw(st.sampled_from(digests))
    length = data.draw(st.integers(min_value=0, max_value=64))
    text = data.draw(st.sampled_from(["sha256:", ""])) + digest[7:7 + length]
    matching = [d for d in digests if d[7:].startswith(digest[7:7 + length])]
    if length < 12:
        with pytest.raises(wfe.WfeError, match=r"too short|invalid digest|invalid address") as caught:
            resolve_digest(store, text)
        one_line(caught.value)
    elif len(matching) == 1:
        assert resolve_digest(store, text) == digest
    else:
        with pytest.raises(wfe.NotFoundError) as caught:
            resolve_digest(store, text)
        assert f"matches {len(matching)} blobs" in one_line(caught.value)
        assert all(d in str(caught.value) for d in matching)


@pytest.fixture(scope="module")
def many_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[wfe.Store, list[str]]:
    store = wfe.open_store(str(tmp_path_factory.mktemp("runs") / "store"))
    small = wfe.WorkflowGraph(name="small", nodes=[{"id": "n", "function": "rr_numbers", "config": {"count": 3}}])
    return store, [wfe.run(small, store).run_id for _ in range(6)]


@settings(max_examples=100, deadline=None, suppress_health_check=HEALTH)
@given(data=st.data())
def test_random_run_id_prefixes_resolve_uniquely_or_fail_in_one_line(
    many_runs: tuple[wfe.Store, list[str]], data: st.DataObject
) -> None:
    store, run_ids = many_runs
    run_id = data.draw(st.sampled_from(run_ids))
    prefix = run_id[: data.draw(st.integers(min_value=1, max_value=len(run_id)))]
    matching = [r for r in run_ids if r.startswith(prefix)]
    if len(matching) == 1 or prefix == run_id:
        assert resolve(store, f"{prefix}:n").run_id == run_id
        assert wfe.load(f"{prefix}:n", store=store) == [1, 2, 3]
    else:
        with pytest.raises(wfe.NotFoundError) as caught:
            wfe.load(f"{prefix}:n", store=store)
        assert f"matches {len(matching)} runs" in one_line(caught.value)


# The command line --------------------------------------------------------------------------------


def test_cat_reads_an_address_and_a_twelve_hex_digest_prefix(wfe_cli: Cli, tmp_path: Path) -> None:
    root, first = run_sales(wfe_cli, tmp_path)
    expected = json.loads(wfe.open_store(str(root)).blobs.get(first["nodes"]["by_month"]["outputs"][0]["digest"]))
    by_month = wfe_cli("cat", "latest:by_month", "--store", str(root))
    assert by_month.returncode == 0, by_month.stderr
    assert json.loads(by_month.stdout) == expected and len(expected) == 6
    digest = first["nodes"]["summary"]["outputs"][0]["digest"]
    for text in (digest[7:19], digest[:19], f"{first['run_id'][:-2]}:summary"):
        out = wfe_cli("cat", text, "--store", str(root))
        assert out.returncode == 0, out.stderr
        assert out.stdout.encode() == wfe.open_store(str(root)).blobs.get(digest)
    copy = tmp_path / "by_month.json"
    assert wfe_cli("cat", "latest:by_month", "-o", str(copy), "--store", str(root)).returncode == 0
    assert json.loads(copy.read_text()) == expected


def test_show_and_explain_take_the_address_form(wfe_cli: Cli, tmp_path: Path) -> None:
    root, first = run_sales(wfe_cli, tmp_path)
    shown = wfe_cli("show", "latest:by_month", "--store", str(root))
    assert shown.returncode == 0, shown.stderr
    assert "by_month: ran" in shown.stdout and "report:" not in shown.stdout
    assert first["nodes"]["by_month"]["outputs"][0]["digest"] in shown.stdout
    as_json = json.loads(wfe_cli("show", f"{first['run_id'][:-2]}:by_month", "--json", "--store", str(root)).stdout)
    assert as_json["run_id"] == first["run_id"] and as_json["node"] == "by_month"
    assert as_json["outputs"] == first["nodes"]["by_month"]["outputs"]
    whole = wfe_cli("show", "latest", "--store", str(root))
    assert "report: ran" in whole.stdout and "by_month: ran" in whole.stdout
    explained = wfe_cli("explain", "latest:by_month", "--store", str(root))
    assert explained.returncode == 0, explained.stderr
    assert explained.stdout.startswith(f"node 'by_month' in run {first['run_id']}: ran")
    assert explained.stdout == wfe_cli("explain", "latest", "by_month", "--store", str(root)).stdout


@pytest.mark.parametrize(
    ("command", "address", "message"),
    [
        ("cat", "0123456789a", "too short: give at least 12 hex characters"),
        ("cat", "0123456789abcdef", "no blob starts with '0123456789abcdef'"),
        ("cat", "abcccccccccc", "matches 2 blobs"),
        ("cat", "latest:by_mnth", "did you mean 'by_month'"),
        ("cat", "latest:by_month:table", "no output port 'table'"),
        ("cat", "nosuchrun:by_month", "no run 'nosuchrun'"),
        ("show", "latest:nope", "has node 'nope'"),
        ("show", "latest:by_month:table", "no output port 'table'"),
        ("explain", "latest:nope", "has node 'nope'"),
        ("explain", "0123456789abcdef", "is a digest; expected RUN:NODE"),
    ],
)
def test_bad_addresses_on_the_command_line_are_one_line_exit_2_and_leave_the_store_untouched(
    wfe_cli: Cli, tmp_path: Path, command: str, address: str, message: str
) -> None:
    root, _ = run_sales(wfe_cli, tmp_path)
    for tail in ("0" * 24, "1" * 24):  # two names sharing a prefix, for the ambiguous case
        path = blob_file(root, "sha256:ab" + "c" * 38 + tail)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"a name only")
    before = snapshot(root)
    out = wfe_cli(command, address, "--store", str(root))
    assert out.returncode == 2, out.stdout
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], out.stderr
    assert out.stdout == ""
    assert snapshot(root) == before
