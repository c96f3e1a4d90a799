"""The conformance suite's backends that need a server: started here, for wfe's own test run.

``tests/conftest.py`` hands them to the suite through its
``pytest_wfe_conformance_backends`` hook, so ``pytest`` (and ``tox``) runs
every conformance test on memory, local disk, S3 and Supabase Storage; the slow
tier also on Azure Blob Storage (Azurite), WebDAV (wsgidav) and SFTP (OpenSSH), whose
runs of the whole suite take minutes (``SLOW_BACKENDS``, marked in tests/conftest.py).
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


@contextlib.contextmanager
def _azure() -> Iterator[tuple[str, dict[str, Any]]]:
    """Azure Blob Storage's emulator, Azurite (npm-installed once per machine), through adlfs: the generic path."""
    try:
        import adlfs  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailable(f"azure needs adlfs (pip install wfe[azure]): {exc}") from None
    from servers.azurite import Unavailable, azurite_server

    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(azurite_server())
        except Unavailable as exc:
            raise BackendUnavailable(f"Azurite is not available here: {exc}") from None
        yield server.url(f"conformance-{uuid.uuid4().hex[:8]}"), server.options


@contextlib.contextmanager
def _webdav() -> Iterator[tuple[str, dict[str, Any]]]:
    """wsgidav serving a temporary folder, through wfe_webdav."""
    try:
        import webdav4  # noqa: F401
        import wsgidav  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailable(f"webdav needs webdav4 and wsgidav (pip install wfe[webdav,test]): {exc}") from None
    import tempfile
    from pathlib import Path

    from servers.webdav import webdav_server

    with tempfile.TemporaryDirectory(prefix="wfe-webdav-") as folder, webdav_server(Path(folder)) as server:
        yield server.url(f"conformance-{uuid.uuid4().hex[:8]}"), server.options


@contextlib.contextmanager
def _sftp() -> Iterator[tuple[str, dict[str, Any]]]:
    """OpenSSH's sshd on a temporary folder, through wfe_sftp."""
    try:
        import paramiko  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailable(f"sftp needs paramiko (pip install wfe[sftp]): {exc}") from None
    import tempfile
    from pathlib import Path

    from servers.sshd import Unavailable, sshd_server

    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wfe-sftp-")))
        try:
            server = stack.enter_context(sshd_server(folder / "sshd"))
        except Unavailable as exc:
            raise BackendUnavailable(str(exc)) from None
        yield server.url(folder / "conformance"), server.options


WITH_SERVERS = [Backend("s3", _s3), Backend("supabase", _supabase), Backend("azure", _azure)]
WITH_SERVERS += [Backend("webdav", _webdav), Backend("sftp", _sftp)]
SLOW_BACKENDS = {"webdav", "sftp"}  # the suite takes over a minute on each (3 and 1.3 on two cores): the slow tier
SLOW_BACKENDS.add("azure")  # Azurite: about 5 minutes
