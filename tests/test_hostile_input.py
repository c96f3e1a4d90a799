"""Hostile input, fuzzed: only wfe's own errors come out, as one line and exit 2, and nothing is
written outside the store root."""

from __future__ import annotations

import json
import os
import random
import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from _cli import run_in_process
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wfe

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
    # isolated as a new process would be: the workflow's module is not left imported for the next test
    done = run_in_process(args, Path.cwd(), dict(os.environ))
    return done.returncode, done.stdout, done.stderr


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


def outside_store(tmp: Path) -> set[str]:
    # Python's bytecode cache of the workflow's own module is the import system's, not a write of wfe's
    return {p for p in files_under(tmp) if p != "store" and not p.startswith("store/") and "__pycache__" not in p}


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
    # wfe itself never crashes; a traceback is only ever a node's own, under the line naming the node
    assert "Traceback" not in err or (code == 1 and err.lstrip().startswith("--- node ")), err
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
    from wfe.graph import _load

    monkeypatch.setattr(_load, "MAX_WORKFLOW_BYTES", 1000)
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


@pytest.mark.parametrize("url", ["file://", "file:///", "file://localhost/", "/", "//", "/.", "/tmp/..", "file:///tmp/../"])
def test_a_local_store_url_naming_no_folder_or_the_filesystems_root_is_refused_in_one_line(url: str) -> None:
    before = sorted(os.listdir("/"))
    with pytest.raises(wfe.StoreURLError) as caught:
        wfe.open_store(url)
    assert repr(url) in str(caught.value) and "\n" not in str(caught.value)
    code, _out, err = cli(["runs", "--store", url])
    assert code == 2 and err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert sorted(os.listdir("/")) == before  # no blobs/, runs/ or tmp/ made beside /etc


def test_a_local_store_through_a_link_to_the_filesystems_root_is_refused(tmp_path: Path) -> None:
    (tmp_path / "root").symlink_to("/")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "store").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(wfe.StoreURLError, match="filesystem's root"):
        wfe.open_store(str(tmp_path / "root"))
    wfe.open_store(str(tmp_path / "store")).blobs.put(b"x")  # a link to another folder is a store as any
    assert any((tmp_path / "elsewhere" / "blobs").iterdir())


def billion_laughs() -> bytes:
    """Nine levels of aliases, each nine of the level below: under 1 KB, 387 million strings expanded."""
    lines = ["name: lol", "a: &a [" + ",".join(['"lol"'] * 9) + "]"]
    for below, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{','.join(['*' + below] * 9)}]")
    lines.append("nodes: [{id: x, function: summary, config: {v: *i}}]")
    return "\n".join(lines).encode() + b"\n"


