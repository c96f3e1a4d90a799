"""Amazon S3 (and S3-compatible servers) for wfe: ``s3://bucket/prefix``, through s3fs.

Registered by entry point (``wfe.storage``: ``S3IO``), exactly as a third-party
backend is; it uses only wfe's public names (``wfe`` and ``wfe.storage``).
"""

from __future__ import annotations

from ._io import S3IO, Bounds, MiB

__all__ = ["S3IO", "Bounds", "MiB"]
