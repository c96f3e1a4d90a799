"""What the command line prints is shown, not obeyed: control characters in text come out as escapes.

Run records, node names, errors and logs come from a store anyone with write
access may have filled. Printed raw, an ``ESC`` sequence in a workflow's name
would drive the terminal (clear it, retitle it, write the clipboard), a
``\\r`` or a bidirectional override would disguise a line. The ``wfe`` command
writes its text through :class:`Visible`, which turns every C0 control but
tab and newline, DEL, every C1 control and the bidirectional controls into
``\\xNN`` / ``\\uNNNN``. Bytes written to ``.buffer`` (``wfe cat``) pass as they
are; the live progress display writes its own cursor controls to
``.unescaped``.
"""

from __future__ import annotations

import io
from typing import Any, TextIO

_CONTROLS = (*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F, *range(0x80, 0xA0))
_BIDI = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
_TABLE = {**{c: f"\\x{c:02x}" for c in _CONTROLS}, **{c: f"\\u{c:04x}" for c in _BIDI}}


def visible(text: str) -> str:
    """``text`` with its control characters (but tab and newline) written as escapes."""
    return text.translate(_TABLE)


class Visible(io.TextIOBase):
    """A text stream that writes :func:`visible` text to ``unescaped``."""

    def __init__(self, unescaped: TextIO) -> None:
        self.unescaped = unescaped

    def write(self, text: str) -> int:
        self.unescaped.write(visible(text))
        return len(text)

    def flush(self) -> None:
        self.unescaped.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self.unescaped.isatty()

    def fileno(self) -> int:
        return self.unescaped.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.unescaped, "encoding", "utf-8")

    def __getattr__(self, name: str) -> Any:  # .buffer, .errors, ...: the stream's own
        return getattr(self.unescaped, name)


def unescaped(stream: TextIO) -> TextIO:
    """The stream under a :class:`Visible` (for a display's own cursor controls), or the stream itself."""
    inner: TextIO = getattr(stream, "unescaped", stream)
    return inner
