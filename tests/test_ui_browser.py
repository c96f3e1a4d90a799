"""``wfe ui`` in headless Chromium, served by the real command, on local disk and on the S3 server.

Each page is checked by what it says (text in the DOM), not only that it
loads: the runs list, a run (graph, table, failure with traceback and log), a
node's CSV, JSON and PNG outputs, a comparison, an artifact found by a digest
prefix typed into the search box; a running run's page following the run as
it goes; and an HTML or SVG output whose script tries to reach the app, which
must not run. Needs Debian's ``chromium`` and ``chromium-driver`` and the
``selenium`` package; skips, saying which is missing, otherwise.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from servers.s3 import FAKE_KEY, FAKE_SECRET, s3_server

import wfe
from wfe.engine._host import hostname
from wfe.store._manifest import NodeRecord, RunManifest
from wfe.store._records import new_run_id

pytest.importorskip("starlette", reason="the ui extra is not installed: pip install 'wfe[ui]'")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the test extra has it)")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 20  # seconds a page may take to show what is awaited (a bound, not a timing)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium); .ci/run installs it")
    if not os.path.exists(CHROMEDRIVER):
        pytest.skip("chromedriver is not installed (Debian: apt-get install chromium-driver); .ci/run installs it")
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def png(width: int, height: int) -> bytes:
    raw = b"".join(b"\x00" + b"".join(bytes((40 + x, 120, 200 - y)) for x in range(width)) for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


# What a hostile output tries: change the app's title, set a cookie on its origin, read one of its pages.
HOSTILE_HTML = """<!doctype html><title>inner</title><p id="hostile">hostile page</p>
<script>
document.title = "pwned";
try { document.cookie = "pwned=1; path=/"; } catch (e) {}
try { parent.document.title = "pwned-parent"; parent.document.body.dataset.pwned = "html"; } catch (e) {}
fetch("/runs").then(function (r) { return r.text(); }).then(function (t) {
  try { parent.document.body.dataset.read = String(t.length); } catch (e) {}
  navigator.sendBeacon && navigator.sendBeacon("/runs?leak=" + t.length);
});
</script>"""
HOSTILE_SVG = """<svg xmlns="http://www.w3.org/2000/svg" width="240" height="40"
 onload="document.title='pwned'; try { parent.document.body.dataset.pwned = 'svg-onload' } catch (e) {}">
<script>try { parent.document.title = 'pwned-parent'; parent.document.body.dataset.pwned = 'svg' } catch (e) {}</script>
<text id="hostile" x="6" y="26">hostile svg</text></svg>"""


@wfe.function(outputs="text/csv")
def demo_table(*, rows: int) -> str:
    return "day,site,reading\n" + "".join(f"2026-03-{1 + i:02d},site-{i % 2},{i * 7 % 10}.5\n" for i in range(rows))


@wfe.function(inputs=["text/csv"], outputs="application/json")
def demo_summary(text: str) -> dict[str, Any]:
    lines = text.splitlines()[1:]
    return {"rows": len(lines), "sites": {"site-0": {"max": 9.5}, "site-1": {"max": 8.5}}, "unit": "mg/l"}


@wfe.function(inputs=["application/json"], outputs="image/png")
def demo_chart(values: dict[str, Any]) -> bytes:
    return png(24 + values["rows"], 16)


@wfe.function(inputs=["application/json"], outputs="text/html")
def demo_hostile_html(values: dict[str, Any]) -> str:
    return HOSTILE_HTML


@wfe.function(inputs=["application/json"], outputs="image/svg+xml")
def demo_hostile_svg(values: dict[str, Any]) -> bytes:
    return HOSTILE_SVG.encode()


@wfe.function(inputs=["application/json"], outputs="text/plain")
def demo_broken(values: dict[str, Any]) -> str:
    print("checking", values["rows"], "rows")
    raise ValueError("reading above the limit")


def demo(rows: int, *, failing: bool) -> wfe.Workflow:
    wf = wfe.Workflow("ui-demo")
    made = wf.node(demo_table, id="table", rows=rows)
    values = wf.node(demo_summary, made, id="summary")
    wf.node(demo_chart, values, id="chart")
    wf.node(demo_hostile_html, values, id="hostile_html")
    wf.node(demo_hostile_svg, values, id="hostile_svg")
    if failing:
        wf.node(demo_broken, values, id="broken")
    return wf


@contextlib.contextmanager
def served(url: str, options: dict[str, str]) -> Iterator[str]:
    """``wfe ui`` on a free port of 127.0.0.1 in its own process; its base URL; stopped on exit."""
    extra = [arg for key, value in options.items() for arg in ("--store-option", f"{key}={value}")]
    process = subprocess.Popen([sys.executable, "-m", "wfe", "ui", "--store", url, "--port", "0", *extra],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stderr is not None
        line = process.stdout.readline()
        found = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
        assert found, f"wfe ui did not start: {line}{process.stderr.read() if process.poll() is not None else ''}"
        yield found.group(1)
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with s3_server() as running:
        yield running


@pytest.fixture(scope="module", params=["local", "s3"])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A store with two demo runs (the second with another config and a failing node), served by ``wfe ui``."""
    chromium()
    if request.param == "local":
        url, options = str(tmp_path_factory.mktemp("ui") / "store"), {}
    else:
        server = request.getfixturevalue("s3")
        url, options = server.url(f"ui-{uuid.uuid4().hex[:8]}"), server.options
    store = wfe.open_store(url, **options)
    first = wfe.run(demo(4, failing=False), store)
    second = wfe.run(demo(6, failing=True), store)
    assert second.status == "failed"
    with served(url, options) as base:
        yield {"base": base, "store": store, "first": first.run_id, "second": second.run_id, "backend": request.param}


