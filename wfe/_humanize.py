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


def human_seconds(value: float | None) -> str:
    """A duration as a person reads it: ``<1 ms``, ``42 ms``, ``3.25 s``, ``4.2 min``; a dash for none."""
    if value is None:
        return "—"
    if value < 0.001:
        return "<1 ms"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.2f} s"
    return f"{value / 60:.1f} min"
