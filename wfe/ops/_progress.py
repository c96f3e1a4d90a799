"""Progress of long store operations (verify, gc, sync): the interface they call, silent by default.

The command line passes a drawing one (:func:`wfe.cli._bars.terminal_progress`).
"""

from __future__ import annotations

from types import TracebackType


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