def test_billion_laughs_is_refused_at_once(tmp_path: Path) -> None:
    """Refused before any of its strings is made, without a wait or a traceback."""
    import resource
    import subprocess
    import sys

    workflow = tmp_path / "lol.yaml"
    workflow.write_bytes(billion_laughs())
    assert workflow.stat().st_size < 1024

    def limit_memory() -> None:  # should the expansion happen, it fails fast instead of taking the machine
        resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))

    result = subprocess.run([sys.executable, "-m", "wfe", "run", str(workflow), "--store", str(tmp_path / "store")],
                            capture_output=True, text=True, timeout=120, preexec_fn=limit_memory, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr == f"error: {workflow}: cannot parse: aliases expand the document past 10000000 nodes\n"


def test_aliases_are_counted_at_their_expanded_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from wfe.graph import _load

    monkeypatch.setattr(_load, "MAX_EXPANDED_NODES", 200)
    workflow = tmp_path / "w.yaml"
    # 3 + 9 * 10 nodes: within the limit, though 10 copies of one anchor.
    workflow.write_text("a: &a [1, 2, 3, 4, 5, 6, 7, 8]\nb: [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                        "name: w\nnodes: [{id: f, file: w.yaml, mime: text/plain}]\n")
    assert _load.load_workflow(workflow).model_extra == {"a": list(range(1, 9)), "b": [list(range(1, 9))] * 10}
    workflow.write_text("a: &a [1, 2, 3, 4, 5, 6, 7, 8]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                        "c: [*b, *b]\nname: w\nnodes: [{id: f, file: w.yaml, mime: text/plain}]\n")
    with pytest.raises(wfe.WorkflowError, match="cannot parse: aliases expand the document past 200 nodes"):
        _load.load_workflow(workflow)
    workflow.write_text("a: &a {b: [*a]}\nname: w\nnodes: [{id: f, file: w.yaml, mime: text/plain}]\n")
    with pytest.raises(wfe.WorkflowError, match="cannot parse: an alias refers to a node that contains it"):
        _load.load_workflow(workflow)


def test_anchors_and_aliases_in_a_normal_workflow_keep_working(tmp_path: Path) -> None:
    (tmp_path / "sales.csv").write_bytes((EXAMPLE_DIR / "sales.csv").read_bytes())
    (tmp_path / "workflow.yaml").write_text(
        "name: aliases\n"
        "x-csv: &csv {mime: text/csv}\n"
        "x-file: &file sales.csv\n"
        "nodes:\n"
        "  - {id: sales, file: *file, <<: *csv}\n"
        "  - {id: again, file: *file, mime: text/plain}\n"
    )
    code, out, err = cli(["run", str(tmp_path / "workflow.yaml"), "--store", str(tmp_path / "store"), "--json"])
    assert code == 0, err
    nodes = json.loads(out)["nodes"]
    assert [nodes[n]["outputs"][0]["mime"] for n in ("sales", "again")] == ["text/csv", "text/plain"]
    assert nodes["sales"]["outputs"][0]["digest"] == nodes["again"]["outputs"][0]["digest"]


def test_a_cycle_with_nodes_downstream_of_it_is_one_line(tmp_path: Path) -> None:
    """The least id left unordered may lie downstream of the cycle, with no child there (here 'by_month')."""
    document = {**EXAMPLE_DOC, "edges": [*EXAMPLE_DOC["edges"], {"source": "summary", "target": "sales"}]}
    check_run(tmp_path, yaml.safe_dump(document).encode(), ".yaml")
    workflow = tmp_path / "project" / "workflow.yaml"
    expected = f"error: {workflow}: cycle: attainment -> summary -> sales -> by_region -> attainment\n"
    for verb in ("run", "graph"):
        code, _out, err = cli([verb, str(workflow), "--store", str(tmp_path / "store")])
        assert (code, err) == (2, expected)
    with pytest.raises(ValueError, match="cycle: attainment -> summary -> sales -> by_region -> attainment"):
        wfe.WorkflowGraph.model_validate(document)


STR_OUTPUTS = '''
import os
import pathlib

import wfe


def _write_big() -> str:
    path = os.path.join(wfe.scratch_dir(), "big.bin")
    with open(path, "wb") as handle:
        handle.write(b"\\x01" * 100_000)
    return path


@wfe.function(outputs="application/octet-stream")
def path_as_str():
    return str(_write_big())


@wfe.function(outputs="application/octet-stream")
def path_as_path():
    return pathlib.Path(_write_big())


@wfe.function(outputs="image/png")
def text_as_png():
    return "not a png"


@wfe.function(outputs="text/plain")
def text():
    return "just text"


@wfe.function(outputs="application/geo+json")
def json_string():
    return "a JSON string"
'''


def test_a_str_for_an_output_that_is_not_text_fails_the_node(tmp_path: Path) -> None:
    """A str returned for a binary output is most likely a path: never stored as its text, never cached."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "str_output_functions.py").write_text(STR_OUTPUTS)
    names = ["path_as_str", "path_as_path", "text_as_png", "text", "json_string"]
    (project / "workflow.json").write_text(json.dumps({
        "name": "str-outputs", "modules": ["str_output_functions"],
        "nodes": [{"id": name, "function": name} for name in names],
    }))  # fmt: skip
    store = wfe.open_store(str(tmp_path / "store"))
    for attempt in range(2):  # the failure was not cached: the second run calls the function again
        result = wfe.run(project / "workflow.json", store)
        nodes = result.manifest.nodes
        assert {name: nodes[name].status for name in names} == {
            "path_as_str": "failed", "path_as_path": "ran" if attempt == 0 else "cached", "text_as_png": "failed",
            "text": "ran" if attempt == 0 else "cached", "json_string": "ran" if attempt == 0 else "cached",
        }  # fmt: skip
        assert nodes["path_as_str"].error == (
            "TypeError: returned a str for an application/octet-stream output; "
            "return bytes, or a pathlib.Path to store a file"
        )
        assert nodes["text_as_png"].error == (
            "TypeError: returned a str for an image/png output; return bytes, or a pathlib.Path to store a file"
        )
        assert store.actions.lookup(str(nodes["path_as_str"].action_key)) is None
    assert nodes["path_as_path"].outputs[0].size == 100_000
    assert store.blobs.get(nodes["text"].outputs[0].digest) == b"just text"
    assert store.blobs.get(nodes["json_string"].outputs[0].digest) == b'"a JSON string"'
