"""The conformance suite's pytest plugin: options, the ``backend`` parameter, the summary.

``pytest conformance_tests --store-url URL`` (repeatable) runs every test
against each URL; without it, against every backend in
:data:`conformance_tests.backends.BUILTIN` that can start here, and those a
project adds with the ``pytest_wfe_conformance_backends`` hook. The package's
``conftest.py`` loads this plugin in a source checkout; an installed wfe registers it through the
``pytest11`` entry point (named as this module, so the two never load it twice), so from any folder:
``pytest --pyargs conformance_tests --store-url URL``.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from typing import Any

import pytest

from conformance_tests import _support, backends
from conformance_tests._support import PARTS, PROFILES, TALLY, BackendHandle, Conformance, Tally

_BACKEND_STACK = pytest.StashKey[contextlib.ExitStack]()
_STARTED = pytest.StashKey[dict[str, BackendHandle]]()
_CAPABILITIES = pytest.StashKey[dict[str, list[str]]]()  # backend -> capability_lines of its store

# Guarantees a store may lack, by the StorageIO flags any one of which gives it, and what does not hold without it.
CAPABILITIES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("create-if-absent writes", ("conditional_create", "exclusive_publish"),
     "first-result-wins and leases are not held on this store"),
    ("sharing between processes", ("shared",), "only this process sees it: no process or distributed executors"),
)  # fmt: skip


def capability_lines(storage: Any) -> list[str]:
    """What a store's backend can do, as a table (capability | yes/no/unknown | how found), then one line
    per guarantee it cannot give, saying why and what that means.

    The table is the backend's findings (:mod:`wfe.storage._findings`): probed at
    opening for a plain fsspec filesystem, declared by the class of a backend
    with one of its own. A backend that found out at opening that it lacks a
    capability its class has says why in ``capability_notes`` (flag -> reason),
    e.g. S3 behind an endpoint that ignores ``If-None-Match``.
    """
    from wfe.storage._findings import CAPABILITIES as FOUND
    from wfe.storage._findings import findings_of

    findings = findings_of(storage)
    rows = [(FOUND[row.name].label, row.shown, row.how) for row in findings.rows]
    width = max(len("capability"), *(len(label) for label, _, _ in rows))
    where = {"probed": " (probed at opening)", "record": " (as the store's record says)",
             "memo": " (as probed in this process)"}.get(findings.source, "")  # fmt: skip
    lines = [f"capabilities{where}:", f"  {'capability':<{width}} | found   | how found"]
    lines += [f"  {label:<{width}} | {shown:<7} | {how}" for label, shown, how in rows]
    return lines + lacking_lines(storage)


def lacking_lines(storage: Any) -> list[str]:
    """One line per guarantee the store cannot give: ``lacks NAME (why): consequence``."""
    from wfe.storage._findings import CAPABILITIES as FOUND
    from wfe.storage._findings import findings_of

    notes: dict[str, str] = getattr(storage, "capability_notes", None) or {}
    found = findings_of(storage)
    lacks: list[str] = []
    for name, flags, consequence in CAPABILITIES:
        if not any(getattr(storage, flag, False) for flag in flags):
            why = "; ".join(notes[flag] for flag in flags if notes.get(flag))
            lacks.append(f"lacks {name}{f' ({why})' if why else ''}: {consequence}")
    whole = getattr(storage, "whole_objects", found.answer("whole_writes"))
    if whole is not True:
        row = found.get("whole_writes")
        why = notes.get("whole_objects") or (row.how if row is not None else "not declared")
        verb = "lacks" if whole is False else "may lack"
        lacks.append(f"{verb} objects that appear whole ({why}): {FOUND['whole_writes'].consequence}")
    for name in ("thread_safe", "complete_listings"):
        row = found.get(name)
        if row is not None and row.answer is False:
            lacks.append(f"lacks {FOUND[name].label} ({row.how}): {FOUND[name].consequence}")
    return lacks


class _Hooks:
    """The hook a project implements to add backends of its own (servers it starts)."""

    @pytest.hookspec
    def pytest_wfe_conformance_backends(self, config: pytest.Config) -> list[backends.Backend]:  # type: ignore[empty-body]
        """Backends to test, besides the suite's own, when no ``--store-url`` is given."""


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(_Hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("wfe-conformance", "wfe backend conformance suite")
    group.addoption(
        "--store-url",
        action="append",
        default=[],
        metavar="URL",
        help="store URL to test (repeatable); default: every built-in backend that can start here",
    )
    group.addoption(
        "--store-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="backend option passed to wfe.open_store for every --store-url (repeatable)",
    )
    group.addoption(
        "--conformance-profile",
        default=None,
        choices=sorted(PROFILES),
        help=f"hypothesis settings profile (default: ${_support.DEFAULT_PROFILE_ENV} or 'ci')",
    )
    group.addoption(
        "--conformance-no-db",
        action="store_true",
        help="do not save failing examples in .hypothesis/ (the check-store command uses this)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.stash[TALLY] = Tally()
    config.stash[_BACKEND_STACK] = contextlib.ExitStack()
    config.stash[_STARTED] = {}
    config.stash[_CAPABILITIES] = {}


def pytest_unconfigure(config: pytest.Config) -> None:
    from conformance_tests import _workers

    _workers.shutdown_pool()
    stack = config.stash.get(_BACKEND_STACK, None)
    if stack is not None:
        stack.close()


def _profile_name(config: pytest.Config) -> str:
    name = config.getoption("--conformance-profile") or os.environ.get(_support.DEFAULT_PROFILE_ENV) or "ci"
    if name not in PROFILES:
        raise pytest.UsageError(f"unknown conformance profile {name!r}; known: {', '.join(sorted(PROFILES))}")
    return str(name)


def _options(config: pytest.Config) -> dict[str, str]:
    options = {}
    for item in config.getoption("--store-option"):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise pytest.UsageError(f"--store-option needs KEY=VALUE, got {item!r}")
        options[key] = value
    return options


def _known_backends(config: pytest.Config) -> list[backends.Backend]:
    """The suite's own backends and those projects add through the hook; a name given twice is an error."""
    found = list(backends.BUILTIN)
    for added in config.hook.pytest_wfe_conformance_backends(config=config):
        found.extend(added)
    names = [backend.name for backend in found]
    if len(set(names)) != len(names):
        raise pytest.UsageError(f"conformance backends named twice: {sorted(n for n in names if names.count(n) > 1)}")
    return found


def _backend_ids(config: pytest.Config) -> list[str]:
    urls: list[str] = config.getoption("--store-url")
    if urls:
        return [f"url:{url}" for url in urls]
    return [f"builtin:{backend.name}" for backend in _known_backends(config)]


def _short_id(param: str) -> str:
    kind, _, value = param.partition(":")
    if kind == "builtin":
        return value
    return re.sub(r"[^A-Za-z0-9_.:/+-]", "_", value.split("?", 1)[0])


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Only the suite's own tests: a project that loads this plugin keeps its own `backend` fixtures.
    if "backend" in metafunc.fixturenames and metafunc.module.__name__.startswith("conformance_tests."):
        params = _backend_ids(metafunc.config)
        metafunc.parametrize("backend", params, ids=[_short_id(p) for p in params], indirect=True, scope="session")


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> BackendHandle:
    """The started backend for this parameter; started once per session, stopped at exit."""
    param: str = request.param
    started = request.config.stash[_STARTED]
    if param in started:
        return started[param]
    kind, _, value = param.partition(":")
    if kind == "url":
        handle = BackendHandle(value, value, _options(request.config))
    else:
        entry = next(b for b in _known_backends(request.config) if b.name == value)
        try:
            url, options = request.config.stash[_BACKEND_STACK].enter_context(entry.start())
        except backends.BackendUnavailable as exc:
            request.config.stash[TALLY].skipped[value] = str(exc)
            pytest.skip(f"backend {value!r} unavailable: {exc}")
        handle = BackendHandle(value, url, dict(options))
    started[param] = handle
    _note_capabilities(request.config, handle)
    return handle


def _note_capabilities(config: pytest.Config, handle: BackendHandle) -> None:
    """Open the backend's store once, for the summary to say what it has and lacks.

    Opening it first also lets a backend that probes its server at opening
    (S3) do so here, once, rather than in the first fresh store of a test.
    """
    import wfe

    try:
        store = wfe.open_store(handle.url, **handle.options)
    except Exception:  # a store that does not open fails every test, each saying why
        return
    config.stash[_CAPABILITIES][handle.name] = capability_lines(store.io)


@pytest.fixture
def conformance(backend: BackendHandle, request: pytest.FixtureRequest) -> Iterator[Conformance]:
    profile = PROFILES[_profile_name(request.config)]
    if request.config.getoption("--conformance-no-db"):
        from hypothesis import settings

        profile = settings(profile, database=None)
    yield Conformance(backend, profile, request.config.stash[TALLY])


def pytest_report_header(config: pytest.Config) -> str:
    return f"wfe conformance: profile {_profile_name(config)!r}, backends: " + ", ".join(
        _short_id(p) for p in _backend_ids(config)
    )


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    tally = config.stash.get(TALLY, None)
    found = tally.snapshot() if tally else {}
    if not found and not (tally and tally.skipped):
        return
    terminalreporter.section("wfe conformance")
    terminalreporter.write_line(f"profile: {_profile_name(config)}")
    for name, lines in sorted(config.stash.get(_CAPABILITIES, {}).items()):
        for line in lines:
            terminalreporter.write_line(f"{name}: {line}")
    for name in sorted({backend for backend, _part in found}):
        parts = []
        for part in PARTS:
            counted = found.get((name, part))
            if counted:
                steps = f", {counted['steps']} steps" if counted["steps"] else ""
                parts.append(f"{part} {counted['examples']} examples{steps}")
        terminalreporter.write_line(f"ran {name}: " + "; ".join(parts))
    for name, reason in sorted(tally.skipped.items()) if tally else ():
        terminalreporter.write_line(f"skipped {name}: {reason}")
