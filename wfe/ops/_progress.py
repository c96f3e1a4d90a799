"""Progress reporting for long store operations: a bar on a terminal, silence elsewhere.

The operations (verify, gc, sync) call a :class:`Progress`; the command line
passes :func:`terminal_progress`, which draws with ``rich`` only when stderr
is a terminal, so logs and pipes stay clean. ``rich`` is imported lazily.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any


class Progress:
    """Silent progress: the default, and the interface the operations call."""

    def phase(self, label: str, total: int | None = None) -> None:
        """Start a new phase (a new bar), ``total`` items if known."""

    def advance(self, count: int = 1) -> None:
        """Count items done in the current phase."""

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop drawing; safe to call twice."""


class _RichProgress(Progress):
    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bars

        self._bars = Bars(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(file=sys.stderr),
            transient=True,  # the summary line that follows is what stays
        )
        self._bars.start()
        self._task: Any = None

    def phase(self, label: str, total: int | None = None) -> None:
        if self._task is not None:
            self._bars.update(self._task, total=self._bars.tasks[-1].completed)
        self._task = self._bars.add_task(label, total=total)

    def advance(self, count: int = 1) -> None:
        if self._task is not None:
            self._bars.advance(self._task, count)

    def close(self) -> None:
        self._bars.stop()


def terminal_progress(enabled: bool = True) -> Progress:
    """Bars on stderr if it is a terminal and rich is installed; otherwise silent."""
    if not enabled or not sys.stderr.isatty():
        return Progress()
    try:
        return _RichProgress()
    except ImportError:
        return Progress()
