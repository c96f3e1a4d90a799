"""Functions with large outputs, for crash-safety tests."""

from __future__ import annotations

import hashlib

import wfe

MIB = 1024 * 1024


@wfe.function(outputs="application/octet-stream")
def generate(*, seed: int, mib: int) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest() * (MIB // 32)
    return block * mib


@wfe.function(inputs=["application/octet-stream", "application/octet-stream"], outputs="application/octet-stream")
def interleave(left: bytes, right: bytes) -> bytes:
    return left[::2] + right[1::2]


@wfe.function(inputs=["application/octet-stream"], outputs="application/json")
def fingerprint(data: bytes) -> dict[str, object]:
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
