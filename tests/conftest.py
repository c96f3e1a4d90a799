"""Fixtures shared by the engine's tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _cli import Cli, run_in_process
from servers.supabase_fixtures import bucket, server  # noqa: F401  (the Supabase Storage server's fixtures)

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "sales" / "workflow.yaml"


def _environment(env: dict[str, str] | None) -> dict[str, str]:
    full_env = {**os.environ, **(env or {})}
    if env is None or "WFE_STORE" not in env:
        full_env.pop("WFE_STORE", None)
    return full_env


@pytest.fixture
def wfe_cli(tmp_path: Path) -> Cli:
    """Run the ``wfe`` command line in this process, in ``tmp_path`` unless ``cwd`` is given.

    It goes through the same entry point as the installed command
    (``wfe.cli.main``) and returns what a process would: exit code, stdout,
    stderr (see :mod:`_cli`). Tests of what only a real process shows use
    :func:`wfe_process`.
    """

    def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        del timeout  # a real process's bound; an in-process call finishes or fails the test
        return run_in_process(list(args), cwd or tmp_path, _environment(env))

    return run


@pytest.fixture
def wfe_process(tmp_path: Path) -> Cli:
    """Run ``python -m wfe`` in a fresh process, in ``tmp_path`` unless ``cwd`` is given."""

    def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "wfe", *args],
            cwd=cwd or tmp_path, env=_environment(env), capture_output=True, text=True, timeout=timeout,
        )

    return run


def pytest_wfe_conformance_backends(config: pytest.Config) -> list[Any]:
    """The conformance suite also runs on the servers wfe's tests start: S3 and Supabase Storage."""
    from servers.backends import WITH_SERVERS

    return list(WITH_SERVERS)


@pytest.fixture(autouse=True)
def _memory_filesystem_left_as_found() -> Any:
    """What a test put in the process-wide ``memory://`` filesystem goes with it.

    fsspec's memory filesystem is one dict for the whole process and lists by
    scanning all of it: objects left by one test would slow every later
    listing of every ``memory://`` store (the conformance suite's among them).
    """
    from fsspec.implementations.memory import MemoryFileSystem

    kept, dirs = set(MemoryFileSystem.store), list(MemoryFileSystem.pseudo_dirs)
    yield
    for path in set(MemoryFileSystem.store) - kept:
        del MemoryFileSystem.store[path]
    MemoryFileSystem.pseudo_dirs[:] = dirs
