"""The floor: the least work a persistent, content-addressed memo does, in plain Python.

Not a tool: a lower bound to hold wfe against. Per call it hashes the call
(function name and arguments) into a key and looks for ``CACHE/<key>``; on
a miss it computes, writes the result to a temporary file and renames it
into place (no reader ever sees half a result). A large output is also
content addressed, as wfe's are: its sha256 runs in a second thread while
it is written, and the key's file names the digest. A cached run reads the
results back and checks nothing: no digest verified, no graph, no run
record, no lease, no config kept. Runs with the benchmark's own interpreter.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

SHAPE, N, CACHE = _common.args()
ROOT = Path(CACHE)
ROOT.mkdir(parents=True, exist_ok=True)
_names = iter(range(1 << 62))


def _publish(data: bytes | memoryview, final: Path) -> None:
    temp = ROOT / f"tmp-{os.getpid()}-{next(_names)}"
    with open(temp, "wb") as handle:
        handle.write(data)
    os.replace(temp, final)


def memo(function: Callable[..., Any], *args: Any) -> Any:
    key = hashlib.sha256(pickle.dumps((function.__name__, args))).hexdigest()
    path = ROOT / key
    try:
        stored = path.read_bytes()
    except FileNotFoundError:
        value = function(*args)
        if isinstance(value, bytes) and len(value) > 1 << 20:
            digest: dict[str, str] = {}
            hashing = threading.Thread(target=lambda: digest.update(d=hashlib.sha256(value).hexdigest()))
            hashing.start()
            temp = ROOT / f"tmp-{os.getpid()}-{next(_names)}"
            with open(temp, "wb") as handle:
                handle.write(value)
            hashing.join()
            os.replace(temp, ROOT / digest["d"])
            _publish(digest["d"].encode(), path)
        else:
            _publish(pickle.dumps(value), path)
        return value
    if len(stored) == 64 and not stored.startswith(b"\x80"):  # a digest: the large output beside it
        return (ROOT / stored.decode()).read_bytes()
    return pickle.loads(stored)


def cached(function: Callable[..., Any]) -> Callable[..., Any]:
    return lambda *args: memo(function, *args)


if __name__ == "__main__":
    _common.report(SHAPE, N, _common.drive(SHAPE, N, cached))
