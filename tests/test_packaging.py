"""What the package promises about its own installation: extras and plugin registrations."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11 and later

ROOT = Path(__file__).resolve().parents[1]


def _project() -> dict[str, Any]:
    with open(ROOT / "pyproject.toml", "rb") as handle:
        project: dict[str, Any] = tomllib.load(handle)["project"]
    return project


def _closure(extras: dict[str, list[str]], name: str) -> set[str]:
    """Every requirement an extra brings, following ``wfe[...]`` self-references."""
    found: set[str] = set()
    for requirement in extras[name]:
        nested = re.fullmatch(r"wfe\[([^\]]+)\]", requirement)
        if nested:
            for inner in nested.group(1).split(","):
                found |= _closure(extras, inner.strip())
        else:
            found.add(re.split(r"[<>=!\[ ]", requirement, maxsplit=1)[0].lower())
    return found


def test_the_readme_install_brings_what_check_store_needs() -> None:
    extras = _project()["optional-dependencies"]
    assert {"pytest", "hypothesis"} <= _closure(extras, "conformance")
    assert _closure(extras, "conformance") <= _closure(extras, "all")  # the README installs ".[all]"
    assert '-e ".[all]"' in (ROOT / "README.md").read_text()


def test_the_conformance_plugin_is_registered_under_its_module_name() -> None:
    plugins = _project()["entry-points"]["pytest11"]
    ((name, target),) = plugins.items()
    assert name == target  # a conftest or `-p` naming the module then finds it loaded, never registers it twice
    module = importlib.import_module(target)
    assert hasattr(module, "pytest_addoption") and hasattr(module, "pytest_terminal_summary")
