"""What a store's backend can do, row by row, each with how it was found; the table check-store prints.

A backend with a storage class of its own declares its rows through its
flags (:func:`declared`; S3 marks the one it probes at opening in
``probed_flags``, a class may set ``thread_safe``); a plain fsspec
filesystem is probed at opening (:mod:`._probe`) and keeps its rows on the
storage object (:func:`findings_of` finds either).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._base import StorageIO


@dataclass(frozen=True)
class Capability:
    """A capability a store may have, and what does not hold without it."""

    name: str
    label: str
    consequence: str


CAPABILITIES: dict[str, Capability] = {
    c.name: c
    for c in (
        Capability("create_if_absent", "create-if-absent writes",
                   "first-result-wins and leases are not held on this store"),
        Capability("replaces", "writes that replace an object",
                   "run records and leases cannot be rewritten: wfe cannot use this store"),
        Capability("whole_writes", "writes that appear whole",
                   "a reader may see an object while it is written, and a crashed writer can leave a partial "
                   "object under its name (blob reads verify the digest and fail rather than return wrong bytes)"),
        Capability("rename_overwrites", "renames that replace their target",
                   "objects are not published by rename: they are written in place"),
        Capability("rename_atomic", "atomic renames",
                   "objects are not published by rename: they are written in place"),
        Capability("thread_safe", "safety from threads",
                   "wfe sends this store one request at a time (slower with --executor threads)"),
        Capability("shared", "sharing between processes",
                   "only this process sees it: no process or distributed executors"),
        Capability("complete_listings", "listings complete past one page",
                   "a listing may miss objects past its first page, and gc could then delete what a run uses"),
    )
}  # fmt: skip


@dataclass(frozen=True)
class Finding:
    """One capability: yes (True), no (False) or unknown (None), how that was found, and the means used."""

    name: str
    answer: bool | None
    how: str
    via: str = ""  # the call that gives it, where there is a choice ("pipe_file", "open")

    @property
    def shown(self) -> str:
        return {True: "yes", False: "no", None: "unknown"}[self.answer]


@dataclass(frozen=True)
class Findings:
    """What a store's backend can do, row by row, and when that was found out."""

    rows: tuple[Finding, ...]
    probed: float = field(default_factory=time.time)
    source: str = "declared"  # "declared", "probed", "record" (read from the store), "memo" (this process)

    def get(self, name: str) -> Finding | None:
        return next((row for row in self.rows if row.name == name), None)

    def answer(self, name: str) -> bool | None:
        row = self.get(name)
        return None if row is None else row.answer


def declared(storage: StorageIO) -> Findings:
    """The findings a storage class declares through its flags (and notes, where it probed some itself)."""
    name = type(storage).__name__
    notes: dict[str, str] = getattr(storage, "capability_notes", None) or {}
    probed: dict[str, str] = dict(getattr(storage, "probed_flags", None) or {})  # flag -> how it was probed
    rows: list[Finding] = []

    def flag_row(capability: str, flags: tuple[str, ...], default_how: str) -> None:
        has = [flag for flag in flags if getattr(storage, flag, False)]
        if has:
            how = f"probed at opening: {probed[has[0]]}" if has[0] in probed else f"declared by {name} ({has[0]})"
            rows.append(Finding(capability, True, how))
            return
        why = "; ".join(notes[flag] for flag in flags if notes.get(flag))
        found = "probed at opening" if any(flag in probed for flag in flags) else f"declared by {name}"
        rows.append(Finding(capability, False, f"{found}: {why}" if why else default_how))

    flag_row("create_if_absent", ("conditional_create", "exclusive_publish"), f"declared by {name} (no flag for it)")
    # An adapter that publishes in its own way says how (``whole_writes``), as it may say how its listings are
    # complete (``complete_listings``) and whether it is safe from threads (``thread_safe``).
    whole = getattr(type(storage), "whole_writes", None)
    if storage.atomic_upload or storage.hard_links or isinstance(whole, str):
        how = (whole if isinstance(whole, str) else "appears when its upload completes" if storage.atomic_upload
               else "a temporary file, then a link")  # fmt: skip
        rows.append(Finding("whole_writes", True, f"declared by {name} ({how})"))
    else:
        rows.append(Finding("whole_writes", None, f"not declared by {name}: published by the filesystem's mv"))
    said = getattr(type(storage), "thread_safe", None)  # a class may declare it; wfe's own are tested with threads
    if isinstance(said, bool):
        rows.append(Finding("thread_safe", said, f"declared by {name} (thread_safe)"))
    elif _builtin(type(storage)):
        rows.append(Finding("thread_safe", True, f"declared by {name} (wfe's own, tested with threads)"))
    else:
        rows.append(Finding("thread_safe", None, f"not declared by {name}"))
    flag_row("shared", ("shared",), f"declared by {name}: in this process's memory")
    listing = getattr(type(storage), "complete_listings", None)
    if isinstance(listing, str):
        rows.append(Finding("complete_listings", True, f"declared by {name} ({listing})"))
    elif storage.paged_listing:
        rows.append(Finding("complete_listings", True, f"declared by {name} (pages followed to the end)"))
    elif not storage.remote:
        rows.append(Finding("complete_listings", True, f"declared by {name} (one listing, no pages)"))
    else:
        rows.append(Finding("complete_listings", None, f"not declared by {name}"))
    return Findings(tuple(rows))


BUILTIN_PACKAGES = ("wfe", "wfe_s3", "wfe_supabase")  # wfe's own storage classes, tested with threads


def _builtin(cls: type) -> bool:
    return cls.__module__.partition(".")[0] in BUILTIN_PACKAGES


def findings_of(storage: StorageIO) -> Findings:
    """The store's findings: probed (the generic path keeps them on the instance) or declared by its class."""
    found = getattr(storage, "findings", None)
    return found if isinstance(found, Findings) else declared(storage)
