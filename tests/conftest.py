"""Fixtures shared by the engine's tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "sales" / "workflow.yaml"


@pytest.fixture
def wfe_cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the ``wfe`` command in a fresh process, in ``tmp_path`` unless ``cwd`` is given."""

    def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, **(env or {})}
        full_env.pop("WFE_STORE", None) if env is None or "WFE_STORE" not in env else None
        return subprocess.run(
            [sys.executable, "-m", "wfe", *args],
            cwd=cwd or tmp_path, env=full_env, capture_output=True, text=True, timeout=timeout,
        )

    return run
