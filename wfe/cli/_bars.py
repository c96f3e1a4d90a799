"""rich's progress bars, the one place wfe draws them: a bar per phase of a store operation, and
the bar under ``wfe run``'s per-node lines.

Bars are drawn only on a terminal, so logs and pipes stay clean; ``rich`` is
imported lazily and is optional: without it, operations are silent and
``wfe run`` rewrites a plain counts line instead.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from ..ops._progress import Progress


def rich_bars(stream: TextIO, *, prefix: str | None = None) -> Any | None:
    """Started rich bars on ``stream``, transient (the summary printed after them is what stays); None without rich.

    Each bar shows its description first, or after the counts when a ``prefix`` label leads.
    """
    try:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bars
    except ImportError:
        return None
    description = TextColumn("{task.description}")
    if prefix is None:
        columns = [description, BarColumn(), MofNCompleteColumn()]
    else:
        columns = [TextColumn(prefix), BarColumn(), MofNCompleteColumn(), description]
    from ._visible import unescaped

    # rich draws with cursor controls of its own: to the stream under Visible (the text it is given is made visible)
    bars = Bars(*columns, TimeElapsedColumn(), console=Console(file=unescaped(stream)), transient=True)
    bars.start()
    return bars


class TerminalProgress(Progress):
    """A store operation's phases as bars on stderr."""

    def __init__(self, bars: Any) -> None:
        self._bars = bars
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
    bars = rich_bars(sys.stderr)
    return Progress() if bars is None else TerminalProgress(bars)
