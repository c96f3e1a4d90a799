"""This machine and its processes: the host name, and whether a process of this host still lives."""

from __future__ import annotations

import os


def hostname() -> str:
    if hasattr(os, "uname"):
        return os.uname().nodename  # what socket.gethostname() returns, without importing socket
    import socket

    return socket.gethostname()


def process_alive(host: str, pid: str) -> bool | None:
    """Whether process ``pid`` of ``host`` exists; None where this host cannot tell (another host)."""
    if host != hostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True