def until(driver: Any, condition: Any) -> Any:
    """Wait for a condition; a live page replaces what it updates, so an element gone stale is looked up again."""
    return WebDriverWait(driver, WAIT, ignored_exceptions=(StaleElementReferenceException,)).until(condition)


def wait_for_text(driver: Any, css: str, text: str) -> str:
    until(driver, lambda d: any(text in e.text for e in d.find_elements(By.CSS_SELECTOR, css)))
    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def secrets_absent(driver: Any) -> None:
    source = driver.page_source
    assert FAKE_SECRET not in source and FAKE_KEY not in source


def test_runs_list_run_page_and_node_previews(browser: Any, site: dict[str, Any]) -> None:
    base, first, second = site["base"], site["first"], site["second"]
    browser.get(f"{base}/runs")
    rows = {r.get_attribute("data-run"): r.text for r in browser.find_elements(By.CSS_SELECTOR, "#runs tbody tr")}
    assert list(rows) == [second, first]  # newest first
    assert "ui-demo" in rows[second] and "failed" in rows[second] and "succeeded" in rows[first]
    secrets_absent(browser)
    if site["backend"] == "s3":
        assert "s3://" in browser.find_element(By.CSS_SELECTOR, "header .store").text

    browser.find_element(By.LINK_TEXT, second).click()
    until(browser, lambda d: d.current_url.endswith(f"/runs/{second}"))
    statuses = {g.get_attribute("data-node"): g.get_attribute("data-status")
                for g in browser.find_elements(By.CSS_SELECTOR, "#graph g.node")}
    assert statuses == {"table": "ran", "summary": "ran", "chart": "ran", "hostile_html": "ran",
                        "hostile_svg": "ran", "broken": "failed"}
    failure = browser.find_element(By.CSS_SELECTOR, "details.failure[data-node=broken]").text
    assert "ValueError: reading above the limit" in failure and "Traceback" in failure
    assert "checking 6 rows" in failure  # the node's captured log
    table_row = browser.find_element(By.CSS_SELECTOR, "#nodes tr[data-node=chart]").text
    assert "image/png" in table_row and "miss" in table_row
    secrets_absent(browser)

    browser.find_element(By.CSS_SELECTOR, "#graph g.node[data-node=table] rect").click()  # the graph links to nodes
    until(browser, lambda d: d.current_url.endswith("/nodes/table"))
    preview = browser.find_element(By.CSS_SELECTOR, "table.preview-table")
    headers = [h.text.split("\n") for h in preview.find_elements(By.CSS_SELECTOR, "thead th")]
    assert headers == [["day", "date"], ["site", "text"], ["reading", "number"]]
    assert len(preview.find_elements(By.CSS_SELECTOR, "tbody tr")) == 6
    assert "rows: 4 -> 6" in browser.find_element(By.ID, "explain").text  # why it ran: wfe explain's reason

    browser.get(f"{base}/runs/{second}/nodes/summary")
    tree = browser.find_element(By.CSS_SELECTOR, ".artifact[data-side=outputs] .json-tree")
    assert "sites: {2 keys}" in tree.text and 'unit: "mg/l"' in tree.text and "rows: 6" in tree.text
    tree.find_element(By.XPATH, ".//summary[contains(., 'site-0')]").click()  # a collapsed branch opens
    assert "max: 9.5" in tree.text

    browser.get(f"{base}/runs/{second}/nodes/chart")
    image = browser.find_element(By.CSS_SELECTOR, ".artifact[data-side=outputs] img.preview-image")
    until(browser, lambda d: d.execute_script("return arguments[0].complete", image))
    assert browser.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", image) == [30, 16]
    secrets_absent(browser)


