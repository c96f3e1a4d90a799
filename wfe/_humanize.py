"""Numbers for people: sizes in B, KiB, MiB, GiB."""

from __future__ import annotations


def human_size(size: int) -> str:
    """``1.5 MiB``: the one size format of reports and the command line."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
