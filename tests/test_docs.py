"""The docs cite only tests that exist, the README stays short, and its commands are the ones CI runs."""

from __future__ import annotations

import ast
import re
import shlex
import sys
from functools import cache
from pathlib import Path

import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest itself depends on tomli before 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_LIMIT = 12_000  # bytes: "under 12 KB"

# `tests/test_x.py`, `tests/test_x.py::test_name`, `conformance_tests/test_x.py::Class::test_name`.
# The \b keeps `tests/` inside `conformance_tests/` from matching twice.
CITATION = re.compile(r"\b((?:conformance_)?tests/[\w/]+\.py)((?:::\w+)*)")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


@cache
def collectable_functions(path: Path) -> frozenset[str]:
    """Functions pytest could collect from ``path``: module-level ones and those in a class body."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.update(f.name for f in node.body if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef))
    return frozenset(names)


def missing_citations(text: str) -> list[str]:
    """Every cited test file or test function in ``text`` that does not exist."""
    missing = []
    for match in CITATION.finditer(text):
        path, parts = ROOT / match[1], [p for p in match[2].split("::") if p]
        if not path.is_file() or (parts and parts[-1] not in collectable_functions(path)):
            missing.append(match[0])
    return missing


def sh_blocks(markdown: str) -> list[str]:
    return [body.strip() for lang, body in FENCE.findall(markdown) if lang == "sh"]


def section(markdown: str, heading: str) -> str:
    start = markdown.index(f"\n{heading}\n")
    end = markdown.find("\n## ", start + len(heading) + 2)
    return markdown[start : end if end != -1 else None]


def test_the_citation_check_catches_a_test_that_does_not_exist() -> None:
    text = (
        "`tests/test_blobs.py::test_flipped_byte_is_detected_on_every_read_path` exists; "
        "`tests/test_blobs.py::test_no_such_test`, `tests/test_no_such_file.py` and "
        "`conformance_tests/test_blobs.py::test_no_such_conformance_test` do not"
    )
    assert missing_citations(text) == [
        "tests/test_blobs.py::test_no_such_test",
        "tests/test_no_such_file.py",
        "conformance_tests/test_blobs.py::test_no_such_conformance_test",
    ]


def test_every_test_the_docs_and_readme_cite_exists() -> None:
    missing = {
        str(page.relative_to(ROOT)): found
        for page in [README, *pages()]
        if (found := missing_citations(page.read_text(encoding="utf-8")))
    }
    assert not missing, f"cited tests that do not exist: {missing}"


def test_every_guarantee_names_the_tests_that_prove_it() -> None:
    rows = [line for line in (DOCS / "guarantees.md").read_text(encoding="utf-8").splitlines()
            if line.startswith("| **")]
    assert len(rows) >= 17, "the guarantees table lost rows"
    unproved = [row.split("|")[1].strip()[:60] for row in rows if not CITATION.search(row.split("|")[-2])]
    assert not unproved, f"guarantees that cite no test: {unproved}"


def test_readme_is_short() -> None:
    size = len(README.read_bytes())
    assert size < README_LIMIT, f"README.md is {size} bytes; move detail into docs/"


def test_readme_commands_are_the_ones_ci_and_the_docs_run() -> None:
    install, test = sh_blocks(section(README.read_text(encoding="utf-8"), "## Two commands"))
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    last = [line for line in ci_lines if line and not line.startswith("#")][-1]
    assert last == f"{test} && python3 -m tox -e slow"  # the README's command, then the second tier

    docs_commands = sh_blocks((DOCS / "index.md").read_text(encoding="utf-8"))
    assert install in docs_commands
    assert test in docs_commands

    # What the install command names must exist: its constraints file, its extras, its example.
    words = shlex.split(install)
    assert (ROOT / words[words.index("-c") + 1]).is_file()
    extras = re.fullmatch(r"\.\[([\w,]+)\]", words[words.index("-e") + 1])
    assert extras is not None
    optional = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]
    assert set(extras[1].split(",")) <= set(optional)
    assert (ROOT / words[words.index("run") + 1]).is_file()


def test_every_page_is_in_the_nav_and_linked_from_the_readme() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    nav = {page for entry in config["nav"] for page in entry.values()}
    on_disk = {str(page.relative_to(DOCS)) for page in pages()}
    assert nav == on_disk

    linked = set(re.findall(r"\]\(docs/([\w/-]+\.md)\)", README.read_text(encoding="utf-8")))
    assert linked <= on_disk, f"README links to pages that do not exist: {sorted(linked - on_disk)}"
    assert on_disk <= linked, f"pages the README does not link to: {sorted(on_disk - linked)}"


def test_the_readmes_python_quickstart_prints_what_its_comments_say(tmp_path: Path) -> None:
    import subprocess

    (code,) = [body for lang, body in FENCE.findall(section(README.read_text(), "## Quickstart in Python"))
               if lang == "python"]  # fmt: skip
    said = [line.split("#")[-1].strip() for line in code.splitlines() if line.startswith("print(")]
    assert said and all(said)  # every print says what it prints
    (tmp_path / "quickstart.py").write_text(code)
    done = subprocess.run([sys.executable, "quickstart.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == said
