"""joblib.Memory 1.6, memoization only: see _common for the usage.

Each function is wrapped with ``Memory(CACHE).cache``; the workflow is plain
Python calling them, which is how joblib's docs use it.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common
from joblib import Memory

SHAPE, N, CACHE = _common.args()
memory = Memory(CACHE, verbose=0)


if __name__ == "__main__":  # each function wrapped by Memory(CACHE).cache; the mapped step called per element
    _common.report(SHAPE, N, _common.drive(SHAPE, N, memory.cache))
