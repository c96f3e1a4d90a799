"""``wfe ui`` without a browser: paging, what pages say, headers, read-only, no code run, a hostile store.

The pages in a real browser, on local disk and on S3, are in ``test_ui_browser.py``.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import os
import pickle
import re
import socket
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from _cli import Cli, run_in_process
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wfe
from wfe.store._manifest import NodeRecord, RunManifest
from wfe.store._records import new_run_id

starlette = pytest.importorskip("starlette", reason="the ui extra is not installed: pip install 'wfe[ui]'")
with warnings.catch_warnings():  # starlette's test client would rather have httpx2; httpx is what is here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from wfe.ui import create_app  # noqa: E402
from wfe.ui._listing import PAGE_SIZE  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "sales" / "workflow.yaml"


def client(store: wfe.Store) -> TestClient:
    return TestClient(create_app(store), base_url="http://127.0.0.1:8000", follow_redirects=True)


def fake_runs(store: wfe.Store, count: int, workflows: tuple[str, ...] = ("alpha", "beta")) -> list[str]:
    """``count`` finished run records, one second apart, oldest first; every third one failed."""
    workflow = store.blobs.put(b'{"name":"alpha","nodes":[{"id":"a","function":"f"}]}')
    output = store.blobs.put(b'{"n": 1}')
    started = time.time() - 10 * count
    ids = []
    for index in range(count):
        moment = started + index
        artifact = wfe.Artifact(digest=output, mime="application/json", size=8)
        record = NodeRecord(status="ran", function="f", version="1", outputs=[artifact])
        manifest = RunManifest(run_id=new_run_id(moment), workflow=workflows[index % len(workflows)],
                               workflow_digest=workflow, status="failed" if index % 3 == 0 else "succeeded",
                               started=moment, finished=moment + 0.5, nodes={"a": record})
        store.runs.put(manifest)
        ids.append(manifest.run_id)
    return ids


def run_ids(page: str) -> list[str]:
    return re.findall(r'<tr data-run="([^"]+)"', page)


@pytest.fixture
def counted_store(tmp_path: Path) -> Iterator[tuple[wfe.Store, list[str]]]:
    store = wfe.open_store(str(tmp_path / "store"))
    reads: list[str] = []
    original = store.runs.get

    def get(run_id: str) -> RunManifest:
        reads.append(run_id)
        return original(run_id)

    store.runs.get = get  # type: ignore[method-assign]
    yield store, reads


def test_the_first_page_of_many_runs_reads_one_page_of_records(counted_store: Any) -> None:
    store, reads = counted_store
    ids = fake_runs(store, 2000)
    app = client(store)
    first = app.get("/runs")
    assert first.status_code == 200
    assert run_ids(first.text) == ids[::-1][:PAGE_SIZE]  # newest first
    assert len(reads) == PAGE_SIZE, "the first page read more records than it shows"
    assert "2000 runs in the store" in first.text

    older = re.search(r'id="older" href="([^"]+)"', first.text)
    assert older is not None
    second = app.get(older.group(1).replace("&amp;", "&"))
    assert run_ids(second.text) == ids[::-1][PAGE_SIZE : 2 * PAGE_SIZE]
    assert len(reads) == 2 * PAGE_SIZE
    app.get("/runs")
    assert len(reads) == 2 * PAGE_SIZE, "a finished run's record was read twice"


def test_filters_by_workflow_and_status(counted_store: Any) -> None:
    store, _ = counted_store
    ids = fake_runs(store, 120)
    app = client(store)
    page = app.get("/runs", params={"workflow": "beta", "status": "failed"}).text
    expected = [run_id for index, run_id in enumerate(ids) if index % 2 == 1 and index % 3 == 0][::-1]
    assert run_ids(page) == expected[:PAGE_SIZE] and expected
    assert app.get("/runs", params={"workflow": "nothing-like-it"}).text.count("no runs match") == 1
    bad = app.get("/runs", params={"status": "exploded"})
    assert bad.status_code == 400 and "unknown status 'exploded'" in html.unescape(bad.text)


@pytest.fixture(scope="module")
def sales(tmp_path_factory: pytest.TempPathFactory) -> tuple[wfe.Store, str, str]:
    """Two runs of the sales example, the second with another title (one config field changed)."""
    tmp_path = tmp_path_factory.mktemp("sales")
    folder = tmp_path / "sales"
    folder.mkdir()
    for name in ("sales.csv", "targets.json", "sales_functions.py"):
        (folder / name).write_bytes((EXAMPLE.parent / name).read_bytes())
    text = EXAMPLE.read_text()
    (folder / "workflow.yaml").write_text(text)
    root = str(tmp_path / "store")
    run_ids = []
    for title in ('"Sales 2026"', '"Sales 2027"'):
        (folder / "workflow.yaml").write_text(text.replace('"Sales 2026"', title))
        # as a process of its own would: this test's copy of sales_functions is never the one others import
        out = run_in_process(["run", str(folder / "workflow.yaml"), "--store", root, "--json"], folder,
                             dict(os.environ))  # fmt: skip
        assert out.returncode == 0, out.stderr
        run_ids.append(json.loads(out.stdout)["run_id"])
    return wfe.open_store(root), run_ids[0], run_ids[1]


def text_of(page: str) -> str:
    return html.unescape(" ".join(re.sub(r"<[^>]+>", " ", page).split()))


def test_pages_show_a_run_a_node_a_comparison_and_an_artifact(sales: Any) -> None:
    store, first, second = sales
    app = client(store)
    run = text_of(app.get(f"/runs/{second}").text)
    assert "sales-report" in run and "succeeded" in run and "cache hits 5 of 5" not in run
    assert run.count("hit") >= 4  # by_region, by_month, attainment and summary came from the cache

    node = app.get(f"/runs/{second}/nodes/report")
    assert node.status_code == 200
    words = text_of(node.text)
    assert "render_report" in words and "miss" in words
    assert "title: \"Sales 2026\" -> \"Sales 2027\"" in words  # wfe explain's reason, config field by field
    assert 'sandbox=""' in node.text and f"/runs/{second}/nodes/report/outputs/0/view" in node.text

    csv_node = text_of(app.get(f"/runs/{second}/nodes/sales").text)
    assert "region" in csv_node and "integer" in csv_node  # the CSV as a table, with column types

    compared = app.get("/compare", params={"a": first, "b": second}).text
    assert re.search(r'data-node="report" data-part="config field"', compared)
    assert "title: &#34;Sales 2026&#34; -&gt; &#34;Sales 2027&#34;" in compared
    assert 'data-node="by_region"' not in compared  # the same in both runs

    digest = store.runs.get(second).nodes["by_month"].outputs[0].digest
    artifact = app.get(f"/artifacts/{digest[7:20]}")
    assert artifact.url.path == f"/artifacts/{digest}"
    uses = re.findall(r'<tr data-role="(\w+)"><td><a href="/runs/([^"]+)"', artifact.text)
    assert ("produced", second) in uses and ("consumed", second) in uses and ("produced", first) in uses

    latest = app.get("/runs/latest")
    assert latest.url.path == f"/runs/{second}"


def test_outputs_are_served_so_they_cannot_script_the_apps_origin(sales: Any) -> None:
    store, _, second = sales
    app = client(store)
    view = app.get(f"/runs/{second}/nodes/report/outputs/0/view")
    assert view.status_code == 200 and view.headers["content-type"].startswith("text/html")
    assert view.headers["content-security-policy"].startswith("sandbox;")
    assert view.headers["x-content-type-options"] == "nosniff"
    download = app.get(f"/runs/{second}/nodes/report/outputs/0/download")
    assert download.headers["content-disposition"].startswith("attachment; filename=\"report-0.")
    assert download.headers["content-security-policy"].startswith("sandbox;")
    digest = store.runs.get(second).nodes["report"].outputs[0].digest
    assert download.content == store.blobs.get(digest)
    page = app.get(f"/runs/{second}")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"


def tree(root: Path) -> dict[str, tuple[int, float, str]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_browsing_every_page_leaves_the_store_as_it_was_and_nothing_but_get_is_taken(sales: Any) -> None:
    store, first, second = sales
    root = Path(store.url)
    before = tree(root)
    app = client(store)
    manifest = store.runs.get(second)
    paths = ["/runs", f"/runs/{second}", f"/runs/{second}/live", f"/compare?a={first}&b={second}"]
    for node_id, record in manifest.nodes.items():
        paths.append(f"/runs/{second}/nodes/{node_id}")
        paths += [f"/runs/{second}/nodes/{node_id}/outputs/{i}/{a}" for i in range(len(record.outputs))
                  for a in ("view", "download")]
        paths += [f"/artifacts/{o.digest}" for o in record.outputs]
    for path in paths:
        assert app.get(path).status_code == 200, path
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        answer = app.request(method, f"/runs/{second}")
        assert answer.status_code == 405 and "only reads the store" in answer.text
    assert tree(root) == before


class Boom:
    """Unpickling this makes a folder: proof that something was unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (self.marker,))


