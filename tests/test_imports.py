"""Start-up: ``import wfe`` and a small run import what they use, and nothing a run does not need.

Each check runs in a fresh interpreter and reads its ``sys.modules``: an eager
import added anywhere on the way (a verb, the builder, a backend library, a
validation library) fails here, not only in a benchmark.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import wfe.cli

# Never needed by ``import wfe``, by a run on local disk or by reading its output.
NOT_FOR_A_RUN = (
    "rich",
    "dask",
    "distributed",
    "s3fs",
    "botocore",
    "aiobotocore",
    "supabase",
    "storage3",
    "httpx",
    "fsspec",
    "starlette",
    "uvicorn",
    "jinja2",
    "diskcache",
    "numpy",
    "pandas",
    "pyarrow",
    "yaml",
    "argparse",
    "wfe.cli",
    "wfe.ui",
    "wfe.report",
    "wfe.graph._builder",
    "wfe.ops._gc",
    "wfe.ops._verify",
    "wfe.ops._sync",
    "wfe.ops._rerun",
    "wfe.ops._explain",
    "wfe.storage._memory",
    "wfe_s3",
    "wfe_supabase",
    "pydantic",  # the graph and the records are checked by hand (wfe._shape); pydantic is for user type hints
    "pydantic_core",
    "importlib.metadata",  # entry points are read only for a store URL wfe does not know itself
    "wfe.ops._address",  # address parsing: a run's own outputs are read by wfe.ops._outputs
    "wfe.ops._history",
    "wfe.storage._remember",  # what a probe found: only the probing (remote) backends use it
    "wfe.storage._findings",
    "wfe.storage._probe",
    # standard modules a run on local disk has no use for (each costs start-up): loaded where they are used
    "tempfile",
    "shutil",
    "uuid",
    "secrets",
    "difflib",
    "mimetypes",
)
FUNCTIONS = textwrap.dedent(
    """
    import wfe

    @wfe.function(outputs="application/json")
    def start(*, value=0):
        return value
    """
)


def _modules_after(code: str, cwd: Path) -> dict[str, Any]:
    """What ``code`` leaves in a fresh interpreter: ``{"modules": [...], ...}`` plus anything it adds to ``found``."""
    script = f"import sys, json\nfound = {{}}\n{code}\nfound['modules'] = sorted(sys.modules)\nprint(json.dumps(found))"
    done = subprocess.run([sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def _loaded(modules: list[str], names: tuple[str, ...]) -> list[str]:
    return sorted({name for name in names for module in modules if module == name or module.startswith(name + ".")})


@pytest.fixture
def one_node(tmp_path: Path) -> Path:
    (tmp_path / "one_functions.py").write_text(FUNCTIONS)
    workflow = {"name": "one", "modules": ["one_functions"], "nodes": [{"id": "n0", "function": "start"}]}
    (tmp_path / "one.json").write_text(json.dumps(workflow))
    return tmp_path


def test_import_wfe_loads_only_its_errors(tmp_path: Path) -> None:
    found = _modules_after("import wfe\nfound['error'] = repr(wfe.WorkflowError)", tmp_path)
    assert [m for m in found["modules"] if m.startswith("wfe")] == ["wfe", "wfe._errors"]
    assert _loaded(found["modules"], ("pydantic", "pydantic_core")) == []
    assert found["error"] == "<class 'wfe.WorkflowError'>"


def test_every_public_name_loads_on_first_use_as_wfes_own(tmp_path: Path) -> None:
    code = "import wfe\nfound['modules_of'] = {n: getattr(getattr(wfe, n), '__module__', None) for n in wfe.__all__}"
    found = _modules_after(code, tmp_path)
    modules_of = found["modules_of"]
    assert isinstance(modules_of, dict) and sorted(modules_of) == sorted(wfe.__all__)
    classes = {name for name in wfe.__all__ if isinstance(getattr(wfe, name), type)}
    assert {modules_of[name] for name in classes} == {"wfe"}


def test_a_one_node_run_imports_no_verb_backend_or_validation_library(one_node: Path) -> None:
    code = textwrap.dedent(
        """
        import wfe
        result = wfe.run("one.json", ".store")
        found["value"] = result["n0"]
        """
    )
    found = _modules_after(code, one_node)
    assert found["value"] == 0
    assert _loaded(found["modules"], NOT_FOR_A_RUN) == []


def test_wfe_run_on_the_command_line_imports_its_own_verb_only(one_node: Path) -> None:
    code = textwrap.dedent(
        """
        import contextlib, io
        from wfe.cli import main
        with contextlib.redirect_stdout(io.StringIO()) as out:
            found["code"] = main(["run", "one.json", "--store", ".store", "--json"])
        found["status"] = json.loads(out.getvalue())["status"]
        """
    )
    found = _modules_after(code, one_node)
    assert (found["code"], found["status"]) == (0, "succeeded")
    others = tuple(f"wfe.cli._{module}" for module in wfe.cli.VERBS if module != "run")
    libraries = tuple(m for m in NOT_FOR_A_RUN if m not in ("wfe.cli", "argparse", "shutil"))  # argparse loads shutil
    assert _loaded(found["modules"], (*others, *libraries)) == []


def test_each_verb_is_registered_by_the_module_the_cli_names_for_it() -> None:
    whole = wfe.cli.build_parser()
    verbs = next(action for action in whole._actions if action.dest == "verb").choices
    assert isinstance(verbs, dict) and sorted(verbs) == sorted(wfe.cli.VERB_MODULES)
    for verb in wfe.cli.VERB_MODULES:
        alone = wfe.cli.build_parser(verb)
        choices = next(action for action in alone._actions if action.dest == "verb").choices
        assert isinstance(choices, dict) and verb in choices
