"""A node's scratch folder: made on first use, named after its process, removed when the node ends."""

from __future__ import annotations

import contextvars
import os
from pathlib import Path
from typing import Any

from .._errors import WfeError
from ._host import hostname

SCRATCH_PREFIX = "node_"  # tmp/node_<pid>_<token>_<host>: a node's scratch folder in a local store


def scratch_owner(name: str) -> tuple[str, str] | None:
    """``(host, pid)`` of the process a scratch folder's name says made it; None if it is no such name."""
    if not name.startswith(SCRATCH_PREFIX):
        return None
    parts = name[len(SCRATCH_PREFIX) :].split("_", 2)
    return (parts[2], parts[0]) if len(parts) == 3 and parts[0].isdigit() else None


class Scratch:
    """The running node's scratch folder, made on first use; on local disk, inside the store's ``tmp/``."""

    __slots__ = ("base", "path")

    def __init__(self, base: str | None) -> None:
        self.base = base
        self.path: str | None = None

    def folder(self) -> str:
        if self.path is None:
            if self.base is None:
                import tempfile

                self.path = os.path.realpath(tempfile.mkdtemp(prefix="wfe-node-"))
            else:  # named after its process, so gc keeps it while that process lives
                from stat import S_ISDIR

                from ..storage._translate import damaged

                try:
                    mode = os.lstat(self.base).st_mode
                except FileNotFoundError:
                    os.makedirs(self.base, exist_ok=True)
                    mode = os.lstat(self.base).st_mode
                if not S_ISDIR(mode):  # the store's tmp/ linked elsewhere: make nothing through it
                    raise damaged(self.base, mode)
                while True:
                    name = f"{SCRATCH_PREFIX}{os.getpid()}_{os.urandom(4).hex()}_{hostname()}"
                    path = os.path.join(self.base, name)
                    try:
                        os.mkdir(path, 0o700)
                        break
                    except FileExistsError:
                        continue
                self.path = os.path.realpath(path)
        return self.path

    def owns(self, path: Any) -> bool:
        """True for a file of its own in the folder: not a link to, or a second name of, a file elsewhere."""
        if self.path is None or self.base is None:
            return False
        real = os.path.realpath(path)
        if not real.startswith(self.path + os.sep) or os.path.islink(path):
            return False
        try:
            return os.stat(real).st_nlink == 1
        except OSError:
            return False

    def remove(self) -> None:
        if self.path is not None:
            import shutil

            shutil.rmtree(self.path, ignore_errors=True)


CURRENT_SCRATCH: contextvars.ContextVar[Scratch | None] = contextvars.ContextVar("wfe_node_scratch", default=None)


def scratch_dir() -> Path:
    """A folder for the running node's own files, deleted when the node ends.

    On a local store it is on the store's disk, and a file in it that the
    function returns as an output is moved into the store instead of copied:
    write a large output there and return its path. Do not write to such a
    file after returning it.
    """
    scratch = CURRENT_SCRATCH.get()
    if scratch is None:
        raise WfeError("wfe.scratch_dir() is for a function running as a node of a run")
    return Path(scratch.folder())