def test_no_page_unpickles_an_output_or_imports_a_workflows_module(
    sales: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store, _, original = sales
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(Boom(str(marker)))
    digest = store.blobs.put(payload)
    manifest = store.runs.get(original)
    pickled = wfe.Artifact(digest=digest, mime="application/x-python-pickle", size=len(payload))
    manifest.nodes["summary"].outputs = [pickled]
    second = manifest.run_id = new_run_id()
    store.runs.put(manifest)
    # another test in this process may have imported it from its own folder: put aside while the pages load
    imported = sys.modules.pop("sales_functions", None)
    request.addfinalizer(lambda: imported is not None and sys.modules.setdefault("sales_functions", imported))
    app = client(store)
    node = app.get(f"/runs/{second}/nodes/summary")
    assert f"binary, {len(payload):,} bytes" in node.text
    for path in (f"/runs/{second}", f"/runs/{second}/nodes/report", f"/artifacts/{digest}",
                 f"/runs/{second}/nodes/summary/outputs/0/download", f"/runs/{second}/nodes/summary/outputs/0/view"):
        assert app.get(path).status_code == 200
    assert app.get(f"/runs/{second}/nodes/summary/outputs/0/view").headers["content-type"] == "application/octet-stream"
    assert not marker.exists(), "a page unpickled an output"
    assert "sales_functions" not in sys.modules, "a page imported the workflow's module"


def test_the_app_answers_only_requests_addressed_to_it() -> None:
    store = wfe.open_store(f"memory://ui-{uuid.uuid4().hex[:8]}")
    app = TestClient(create_app(store), base_url="http://evil.example:8000")
    answer = app.get("/runs")
    assert answer.status_code == 400 and "unknown host" in answer.text
    assert client(store).get("/runs").status_code == 200


def test_importing_wfe_or_any_other_command_loads_no_web_framework() -> None:
    code = ("import sys, wfe, wfe.cli; wfe.cli.build_parser(); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'starlette', 'uvicorn', 'jinja2', 'selenium'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_port_in_use_is_one_line_and_exit_2(wfe_cli: Cli, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = wfe_cli("ui", "--store", str(tmp_path / "store"), "--port", str(port))
    assert done.returncode == 2
    assert done.stderr == f"error: port {port} is in use on 127.0.0.1; pass --port\n"
    bad = wfe_cli("ui", "--port", "70000")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --port")


def test_wfe_ui_listens_on_loopback_only_unless_told(tmp_path: Path) -> None:
    psutil = pytest.importorskip("psutil")
    process = subprocess.Popen([sys.executable, "-m", "wfe", "ui", "--store", str(tmp_path / "store"), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"at http://127\.0\.0\.1:(\d+)/", line)
        assert found, line
        listening = [c.laddr for c in psutil.Process(process.pid).net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN]
        assert listening and all(address.ip == "127.0.0.1" for address in listening), listening
        assert {address.port for address in listening} == {int(found.group(1))}
    finally:
        process.terminate()
        process.wait(timeout=30)


# A hostile store: records and bytes anyone could have written. Every page answers, with an error page where
# it must, and never with a server error or a traceback.

MIMES = ["text/csv", "application/json", "application/vnd.apache.parquet", "text/html", "image/svg+xml",
         "image/png", "text/plain", "application/x-python-pickle", "application/octet-stream",
         "text/tab-separated-values", "application/geo+json"]
FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.floats(min_value=0, max_value=4e9)
TEXT = st.text(max_size=40)


@st.composite
def hostile_run(draw: Any, digests: list[str]) -> dict[str, Any]:
    digest = st.sampled_from(digests) | st.just("sha256:" + "0" * 64)
    artifact = st.fixed_dictionaries({
        "digest": digest, "mime": st.sampled_from(MIMES), "size": st.integers(0, 2**40),
    }, optional={"name": TEXT, "kind": st.sampled_from(["inline", "ephemeral"]), "value": st.integers()})
    node = st.fixed_dictionaries({
        "status": st.sampled_from(["ran", "cached", "failed", "skipped", "pending", "running", "bogus"]),
    }, optional={
        "function": TEXT, "version": TEXT, "config": digest, "action_key": digest,
        "inputs": st.lists(artifact, max_size=3), "outputs": st.lists(artifact, max_size=3),
        "duration": FLOATS, "error": TEXT, "traceback": TEXT, "log": digest, "subruns": st.lists(TEXT, max_size=2),
    })
    return draw(st.fixed_dictionaries({
        "workflow": TEXT, "workflow_digest": digest, "started": FLOATS,
        "status": st.sampled_from(["running", "succeeded", "failed", "interrupted"]),
        "nodes": st.dictionaries(st.text(min_size=1, max_size=12), node, max_size=4),
    }, optional={"finished": FLOATS, "parent": TEXT, "owner": TEXT, "rerun_of": TEXT}))


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory: pytest.TempPathFactory) -> wfe.Store:
    store = wfe.open_store(str(tmp_path_factory.mktemp("hostile") / "store"))
    wfe.run(str(EXAMPLE), store)
    return store


BLOBS = st.binary(max_size=600) | st.sampled_from([
    b"PAR1garbage PAR1", b"\x89PNG\r\n\x1a\n\x00", b'{"a": ' * 5000, b"a,b\n1,2\n\"unclosed", b"[" * 100_000,
    b"\xff\xfe\x00not text", b"<script>document.title='x'</script>",
])


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), blob=BLOBS, garbage=st.none() | st.binary(max_size=300))
def test_a_hostile_store_gives_pages_or_error_pages_never_a_server_error(
    hostile_store: wfe.Store, data: st.DataObject, blob: bytes, garbage: bytes | None, caplog: pytest.LogCaptureFixture
) -> None:
    store = hostile_store
    other = next(iter(store.runs))  # the sales run
    digests = [store.blobs.put(blob), store.blobs.put(b"{}"), store.runs.get(other).workflow_digest]
    document = data.draw(hostile_run(digests))
    run_id = new_run_id()
    document["run_id"] = run_id
    raw = garbage if garbage is not None else json.dumps(document).encode()
    (Path(store.url) / "runs" / f"{run_id}.json").write_bytes(raw)
    app = client(store)
    paths = ["/runs", f"/runs/{run_id}", f"/runs/{run_id}/live", f"/compare?a={other}&b={run_id}",
             f"/compare?a={run_id}&b={run_id[:12]}", f"/artifacts/{digests[0]}", f"/artifacts/{digests[0][7:21]}",
             f"/artifacts/{digests[0]}/view?mime=text/html",
             "/runs?status=failed&workflow=" + quote(document["workflow"])]
    for node_id in document["nodes"] if garbage is None else []:
        base = f"/runs/{run_id}/nodes/{quote(node_id, safe='')}"
        paths += [base, f"{base}/outputs/0/view", f"{base}/inputs/0/download"]
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="wfe.ui"):
        for path in paths:
            answer = app.get(path)
            assert answer.status_code in (200, 400, 404, 502), (path, answer.status_code, answer.text[-500:])
            page = answer.headers["content-type"].startswith("text/html") and not path.endswith("/live")
            if page and "sandbox" not in answer.headers.get("content-security-policy", ""):
                assert answer.text.rstrip().endswith("</html>"), path  # a whole page, not one cut off by an error
    assert not caplog.records, [r.getMessage() for r in caplog.records]


