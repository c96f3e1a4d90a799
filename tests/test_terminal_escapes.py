"""A store's text is shown on the terminal, never obeyed by it.

Run records come from whoever can write to the store. A workflow name, node
id, function name, owner or error holding an ``ESC`` sequence, a ``\\r`` or
a bidirectional override would otherwise drive or disguise the terminal of
anyone who lists the runs. Whatever text a record holds, what ``wfe`` prints
holds no control character but newline and tab (``wfe/cli/_visible.py``).
"""

from __future__ import annotations

import json
import os
import time
import unicodedata
from pathlib import Path

import pytest
from _cli import run_in_process
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wfe
from wfe.cli._visible import visible
from wfe.store._manifest import NodeRecord, RunManifest
from wfe.store._records import new_run_id

BIDI = {"\u061c", "\u200e", "\u200f", *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))}


def obeyed(text: str) -> list[str]:
    """The characters in ``text`` a terminal would act on rather than show."""
    return [c for c in text if (unicodedata.category(c) == "Cc" and c not in "\n\t") or c in BIDI]


hostile = st.lists(st.one_of(st.sampled_from(["\x1b", "\x1b[2J", "\x1b]0;x\x07", "\r", "\x9b", "\x7f", "\x08",
                                              "\u202e", "\u2066", "\x00", "\n", "\t"]),
                             st.characters(blacklist_categories=("Cs",))), min_size=1, max_size=8).map("".join)


def hostile_manifest(store: wfe.Store, name: str, node: str, error: str) -> str:
    started = time.time()
    manifest = RunManifest(
        run_id=new_run_id(started), workflow=name, workflow_digest="sha256:" + "0" * 64, started=started,
        finished=started + 1, owner=f"{name}:1", status="failed",
        nodes={node: NodeRecord(status="failed", function=name, error=error),
               "after": NodeRecord(status="skipped", function="f", error=error)},
    )
    store.runs.put(manifest)
    return manifest.run_id


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=hostile, node=hostile, error=hostile)
def test_what_wfe_prints_of_a_hostile_record_drives_no_terminal(
    tmp_path_factory: pytest.TempPathFactory, name: str, node: str, error: str
) -> None:
    folder = tmp_path_factory.mktemp("escapes")
    store = wfe.open_store(str(folder / "store"))
    run_id = hostile_manifest(store, name, node, error)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(folder), "WFE_STORE": str(folder / "store")}
    commands = [["runs"], ["show", run_id], ["show", f"{run_id}:{node}"], ["show", f"{run_id}:after"],
                ["cat", f"{run_id}:{node}"], ["runs", "--json"], ["show", run_id, "--json"], ["show", name]]
    for args in commands:
        done = run_in_process(args, folder, env)
        assert done.returncode in (0, 1, 2), (args, done.stderr)
        assert obeyed(done.stdout) == [] and obeyed(done.stderr) == [], (args, done.stdout, done.stderr)
    listed = run_in_process(["runs", "--json"], folder, env)
    assert [json.loads(line)["workflow"] for line in listed.stdout.splitlines()] == [name]  # JSON keeps it exact


def test_escapes_name_each_character_and_leave_text_alone() -> None:
    assert visible("evil\x1b]0;t\x07\r\u202e ok\n\tdone") == "evil\\x1b]0;t\\x07\\x0d\\u202e ok\n\tdone"
    assert visible("plain, ünïcode, 表") == "plain, ünïcode, 表"


def test_cat_writes_an_outputs_bytes_as_they_are(tmp_path: Path) -> None:
    store = wfe.open_store(str(tmp_path / "store"))
    digest = store.blobs.put(b"\x1b[2J raw bytes \r\n")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "WFE_STORE": str(tmp_path / "store")}
    done = run_in_process(["cat", digest], tmp_path, env)
    assert done.returncode == 0 and done.stdout == "\x1b[2J raw bytes \r\n"


def test_a_nodes_hostile_error_is_shown_escaped_in_the_run_and_its_log_file(tmp_path: Path) -> None:
    (tmp_path / "loud.py").write_text(
        "import wfe\n\n@wfe.function(outputs='application/json')\ndef loud():\n"
        "    raise ValueError('\\x1b]0;owned\\x07\\x1b[2J gone')\n"
    )
    (tmp_path / "wf.json").write_text(json.dumps({"name": "loud", "modules": ["loud"],
                                                  "nodes": [{"id": "n", "function": "loud"}]}))
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    done = run_in_process(["run", "wf.json", "--store", "store", "--log-level", "info", "--log-file", "log.txt"],
                          tmp_path, env)
    assert done.returncode == 1 and "\\x1b[2J gone" in done.stdout + done.stderr
    log = (tmp_path / "log.txt").read_text()
    assert "\\x1b[2J gone" in log
    for text in (done.stdout, done.stderr, log):
        assert obeyed(text) == [], text
