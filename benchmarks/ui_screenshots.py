"""Screenshots of every page of ``wfe ui``, on a demo store, for a person to look at.

    python benchmarks/ui_screenshots.py OUTDIR [--store URL]

Builds a store (a temporary folder unless ``--store`` names one) with runs of
the sales example and of a small demo workflow whose outputs are CSV, JSON,
PNG, HTML and Parquet (one node fails), serves it with ``wfe ui`` on a free
port of 127.0.0.1, opens each page in headless Chromium (Debian's
``chromium`` and ``chromium-driver``) and writes ``OUTDIR/NN-page.png``.
"""

from __future__ import annotations

import argparse
import json
import re
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import wfe

REPO = Path(__file__).resolve().parent.parent
SALES = REPO / "examples" / "sales" / "workflow.yaml"


def png(width: int, height: int, pixel: Any) -> bytes:
    """An RGB PNG whose pixel at (x, y) is ``pixel(x, y)`` (a 3-tuple)."""
    raw = b"".join(b"\x00" + b"".join(bytes(pixel(x, y)) for x in range(width)) for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


@wfe.function(outputs="text/csv")
def measurements(*, rows: int) -> str:
    lines = ["day,site,reading,ok"] + [f"2026-03-{1 + i % 28:02d},site-{i % 3},{(i * 37) % 101 / 4:.2f},{i % 5 != 0}"
                                        for i in range(rows)]
    return "\n".join(lines) + "\n"


@wfe.function(inputs=["text/csv"], outputs="application/json")
def by_site(table: str) -> dict[str, Any]:
    sites: dict[str, list[float]] = {}
    for line in table.splitlines()[1:]:
        _, site, reading, _ = line.split(",")
        sites.setdefault(site, []).append(float(reading))
    return {"sites": {s: {"n": len(v), "mean": round(sum(v) / len(v), 3), "max": max(v)} for s, v in sites.items()},
            "unit": "mg/l", "flags": [True, None, "checked"]}


@wfe.function(inputs=["application/json"], outputs="image/png")
def chart(summary: dict[str, Any]) -> bytes:
    means = [site["mean"] for site in summary["sites"].values()]
    top = max(means) or 1.0
    colours = [(44, 123, 182), (253, 174, 97), (102, 189, 99)]

    def pixel(x: int, y: int) -> tuple[int, int, int]:
        bar = x // 80
        if bar < len(means) and 10 < x % 80 < 70 and 160 - y < 150 * means[bar] / top:
            return colours[bar % 3]
        return (250, 250, 250)

    return png(80 * len(means), 160, pixel)


@wfe.function(inputs=["application/json"], outputs="text/html")
def page(summary: dict[str, Any]) -> str:
    rows = "".join(f"<li>{site}: {values['mean']}</li>" for site, values in summary["sites"].items())
    return f"<h1>Sites</h1><ul>{rows}</ul>"


@wfe.function(inputs=["application/json"], outputs="text/plain")
def alert(summary: dict[str, Any]) -> str:
    print("checking", len(summary["sites"]), "sites")
    raise ValueError("site-1 reading above the limit")


@wfe.function(inputs=["text/csv"], outputs="application/vnd.apache.parquet")
def columnar(table: str) -> bytes:
    import io

    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(pacsv.read_csv(io.BytesIO(table.encode())), sink)
    return sink.getvalue()


def demo_workflow(rows: int, *, failing: bool, parquet: bool = True) -> wfe.Workflow:
    wf = wfe.Workflow("sensor-demo")
    table = wf.node(measurements, id="measurements", rows=rows)
    summary = wf.node(by_site, table, id="by_site")
    wf.node(chart, summary, id="chart")
    wf.node(page, summary, id="page")
    if parquet:
        wf.node(columnar, table, id="columnar")
    if failing:
        wf.node(alert, summary, id="alert")
    return wf


def build_demo(store: wfe.Store) -> dict[str, str]:
    """Runs for every page: two sales runs, two demo runs (the second with another config and a failing node)."""
    for _ in range(2):
        wfe.run(str(SALES), store)
    try:
        import pyarrow  # noqa: F401

        parquet = True
    except ImportError:
        parquet = False
    first = wfe.run(demo_workflow(40, failing=False, parquet=parquet), store)
    second = wfe.run(demo_workflow(60, failing=True, parquet=parquet), store)
    return {"first": first.run_id, "second": second.run_id,
            "json": second.manifest.nodes["by_site"].outputs[0].digest}


def serve(store_url: str, options: list[str] | None = None) -> tuple[subprocess.Popen[str], str]:
    """``wfe ui`` on a free port of 127.0.0.1 in a child process; its process and base URL."""
    extra = [arg for option in options or [] for arg in ("--store-option", option)]
    process = subprocess.Popen([sys.executable, "-m", "wfe", "ui", "--store", store_url, "--port", "0", *extra],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    found = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
    if not found:
        process.kill()
        raise RuntimeError(f"wfe ui did not start: {line}{process.stderr.read() if process.stderr else ''}")
    return process, found.group(1)


def browser(width: int = 1280, height: int = 900) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--hide-scrollbars", f"--window-size={width},{height}", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir")
    parser.add_argument("--store", help="store to build the demo in (default: a temporary folder)")
    args = parser.parse_args()
    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    folder = tempfile.mkdtemp(prefix="wfe-ui-shots-")
    store_url = args.store or f"{folder}/store"
    ids = build_demo(wfe.open_store(store_url))
    process, base = serve(store_url)
    driver = browser()
    try:
        pages = [
            ("runs", "/runs"),
            ("run", f"/runs/{ids['second']}"),
            ("node-csv", f"/runs/{ids['second']}/nodes/measurements"),
            ("node-json-png", f"/runs/{ids['second']}/nodes/by_site"),
            ("node-png", f"/runs/{ids['second']}/nodes/chart"),
            ("node-html", f"/runs/{ids['second']}/nodes/page"),
            ("node-parquet", f"/runs/{ids['second']}/nodes/columnar"),
            ("node-failed", f"/runs/{ids['second']}/nodes/alert"),
            ("compare", f"/compare?a={ids['first']}&b={ids['second']}"),
            ("artifact", f"/artifacts/{ids['json'][7:23]}"),
            ("not-found", "/runs/20990101T000000000Z-000000"),
        ]
        for number, (name, path) in enumerate(pages, start=1):
            driver.get(base + path)
            time.sleep(0.3)
            target = out / f"{number:02d}-{name}.png"
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(1280, min(max(900, int(height) + 140), 2400))
            driver.save_screenshot(str(target))
            driver.set_window_size(1280, 900)
            print(target)
    finally:
        driver.quit()
        process.terminate()
        process.wait(timeout=10)
    json.dumps(ids)


if __name__ == "__main__":
    main()
