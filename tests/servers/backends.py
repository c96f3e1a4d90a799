"""The conformance suite's backends that need a server: started here, for wfe's own test run.

``tests/conftest.py`` hands them to the suite through its
``pytest_wfe_conformance_backends`` hook, so ``pytest`` (and ``tox``) runs
every conformance test on memory, local disk, S3 and Supabase Storage. Azure
Blob Storage (Azurite), WebDAV (wsgidav) and SFTP (OpenSSH), whose runs of the
whole suite take minutes, get it through ``wfe check-store`` in the slow tier.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

from conformance_tests.backends import Backend, BackendUnavailable


@contextlib.contextmanager
def _s3() -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        import moto.server  # noqa: F401
        import s3fs  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailable(f"s3 needs moto[server] and s3fs: {exc}") from None
    from servers.s3 import s3_server

    with s3_server() as server:
        yield server.url(f"conformance-{uuid.uuid4().hex[:8]}"), server.options


@contextlib.contextmanager
def _supabase() -> Iterator[tuple[str, dict[str, Any]]]:
    """The real Supabase Storage server (built once per machine, started once per session), in its own prefix."""
    try:
        import storage3  # noqa: F401  (the storage client of the supabase package)
    except ImportError as exc:
        raise BackendUnavailable(f"supabase needs the supabase client (pip install wfe[supabase]): {exc}") from None
    from servers.supabase_storage import Unavailable, shared_server

    try:
        server = shared_server()
    except Unavailable as exc:
        raise BackendUnavailable(f"the Supabase Storage server is not available here: {exc}") from None
    bucket = "wfe-conformance"
    server.ensure_bucket(bucket)
    yield (
        f"supabase://{bucket}/run-{uuid.uuid4().hex[:8]}",
        {"storage_url": server.storage_url, "key": server.service_key},
    )


WITH_SERVERS = [Backend("s3", _s3), Backend("supabase", _supabase)]
# Azure (Azurite), WebDAV (wsgidav) and SFTP (OpenSSH) get the whole suite through `wfe check-store`, in the slow
# tier: tests/test_azure.py, tests/test_webdav.py, tests/test_sftp.py (the same properties, and the CLI's report).
