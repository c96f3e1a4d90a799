"""Replaying a recorded run, and checking that recomputing it gives the same bytes.

A rerun takes everything from the store: the workflow from the blob the
manifest names, file inputs pinned to their recorded digests, the same
function versions (a version that changed in the code is an error, not a
silent change of what runs) and, because configs come from the same
workflow document, the same config digests.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path

from .._errors import FunctionError, WfeError, WorkflowError
from ..engine._runner import EventHandler, RunResult
from ..engine._runner import run as execute
from ..engine._task import Task, run_task
from ..graph._functions import load_workflow_modules, resolve
from ..graph._model import Artifact, WorkflowGraph
from ..store._manifest import RunManifest
from ..store._store import Store
from ._history import load_run, producers, run_workflow


@dataclass(frozen=True)
class Difference:
    """A node whose recomputed outputs are not the recorded ones."""

    node_id: str
    recorded: list[Artifact]
    current: list[Artifact]
    detail: str

    def describe(self) -> str:
        def digests(artifacts: list[Artifact]) -> str:
            return ", ".join(a.digest for a in artifacts) or "(none)"

        return f"{self.node_id}: {self.detail}; recorded {digests(self.recorded)}, now {digests(self.current)}"


@dataclass
class RerunResult:
    """The new run, the run it replayed, and (with ``verify``) what differed."""

    original: RunManifest
    result: RunResult
    verified: bool = False
    compared: list[str] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)
    unchecked: dict[str, str] = field(default_factory=dict)  # node -> why it could not be compared

    @property
    def ok(self) -> bool:
        return self.result.ok and not self.differences


def check_versions(graph: WorkflowGraph, manifest: RunManifest) -> None:
    """Raise FunctionError naming every function whose code version differs from the recorded one."""
    changed = []
    for node in graph.nodes:
        record = manifest.nodes.get(node.id)
        if node.function is None or record is None or record.version is None:
            continue
        current = resolve(node.function).spec.version
        if current != record.version:
            changed.append(
                f"{node.function!r} (node {node.id!r}) was version {record.version}, the code is now {current}"
            )
    if changed:
        raise FunctionError(
            f"cannot rerun {manifest.run_id} with the same code: function " + "; function ".join(changed)
            + ". Restore the recorded code, or run the workflow afresh with `wfe run`"
        )


def _check_modules_here(graph: WorkflowGraph, manifest: RunManifest, folder: Path, *, explicit: bool) -> None:
    """Refuse, in one line, a recorded workflow whose modules are not files in ``folder``."""
    missing = [
        m for m in graph.modules
        if not isinstance(m, str) or not m.isidentifier()
        or not ((folder / f"{m}.py").is_file() or (folder / m / "__init__.py").is_file())
    ]
    if not missing:
        return
    where = "the folder given with --base-dir" if explicit else "the current folder"
    recorded = f" (the run was made from {manifest.base_dir!r})" if manifest.base_dir else ""
    raise WorkflowError(
        f"cannot rerun {manifest.run_id}: its workflow imports {', '.join(map(repr, missing))}, not found in "
        f"{where} {folder}{recorded}; rerun imports code only from a folder you name: "
        "pass --base-dir WORKFLOW_FOLDER"
    )


def pinned_inputs(store: Store, graph: WorkflowGraph, manifest: RunManifest, folder: Path) -> dict[str, Artifact]:
    """The recorded artifact of every file node; raise WorkflowError if one cannot be had any more."""
    pinned: dict[str, Artifact] = {}
    for node in graph.nodes:
        record = manifest.nodes.get(node.id)
        if node.file is None or record is None or not record.outputs:
            continue
        artifact = record.outputs[0]
        pinned[node.id] = artifact
        if store.blobs.exists(artifact.digest):
            continue
        path = (folder / node.file).resolve()
        if not path.is_file():
            raise WorkflowError(
                f"file node {node.id!r}: the run used {artifact.digest}, which is not in the store, "
                f"and {path} does not exist"
            )
    return pinned


def rerun(
    store: Store,
    run: str,
    *,
    force: bool = False,
    verify: bool = False,
    executor: Executor | str | None = None,
    jobs: int | None = None,
    base_dir: str | os.PathLike[str] | None = None,
    on_event: EventHandler | None = None,
    allow_paths: Iterable[str | os.PathLike[str]] = (),
) -> RerunResult:
    """Run again exactly what run ``run`` ran; a new run record is written (``rerun_of`` names the old one).

    ``executor``, ``jobs`` and ``allow_paths`` (for a file input whose blob is gone) are as for
    :func:`wfe.run`. ``force`` recomputes every function node; ``verify`` compares each node's outputs
    with the recorded ones (a node whose inputs came out different because of
    an upstream difference is recomputed from its recorded inputs, so every
    difference is pinned on the node that causes it).
    Raises NotFoundError for an unknown run, FunctionError if a function's
    version no longer matches, WorkflowError if a pinned input is gone.
    """
    original = load_run(store, run)
    graph = run_workflow(store, original)
    # Code comes only from where the user points: the record's ``base_dir`` is a claim made by whoever
    # wrote the store, and importing from it would let a planted record run any code on this machine.
    folder = Path(base_dir if base_dir is not None else os.getcwd()).resolve()
    _check_modules_here(graph, original, folder, explicit=base_dir is not None)
    load_workflow_modules(str(folder), graph.modules)
    check_versions(graph, original)
    pinned = pinned_inputs(store, graph, original, folder)
    result = execute(
        graph, store, base_dir=folder, executor=executor, jobs=jobs, force=force, on_event=on_event,
        pinned_files=pinned, allow_paths=allow_paths,
    )
    result.manifest.rerun_of = original.run_id  # an extra field
    store.runs.put(result.manifest)
    outcome = RerunResult(original, result)
    if verify:
        _compare(store, graph, folder, outcome)
    return outcome


def _compare(store: Store, graph: WorkflowGraph, folder: Path, outcome: RerunResult) -> None:
    outcome.verified = True
    modules = tuple((str(folder.resolve()), m) for m in graph.modules)
    new_nodes = outcome.result.manifest.nodes
    made_by = producers(outcome.original)
    for node_id, recorded in outcome.original.nodes.items():
        if recorded.status not in ("ran", "cached"):
            continue  # it produced nothing to compare with
        current = new_nodes.get(node_id)
        if current is None:
            outcome.unchecked[node_id] = "not in the rerun"
            continue
        outcome.compared.append(node_id)
        if current.status not in ("ran", "cached"):
            outcome.differences.append(
                Difference(node_id, recorded.outputs, [], f"{current.status}: {current.error or 'no outputs'}")
            )
            continue
        if _digests(current.inputs) == _digests(recorded.inputs):
            if _digests(current.outputs) != _digests(recorded.outputs):
                outcome.differences.append(
                    Difference(node_id, recorded.outputs, current.outputs, "same inputs, different outputs")
                )
            continue
        # An upstream node differed; judge this node on the inputs it had before.
        pairs = zip(recorded.inputs, current.inputs, strict=False)
        changed = sorted({made_by.get(a.digest, "?") for a, b in pairs if a != b})
        missing = [a.digest for a in recorded.inputs if not a.stored or not store.blobs.exists(a.digest)]
        if recorded.elements is not None or recorded.subruns is not None:
            outcome.compared.remove(node_id)  # its own actions and inner runs are what can be replayed
            outcome.unchecked[node_id] = (
                f"inputs changed upstream ({', '.join(changed)}); a mapped or sub-workflow node"
            )
            continue
        if missing or recorded.function is None or recorded.version is None or recorded.config is None:
            outcome.compared.remove(node_id)
            outcome.unchecked[node_id] = (
                f"inputs changed upstream ({', '.join(changed)}) and the recorded inputs are gone: {', '.join(missing)}"
                if missing else "inputs changed upstream and the record lacks the function or config"
            )
            continue
        try:  # a small config is kept in the node's action entry, not in a file of its own
            config = store.config_json(recorded.config, recorded.action_keys())
        except WfeError as exc:
            outcome.compared.remove(node_id)
            outcome.unchecked[node_id] = f"inputs changed upstream and its config cannot be read: {exc}"
            continue
        task = Task(
            node_id=node_id,
            function=recorded.function,
            version=recorded.version,
            config_digest=recorded.config,
            payloads=((recorded.config, config),),
            inputs=tuple((a.digest, a.mime) for a in recorded.inputs),
            store_url=store.url,
            store_options=tuple(sorted(store.options.items())),
            modules=modules,
            ref=resolve(recorded.function).ref,
        )
        replayed = run_task(task, store)
        if replayed.outputs is None:
            outcome.differences.append(
                Difference(node_id, recorded.outputs, [], f"failed on its recorded inputs: {replayed.error}")
            )
        elif _digests(replayed.outputs) != _digests(recorded.outputs):
            outcome.differences.append(
                Difference(node_id, recorded.outputs, replayed.outputs, "different outputs from its recorded inputs")
            )


def _digests(artifacts: list[Artifact]) -> list[str]:
    return [a.digest for a in artifacts]


def verify_summary(outcome: RerunResult) -> Mapping[str, object]:
    """A JSON-ready account of a verified rerun."""
    return {
        "run_id": outcome.result.run_id,
        "rerun_of": outcome.original.run_id,
        "status": outcome.result.status,
        "verified": outcome.verified,
        "compared": len(outcome.compared),
        "differences": [
            {
                "node": d.node_id,
                "detail": d.detail,
                "recorded": [a.digest for a in d.recorded],
                "current": [a.digest for a in d.current],
            }
            for d in outcome.differences
        ],
        "unchecked": dict(outcome.unchecked),
    }
