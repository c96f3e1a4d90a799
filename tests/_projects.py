"""Small workflow projects on disk for the run, ops and report tests.

Every project gets its own module name and function names (a tag), so many
projects can be loaded into one test process without clashing in the
function registry.
"""

from __future__ import annotations

import json
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FUNCTIONS = textwrap.dedent(
    '''
    import time
    import wfe

    TAG = "{tag}"

    @wfe.function(name="parse_{tag}", inputs=["text/plain"], outputs="application/json")
    def parse(text, *, offset=0, label=""):
        return [int(v) + offset for v in text.split()]

    @wfe.function(name="double_{tag}", inputs=["application/json"], outputs="application/json")
    def double(values):
        return [v * 2 for v in values]

    @wfe.function(name="total_{tag}", inputs=["application/json"], outputs="application/json")
    def total(values):
        return sum(values)

    @wfe.function(name="stamp_{tag}", inputs=["application/json"], outputs="text/plain")
    def stamp(values):
        return f"{{values}} at {{time.time_ns()}}"

    @wfe.function(name="shout_{tag}", inputs=["text/plain"], outputs="text/plain")
    def shout(text):
        return text.upper()

    @wfe.function(name="broken_{tag}", inputs=["application/json"], outputs="application/json")
    def broken(values):
        raise ValueError("this node always fails")
    '''
)


@dataclass
class Project:
    folder: Path
    tag: str

    @property
    def workflow(self) -> Path:
        return self.folder / "workflow.json"

    @property
    def dir(self) -> str:
        """The project's folder as a command-line argument (``--base-dir``)."""
        return str(self.folder)

    @property
    def functions(self) -> Path:
        return self.folder / f"ops_{self.tag}.py"

    def write(self, *, offset: int = 0, stamp: bool = False, broken: bool = False) -> Path:
        """(Re)write the workflow: numbers -> parse -> double -> total (+ stamp -> shout, + broken)."""
        t = self.tag
        nodes: list[dict[str, Any]] = [
            {"id": "numbers", "file": "numbers.txt", "mime": "text/plain"},
            {"id": "parse", "function": f"parse_{t}", "config": {"offset": offset, "label": "fixed"}},
            {"id": "double", "function": f"double_{t}"},
            {"id": "total", "function": f"total_{t}"},
        ]
        edges = [
            {"source": "numbers", "target": "parse"},
            {"source": "parse", "target": "double"},
            {"source": "double", "target": "total"},
        ]
        if stamp:
            nodes += [{"id": "stamp", "function": f"stamp_{t}"}, {"id": "shout", "function": f"shout_{t}"}]
            edges += [{"source": "double", "target": "stamp"}, {"source": "stamp", "target": "shout"}]
        if broken:
            nodes += [{"id": "broken", "function": f"broken_{t}"}, {"id": "after", "function": f"double_{t}"}]
            edges += [{"source": "parse", "target": "broken"}, {"source": "broken", "target": "after"}]
        document = {"name": f"numbers-{t}", "modules": [f"ops_{t}"], "nodes": nodes, "edges": edges}
        self.workflow.write_text(json.dumps(document))
        return self.workflow


def make_project(parent: Path, numbers: str = "1 2 3 4\n", **options: Any) -> Project:
    tag = uuid.uuid4().hex[:8]
    folder = parent / f"project-{tag}"
    folder.mkdir(parents=True)
    (folder / f"ops_{tag}.py").write_text(FUNCTIONS.format(tag=tag))
    (folder / "numbers.txt").write_text(numbers)
    project = Project(folder, tag)
    project.write(**options)
    return project


def blob_file(store_root: Path, digest: str) -> Path:
    """Where a local store keeps a blob (for tests that tamper behind the store's back)."""
    hexdigest = digest.split(":", 1)[1]
    return store_root / "blobs" / "sha256" / hexdigest[:2] / hexdigest[2:]