def test_comparison_and_artifact_pages(browser: Any, site: dict[str, Any]) -> None:
    base, first, second = site["base"], site["first"], site["second"]
    browser.get(f"{base}/compare?b={second}")
    field = browser.find_element(By.NAME, "a")
    field.send_keys(first)
    field.send_keys(Keys.ENTER)
    wait_for_text(browser, "#differences", "rows: 4 -> 6")
    parts = {(r.get_attribute("data-node"), r.get_attribute("data-part"))
             for r in browser.find_elements(By.CSS_SELECTOR, "#differences tbody tr")}
    assert ("table", "config field") in parts and ("broken", "node") in parts
    assert any(node == "summary" and part.startswith("input 1 (text/csv, from table)") for node, part in parts)
    assert not any(node == "hostile_html" and part == "function" for node, part in parts)
    secrets_absent(browser)

    digest = site["store"].runs.get(second).nodes["summary"].outputs[0].digest
    search = browser.find_element(By.CSS_SELECTOR, "header input[name=q]")
    search.send_keys(digest[7:21])
    search.send_keys(Keys.ENTER)
    assert wait_for_text(browser, "#digest", digest) == digest
    uses = [(r.get_attribute("data-role"), r.text) for r in browser.find_elements(By.CSS_SELECTOR, "#uses tbody tr")]
    assert ("produced", f"{second} ui-demo") in [(role, text[: len(second) + 8]) for role, text in uses]
    consumers = {text.split()[-3] for role, text in uses if role == "consumed"}
    assert consumers == {"chart", "hostile_html", "hostile_svg", "broken"}
    assert "application/json" in browser.find_element(By.CSS_SELECTOR, "dl.facts").text
    secrets_absent(browser)


def test_an_html_or_svg_output_cannot_script_the_apps_origin(browser: Any, site: dict[str, Any]) -> None:
    base, second = site["base"], site["second"]
    for node in ("hostile_html", "hostile_svg"):
        browser.get(f"{base}/runs/{second}/nodes/{node}")
        title = browser.title
        assert title.startswith(f"{node} ·")
        frame = browser.find_element(By.CSS_SELECTOR, ".artifact[data-side=outputs] iframe.preview-frame")
        browser.switch_to.frame(frame)
        until(browser, lambda d: d.find_elements(By.ID, "hostile"))
        shown = browser.find_element(By.ID, "hostile").text  # the output is shown ...
        browser.switch_to.default_content()
        assert shown in ("hostile page", "hostile svg")
        time.sleep(1)  # ... and its script, had it run, has had its chance to reach the page
        assert browser.title == title
        assert browser.execute_script("return document.body.dataset.pwned || document.body.dataset.read || ''") == ""
        assert "pwned" not in browser.execute_script("return document.cookie")
        assert browser.get_cookies() == []

        browser.get(f"{base}/runs/{second}/nodes/{node}/outputs/0/view")  # opened on its own, outside the frame
        until(browser, lambda d: d.find_elements(By.ID, "hostile"))
        time.sleep(0.5)
        assert "pwned" not in browser.title
        assert browser.get_cookies() == []


def test_a_running_runs_page_follows_the_run(browser: Any, site: dict[str, Any]) -> None:
    store = site["store"]
    workflow = store.runs.get(site["first"]).workflow_digest
    started = time.time()
    manifest = RunManifest(run_id=new_run_id(started), workflow="ui-demo", workflow_digest=workflow,
                           started=started, owner=f"{hostname()}:{os.getpid()}", status="running",
                           nodes={"table": NodeRecord(status="running", function="table"),
                                  "summary": NodeRecord(status="pending", function="summary")})
    store.runs.put(manifest)
    browser.get(f"{site['base']}/runs/{manifest.run_id}")
    assert browser.find_element(By.CSS_SELECTOR, "[data-run-status]").text == "running"
    browser.execute_script("window.sameDocument = true")

    manifest.nodes["table"].status = "ran"
    manifest.nodes["summary"].status = "running"
    store.runs.put(manifest)
    until(browser, lambda d: d.find_element(
        By.CSS_SELECTOR, "#graph g.node[data-node=table]").get_attribute("data-status") == "ran")
    assert browser.execute_script("return window.sameDocument") is True  # updated in place, not reloaded

    manifest.nodes["summary"].status = "ran"
    manifest.status, manifest.finished = "succeeded", time.time()
    store.runs.put(manifest)
    until(browser, lambda d: d.find_element(By.CSS_SELECTOR, "[data-run-status]").text == "succeeded")
    until(browser, lambda d: d.find_element(
        By.CSS_SELECTOR, "#graph g.node[data-node=summary]").get_attribute("data-status") == "ran")
