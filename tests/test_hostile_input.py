"""Hostile input, fuzzed: only wfe's own errors come out, as one line and exit 2, and nothing is
written outside the store root."""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wfe
from wfe.cli import main

EXAMPLE_DIR = Path(__file__).resolve().parent.parent / "examples" / "sales"
EXAMPLE_DOC = yaml.safe_load((EXAMPLE_DIR / "workflow.yaml").read_text())
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
nasty_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["..", "../..", "../../etc/passwd", "/etc/passwd", "a/../../b", "\x00", "~", "$HOME",
                     "sha256:../../etc/passwd", "C:\\Windows", "%2e%2e%2f", "…", ""]),
)


def cli(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as exc:  # argparse exits for usage errors
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


def outside_store(tmp: Path) -> set[str]:
    return {p for p in files_under(tmp) if p != "store" and not p.startswith("store/")}


def check_run(tmp: Path, raw: bytes, suffix: str) -> None:
    """Run a workflow file made of ``raw``; only a clean result or one clean error may come out."""
    project = tmp / "project"
    project.mkdir(exist_ok=True)
    for name in ("sales_functions.py", "sales.csv", "targets.json"):
        target = project / name
        if not target.exists():
            target.write_bytes((EXAMPLE_DIR / name).read_bytes())
    workflow = project / f"workflow{suffix}"
    workflow.write_bytes(raw)
    before = outside_store(tmp)
    code, _out, err = cli(["run", str(workflow), "--store", str(tmp / "store"), "--json"])
    assert code in (0, 1, 2), (code, err)
    assert "Traceback" not in err
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
    written = outside_store(tmp) - before
    assert written == set(), f"wrote outside the store: {written}"


def mutate(document: Any, rng: random.Random, value: Any) -> Any:
    """Replace one random place in ``document`` by ``value``."""
    if isinstance(document, dict) and document and rng.random() < 0.8:
        key = rng.choice(sorted(document, key=str))
        return {**document, key: mutate(document[key], rng, value)}
    if isinstance(document, list) and document and rng.random() < 0.8:
        index = rng.randrange(len(document))
        return [*document[:index], mutate(document[index], rng, value), *document[index + 1 :]]
    return value


@FUZZ
@given(seed=st.integers(0, 2**32), value=st.one_of(json_values, nasty_text), as_json=st.booleans())
def test_mutated_example_workflows(tmp_path_factory: pytest.TempPathFactory, seed: int, value: Any,
                                   as_json: bool) -> None:
    document = mutate(EXAMPLE_DOC, random.Random(seed), value)
    tmp = tmp_path_factory.mktemp("mutated")
    try:
        raw = json.dumps(document).encode() if as_json else yaml.safe_dump(document).encode()
    except (ValueError, yaml.YAMLError):
        return
    check_run(tmp, raw, ".json" if as_json else ".yaml")


@FUZZ
@given(seed=st.integers(0, 2**32), flips=st.integers(1, 8))
def test_byte_mutated_workflow_files(tmp_path_factory: pytest.TempPathFactory, seed: int, flips: int) -> None:
    rng = random.Random(seed)
    raw = bytearray((EXAMPLE_DIR / "workflow.yaml").read_bytes())
    for _ in range(flips):
        position = rng.randrange(len(raw))
        action = rng.random()
        if action < 0.4:
            raw[position] = rng.randrange(256)
        elif action < 0.7:
            del raw[position]
        else:
            raw[position:position] = rng.choice([b"\xff", b"..", b"/", b"{", b"[", b"- ", b"&a *a", b"\x00"])
    check_run(tmp_path_factory.mktemp("bytes"), bytes(raw), ".yaml")


node_ids = st.one_of(st.sampled_from(["a", "b", "c", "sales", "../x", ".", "a/b", "x" * 200]), nasty_text)
random_workflows = st.fixed_dictionaries(
    {
        "name": nasty_text,
        "nodes": st.lists(
            st.fixed_dictionaries(
                {"id": node_ids},
                optional={
                    "function": st.one_of(st.sampled_from(["summary", "revenue_by_region", "os:system",
                                                           "subprocess.run", "__import__"]), nasty_text),
                    "config": st.one_of(json_values, st.dictionaries(nasty_text, json_values, max_size=3)),
                    "file": nasty_text,
                    "mime": st.sampled_from(["text/csv", "application/json", "bogus", "", "*/*"]),
                },
            ),
            max_size=5,
        ),
        "edges": st.lists(st.fixed_dictionaries({"source": node_ids, "target": node_ids}), max_size=5),
    },
    optional={"modules": st.lists(st.one_of(st.sampled_from(["sales_functions", "os", "../x"]), nasty_text),
                                  max_size=2)},
)


@FUZZ
@given(document=random_workflows, as_json=st.booleans())
def test_random_workflow_documents(tmp_path_factory: pytest.TempPathFactory, document: Any, as_json: bool) -> None:
    tmp = tmp_path_factory.mktemp("random")
    raw = json.dumps(document).encode() if as_json else yaml.safe_dump(document).encode()
    check_run(tmp, raw, ".json" if as_json else ".yaml")


@pytest.mark.parametrize(
    "raw",
    [
        b"name: deep\nnodes: " + b"[" * 100_000 + b"]" * 100_000,
        b'{"name": "deep", "nodes": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b"name: x\nnodes:\n  - id: a\n    function: summary\n    config: {v: " + b"[" * 5000 + b"]" * 5000 + b"}\n",
        b"a: &a [*a]\n",
        b"name: bomb\nx: &a [1,1,1,1,1,1,1,1,1]\ny: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
        b"z: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
        b"w: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\nnodes: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n",
        b"name: x\nnodes:\n  - {id: a, function: summary, config: {v: .nan}}\n",
        (EXAMPLE_DIR / "workflow.yaml").read_bytes().replace(b"config: {months: 6}", b"config: {months: .nan}"),
        b"name: x\nnodes:\n  - {id: a, file: /etc/passwd, mime: text/plain}\n",
        b"\xef\xbb\xbfname: bom\nnodes: []\n",
    ],
    ids=["deep-yaml", "deep-json", "deep-config", "self-alias", "alias-bomb", "nan-config", "nan-config-wired",
         "abs-file", "bom"],
)
def test_absurd_documents(tmp_path: Path, raw: bytes) -> None:
    check_run(tmp_path, raw, ".json" if raw.startswith(b"{") else ".yaml")


def test_large_workflow_file_is_refused_without_reading_it_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from wfe import _models

    monkeypatch.setattr(_models, "MAX_WORKFLOW_BYTES", 1000)
    check_run(tmp_path, b"name: big\n" + b"# padding\n" * 500, ".yaml")


@FUZZ
@given(digest=st.one_of(nasty_text, st.text(alphabet=string.hexdigits + ":sha/.", max_size=80)))
def test_fuzzed_digests(tmp_path_factory: pytest.TempPathFactory, digest: str) -> None:
    tmp = tmp_path_factory.mktemp("digest")
    store = tmp / "store"
    wfe.open_store(str(store)).blobs.put(b"x")
    before = files_under(tmp)
    code, _out, err = cli(["cat", digest, "--store", str(store)])
    assert code == 2 and err.startswith("error: ") and len(err.splitlines()) == 1, (digest, err)
    assert files_under(tmp) == before


@FUZZ
@given(
    scheme=st.sampled_from(["", "file://", "memory://", "nosuch://", "FILE://", "memory:///", "file://host/"]),
    rest=nasty_text,
)
def test_fuzzed_store_urls(tmp_path_factory: pytest.TempPathFactory, scheme: str, rest: str) -> None:
    tmp = tmp_path_factory.mktemp("url")
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        try:
            store = wfe.open_store(scheme + rest)
        except wfe.WfeError as exc:
            assert str(exc) and "\n" not in str(exc)
            return
        store.blobs.put(b"probe")  # a store that opened works, or fails with wfe's own error
    except wfe.WfeError:
        pass
    finally:
        os.chdir(cwd)