def test_new_runs_appear_and_removed_runs_go_without_reading_every_record(counted_store: Any) -> None:
    from wfe.ui._listing import FULL_LISTING, LISTING_TTL, RunIndex

    store, reads = counted_store
    ids = fake_runs(store, 60)
    now = [1000.0]
    index = RunIndex(store, clock=lambda: now[0])
    assert [r.run_id for r in index.page(size=5).rows] == ids[::-1][:5]
    newer = fake_runs(store, 1, ("gamma",))  # started ten seconds ago: after every other run
    assert [r.run_id for r in index.page(size=5).rows] == ids[::-1][:5], "a listing is reused for a while"
    now[0] += LISTING_TTL
    reads.clear()
    assert [r.run_id for r in index.page(size=5).rows] == [*newer, *ids[::-1][:4]]
    assert reads == newer  # only the new run's record was read: the others were read before

    store.runs.delete(ids[-1])
    now[0] += FULL_LISTING
    assert [r.run_id for r in index.page(size=5).rows] == [*newer, *ids[::-1][1:5]]


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    from servers.s3 import s3_server

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with s3_server() as running:
        yield running


def test_on_s3_the_first_page_costs_the_listing_and_one_page_of_reads(s3: Any) -> None:
    pytest.importorskip("s3fs")
    store = wfe.open_store(s3.url(f"ui-{uuid.uuid4().hex[:8]}"), **s3.options)
    workflow = store.blobs.put(b"{}")
    started = time.time() - 5000
    manifests = [RunManifest(run_id=new_run_id(started + i), workflow="w", workflow_digest=workflow,
                             status="succeeded", started=started + i, finished=started + i + 1)
                 for i in range(200)]
    store.io.gather(store.runs.put, manifests)
    s3.reset_requests()
    page = client(store).get("/runs")
    assert run_ids(page.text) == [m.run_id for m in manifests[::-1][:PAGE_SIZE]]
    requests = s3.requests()
    listings = [r for r in requests if r["method"] == "GET" and "list-type=2" in r["query"]]
    records = [r for r in requests if r["method"] == "GET" and "/runs/" in r["path"]]
    assert len(listings) == 1  # 1,000 names a request
    assert len(records) == PAGE_SIZE  # of 200 records
