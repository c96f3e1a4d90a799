"""The ``wfe`` command line run in the test process, isolated as a new process would be.

Starting Python for each of a hundred CLI calls costs more than the calls;
tests of what only a real process shows (signals, a node ending the
process, the console script) start one instead.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

Cli = Callable[..., subprocess.CompletedProcess[str]]
"""The ``wfe_cli`` and ``wfe_process`` fixtures: ``cli(*args, cwd=None, env=None, timeout=120)``."""


def run_in_process(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``wfe ARGS`` through ``wfe.cli.main`` with ``env`` as the whole environment; exit code and output."""
    from wfe.cli import main

    with _isolated(cwd, env) as (out, err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's usage errors and --help
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    return subprocess.CompletedProcess(["wfe", *args], code, _text(out), _text(err))


@contextlib.contextmanager
def _isolated(cwd: Path, env: dict[str, str]) -> Iterator[tuple[io.TextIOWrapper, io.TextIOWrapper]]:
    """What a fresh ``wfe`` process would have, for one in-process call, restored afterwards.

    The working folder, the environment, stdin/stdout/stderr, the modules a
    workflow imports (two tests may each have a ``functions.py``), the
    function registry they fill, ``sys.path`` and the ``wfe`` logger the CLI
    configures.
    """
    from wfe.graph import _functions

    saved_cwd, saved_env = os.getcwd(), dict(os.environ)
    saved_path = list(sys.path)
    saved_registry = dict(_functions._REGISTRY)
    # Workflow code the test process itself imported is hidden, as it would be from a new process.
    hidden = {name: module for name, module in sys.modules.items() if _is_workflow_code(module)}
    for name in hidden:
        del sys.modules[name]
    _functions._REGISTRY.clear()
    _functions._REGISTRY.update(
        (name, entry) for name, entry in saved_registry.items() if entry.ref.partition(":")[0] not in hidden
    )
    saved_modules = set(sys.modules)
    from wfe.cli._logging_setup import LOGGERS

    loggers = [logging.getLogger(name) for name in LOGGERS]
    saved_loggers = [(list(logger.handlers), logger.level, logger.propagate) for logger in loggers]
    out, err = _stream(), _stream()
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                _replaced_stdin(io.StringIO("")):
            yield out, err
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        for name in set(sys.modules) - saved_modules:
            if _is_workflow_code(sys.modules[name]):
                del sys.modules[name]  # libraries imported lazily stay: a second copy would be a new class
        sys.modules.update(hidden)
        sys.path[:] = saved_path
        _forget_filesystems()
        _functions._REGISTRY.clear()
        _functions._REGISTRY.update(saved_registry)
        for logger, (handlers, level, propagate) in zip(loggers, saved_loggers, strict=True):
            for handler in list(logger.handlers):
                if handler not in handlers:
                    logger.removeHandler(handler)
                    handler.close()
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate


_OWN_CODE = ("wfe", "backends", "conformance_tests")
_LIBRARIES = tuple(os.path.realpath(p) for p in {sys.prefix, sys.base_prefix, *(str(REPO / d) for d in _OWN_CODE)})


def _is_workflow_code(module: object) -> bool:
    """A module a workflow imported from its own folder, not a library or wfe itself."""
    path = getattr(module, "__file__", None)
    return bool(path) and not os.path.realpath(str(path)).startswith(_LIBRARIES)


def _forget_filesystems() -> None:
    """Drop fsspec's cached filesystem objects: a new process would build them from the environment again."""
    import fsspec

    for cls in fsspec.registry.values():
        cls.clear_instance_cache()


def _stream() -> io.TextIOWrapper:
    """A text stream with a ``.buffer``, as ``sys.stdout`` has (``wfe cat`` writes bytes to it)."""
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="replace", write_through=True)


def _text(stream: io.TextIOWrapper) -> str:
    stream.flush()
    raw = stream.buffer
    assert isinstance(raw, io.BytesIO)
    return raw.getvalue().decode("utf-8", errors="replace")


@contextlib.contextmanager
def _replaced_stdin(stream: io.StringIO) -> Iterator[None]:
    saved, sys.stdin = sys.stdin, stream
    try:
        yield
    finally:
        sys.stdin = saved


def _environment(env: dict[str, str] | None) -> dict[str, str]:
    full_env = {**os.environ, **(env or {})}
    if env is None or "WFE_STORE" not in env:
        full_env.pop("WFE_STORE", None)
    return full_env
