"""s3rver, a third-party S3 server (Node.js) that nobody here wrote: installed once per machine, started per use.

It is the S3 a developer often tries first, and it differs from AWS where it
matters to wfe: it ignores ``If-None-Match`` (a create-only PUT silently
replaces the object), and concurrent PUTs of one key may interleave. A
store on it must find that out (the S3 backend probes at opening) and not
lean on conditional writes.

:func:`install` puts the npm package into a cache folder
(``~/.cache/wfe-test-servers``, or ``WFE_TEST_SERVER_CACHE``), once per
machine and version, under a file lock; :func:`s3rver_server` starts it on a
free loopback port with its data in a temporary folder and stops it (and
removes the folder) on exit; the server also dies with the process that
started it. Both raise :class:`Unavailable` only when Node.js or npm is
missing; a failed install is an error.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VERSION = "3.7.1"
KEY = SECRET = "S3RVER"  # the only key pair s3rver accepts unless configured otherwise
START_TIMEOUT = 30.0
STOP_GRACE = 5.0

Log = Callable[[str], None]


class Unavailable(Exception):
    """s3rver cannot be had on this machine; the message is one line, fit for ``pytest.skip``."""


@dataclass
class S3rver:
    """A running s3rver: its endpoint and a bucket made for the caller."""

    endpoint_url: str
    bucket: str
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def options(self) -> dict[str, str]:
        """Store options that reach this server."""
        return {"endpoint_url": self.endpoint_url, "key": KEY, "secret": SECRET}

    def url(self, prefix: str = "") -> str:
        """``s3://bucket/prefix`` for a store on this server."""
        return f"s3://{self.bucket}/{prefix}".rstrip("/")

    def client(self) -> Any:
        """A plain boto3 client on this server, to look behind the store's back."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, aws_access_key_id=KEY,
                            aws_secret_access_key=SECRET, region_name="us-east-1")  # fmt: skip


def cache_root() -> Path:
    return Path(os.environ.get("WFE_TEST_SERVER_CACHE") or Path.home() / ".cache" / "wfe-test-servers")


def _tools() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise Unavailable(f"s3rver needs Node.js and npm ({'node' if node is None else 'npm'} not found on PATH)")
    return node, npm


def install(log: Log = print) -> Path:
    """The folder s3rver is installed in, installing it from the npm registry first if needed.

    One install per machine and version: others wait on the lock and find it
    done. It goes into a temporary folder renamed into place when complete,
    so an interrupted install is never taken for a finished one.
    """
    _node, npm = _tools()
    root = cache_root()
    final = root / f"s3rver-{VERSION}"
    if (final / "INSTALLED").is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"s3rver-{VERSION}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / "INSTALLED").is_file():
            return final
        for stale in [*root.glob(f"s3rver-{VERSION}.tmp-*"), final]:  # left by an install that was killed
            shutil.rmtree(stale, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=f"s3rver-{VERSION}.tmp-", dir=root))
        try:
            log(f"s3rver: installing s3rver@{VERSION} into {final} (once per machine)")
            done = subprocess.run(
                [npm, "install", "--prefix", str(work), "--no-save", "--no-audit", "--no-fund",
                 "--no-update-notifier", f"s3rver@{VERSION}"],
                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            if done.returncode != 0:  # a failure to report, not a reason to skip: node and npm are here
                tail = " | ".join(done.stderr.strip().splitlines()[-5:])
                raise RuntimeError(f"npm install s3rver@{VERSION} failed (exit {done.returncode}): {tail}")
            (work / "INSTALLED").write_text(VERSION)
            os.rename(work, final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return final


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


try:
    _PRCTL: Any = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it
except (OSError, AttributeError):  # not Linux
    _PRCTL = None
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the server's process, before it runs: be killed when the test process dies, cleanup or not."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)


def _answers(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group, then SIGKILL to what is left after a grace period."""
    for signum, grace in ((signal.SIGTERM, STOP_GRACE), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signum)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace)
            if grace is not None:
                return


@contextlib.contextmanager
def s3rver_server(bucket: str | None = None, log: Log = print) -> Iterator[S3rver]:
    """Start s3rver on a free loopback port with ``bucket`` made, its data in a temporary folder; stop it on exit."""
    node, _npm = _tools()
    installed = install(log)
    bucket = bucket or f"wfe-{uuid.uuid4().hex[:12]}"
    with tempfile.TemporaryDirectory(prefix="wfe-s3rver-") as folder:
        port = _free_port()
        log_path = Path(folder) / "s3rver.log"
        with open(log_path, "wb") as out:
            process = subprocess.Popen(
                [node, str(installed / "node_modules" / "s3rver" / "bin" / "s3rver.js"), "--directory",
                 str(Path(folder) / "data"), "--address", "127.0.0.1", "--port", str(port), "--silent",
                 "--configure-bucket", bucket],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent,
            )  # fmt: skip
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not _answers(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    text = log_path.read_text(errors="replace").strip()[-800:]
                    raise RuntimeError(f"s3rver did not start (exit {process.poll()}): {text}")
                time.sleep(0.1)
            yield S3rver(f"http://127.0.0.1:{port}", bucket, process)
        finally:
            _stop(process)
