"""What ``wfe run`` shows while a run goes on: one line per node, and live counts on a terminal."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from .._humanize import human_size
from ..store._manifest import NodeRecord
from ._bars import rich_bars
from ._visible import unescaped, visible

SETTLED = ("ran", "cached", "failed", "skipped")
REDRAW_INTERVAL = 0.1  # seconds


def node_lines(node_id: str, record: NodeRecord) -> list[str]:
    """The lines printed for a node that has settled (none while it runs)."""
    if record.status not in SETTLED:
        return []
    if record.status in ("failed", "skipped"):
        return [f"  {record.status:<7} {node_id:<20} {record.error}"]
    if not record.outputs:
        return [f"  {record.status:<7} {node_id:<20} (no outputs)"]
    return [
        f"  {record.status:<7} {node_id:<20} {a.mime:<26} {human_size(a.size):>10}  {a.digest}"
        for a in record.outputs
    ]


class Counts:
    """Nodes done / running / cached / failed, updated from run events."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.running: set[str] = set()
        self.by_status: dict[str, int] = dict.fromkeys(SETTLED, 0)

    def update(self, node_id: str, record: NodeRecord) -> None:
        if record.status == "running":
            self.running.add(node_id)
            return
        self.running.discard(node_id)
        if record.status in self.by_status:
            self.by_status[record.status] += 1

    @property
    def done(self) -> int:
        return sum(self.by_status.values())

    def describe(self) -> str:
        s = self.by_status
        text = f"{len(self.running)} running, {s['ran']} ran, {s['cached']} cached, {s['failed']} failed"
        return text + (f", {s['skipped']} skipped" if s["skipped"] else "")


class LinePrinter:
    """Not a terminal: the per-node lines, flushed as they come (logs and pipes read them live)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def __call__(self, node_id: str, record: NodeRecord) -> None:
        lines = node_lines(node_id, record)
        for line in lines:
            print(line, file=self.stream)
        if lines:
            self.stream.flush()

    def close(self) -> None:
        pass


class LiveProgress:
    """A terminal: the per-node lines scroll above a live bar with the counts (rich, if installed)."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.counts = Counts(total)
        self.stream = unescaped(stream or sys.stdout)  # its own cursor controls; node lines made visible
        self._task: Any = None
        self._drawn = 0.0
        self._progress: Any = rich_bars(self.stream, prefix="[bold]wfe[/]")
        if self._progress is not None:  # otherwise plain lines with a counts line rewritten in place
            self._task = self._progress.add_task(self.counts.describe(), total=total)

    def __call__(self, node_id: str, record: NodeRecord) -> None:
        self.counts.update(node_id, record)
        lines = node_lines(node_id, record)
        if self._progress is None:
            for line in lines:
                print("\r\x1b[K" + visible(line), file=self.stream)
            print(f"\r\x1b[K{self.counts.done}/{self.counts.total} {self.counts.describe()}", end="", file=self.stream)
            self.stream.flush()
            return
        for line in lines:
            self._progress.console.print(visible(line), markup=False, highlight=False, soft_wrap=True)
        now = time.monotonic()
        # rich redraws 10 times a second by itself; a forced redraw per event would flood big runs
        refresh = now - self._drawn >= REDRAW_INTERVAL or self.counts.done == self.counts.total
        if refresh:
            self._drawn = now
        self._progress.update(
            self._task, completed=self.counts.done, description=self.counts.describe(), refresh=refresh
        )

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        else:
            print("\r\x1b[K", end="", file=self.stream)
            self.stream.flush()


def make_display(total: int, *, quiet: bool, stream: TextIO | None = None) -> LinePrinter | LiveProgress | None:
    """None under ``--json``; live counts on a terminal; plain per-node lines otherwise."""
    if quiet:
        return None
    stream = stream or sys.stdout
    if stream.isatty():
        return LiveProgress(total, stream)
    return LinePrinter(stream)
