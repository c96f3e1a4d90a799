"""Azurite, Azure Blob Storage's emulator, on 127.0.0.1: the blob service only, in memory, for ``abfs://`` stores.

Azurite comes from the npm registry: installed once per machine into a cache
folder (``$WFE_TEST_SERVER_CACHE``, default ``~/.cache/wfe-test-servers``,
as the Supabase Storage server's build), under a lock so that parallel test
sessions install it once. Each :func:`azurite_server` starts its own
process on a free port, in-memory (nothing on disk), with telemetry off, and
stops it on exit. Without ``node`` and ``npm`` on the PATH it raises
:class:`Unavailable` with the reason.

The account is Azurite's documented development account; stores reach it
with the ``connection_string`` option of adlfs::

    with azurite_server() as server:
        store = wfe.open_store(server.url("prefix"), **server.options)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from servers.supabase_storage import _die_with_parent, cache_root

AZURITE_SPEC = "3.37.0"  # the npm package's version, part of the cache folder's name
START_TIMEOUT = 30.0
INSTALL_TIMEOUT = 600.0
# Azurite's published development account (the same in every Azurite): not a secret.
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_LISTENING = re.compile(rb"listens on http://127\.0\.0\.1:(\d+)")


class Unavailable(Exception):
    """Azurite cannot be installed or started here; the message says why."""


@dataclass
class AzuriteServer:
    """A running Azurite blob service and one container made for the caller."""

    port: int
    container: str
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.port}/{ACCOUNT};"
        )

    @property
    def options(self) -> dict[str, str]:
        """Store options that reach this server."""
        return {"connection_string": self.connection_string}

    def url(self, prefix: str) -> str:
        return f"abfs://{self.container}/{prefix}"

    def filesystem(self) -> Any:
        """An adlfs filesystem on this server, its own instance (behind any store's back)."""
        import adlfs

        return adlfs.AzureBlobFileSystem(connection_string=self.connection_string, skip_instance_cache=True)


def installed() -> Path:
    """The ``azurite-blob`` command, installed from npm into the cache folder the first time."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise Unavailable("Azurite needs node and npm on the PATH (apt-get install nodejs npm)")
    folder = cache_root() / f"azurite-{AZURITE_SPEC}"
    command = folder / "node_modules" / ".bin" / "azurite-blob"
    if command.exists():
        return command
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{folder}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session may be installing it: wait, then use its install
        if command.exists():
            return command
        work = Path(tempfile.mkdtemp(prefix="azurite-", dir=folder.parent))
        try:
            done = subprocess.run(
                ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(work), f"azurite@{AZURITE_SPEC}"],
                capture_output=True, text=True, timeout=INSTALL_TIMEOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
            if done.returncode != 0:
                tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-3:])[-500:]
                raise Unavailable(f"npm install azurite@{AZURITE_SPEC} failed: {tail}")
            work.rename(folder)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return command


@contextlib.contextmanager
def azurite_server() -> Iterator[AzuriteServer]:
    """Start Azurite's blob service on a free loopback port, make a container, stop it on exit."""
    command = installed()
    workspace = Path(tempfile.mkdtemp(prefix="wfe-azurite-"))
    log_path = workspace / "azurite.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(command), "--blobHost", "127.0.0.1", "--blobPort", "0", "--inMemoryPersistence",
             "--skipApiVersionCheck", "--loose", "--disableProductStyleUrl", "--disableTelemetry", "--silent"],
            cwd=workspace, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=_die_with_parent,  # gone with this process, even one killed before its cleanup
        )  # fmt: skip
    try:
        port = _wait_for_port(process, log_path)
        server = AzuriteServer(port, f"wfe-{uuid.uuid4().hex[:12]}", process)
        server.filesystem().mkdir(server.container)
        yield server
    finally:
        _stop(process)
        shutil.rmtree(workspace, ignore_errors=True)


def _wait_for_port(process: subprocess.Popen[bytes], log_path: Path) -> int:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        found = _LISTENING.search(log_path.read_bytes())
        if found:
            return int(found.group(1))
        if process.poll() is not None:
            break
        time.sleep(0.05)
    said = log_path.read_bytes().decode(errors="replace").strip().splitlines()[-3:]
    raise Unavailable(f"Azurite did not start within {START_TIMEOUT:g} s: {' '.join(said)[-500:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
