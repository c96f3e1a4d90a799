"""A real SFTP server on 127.0.0.1: OpenSSH's sshd as a child process, with keys made for it in a folder.

sshd runs in the foreground (``sshd -D -e -f CONFIG``) on a free loopback
port, with a host key and a user key generated in its folder, its
``authorized_keys`` and pid file there too, and ``internal-sftp`` as the SFTP
subsystem. It takes the user this process runs as, by key only (as root:
``PermitRootLogin prohibit-password``). Use :func:`sshd_server`::

    with sshd_server(tmp_path / "sshd") as server:
        store = wfe.open_store(server.url(tmp_path / "store"), **server.options)

:class:`Unavailable` says why it cannot start here (no sshd installed: Debian's
``openssh-server`` package).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT = 20.0
SSHD_PATHS = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")
PRIVILEGE_SEPARATION = Path("/run/sshd")  # Debian's sshd refuses to start without it


class Unavailable(Exception):
    """sshd cannot run here; the message says why."""


@dataclass
class SshdServer:
    """A running sshd: its port, the user it lets in, and that user's private key file."""

    port: int
    user: str
    key_file: Path
    folder: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def options(self) -> dict[str, str]:
        """Store options for the adapter: the key to log in with and the host key to trust."""
        return {"key_file": str(self.key_file), "known_hosts": str(self.folder / "known_hosts")}

    def url(self, path: str | os.PathLike[str], scheme: str = "sftp") -> str:
        """``sftp://user@127.0.0.1:PORT/abs/path`` for a store in ``path`` (a folder on this machine)."""
        absolute = os.path.abspath(path).lstrip("/")
        return f"{scheme}://{self.user}@127.0.0.1:{self.port}/{absolute}"


def sshd_binary() -> str:
    """The sshd to run; :class:`Unavailable` if there is none."""
    for candidate in (shutil.which("sshd"), *SSHD_PATHS):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise Unavailable("OpenSSH's sshd is not installed (Debian: apt-get install openssh-server)")


def _keygen(path: Path) -> None:
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        raise Unavailable("ssh-keygen is not installed (Debian: apt-get install openssh-client)")
    subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", "wfe-test", "-f", str(path)], check=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _config(folder: Path, port: int, user: str) -> str:
    root_login = "prohibit-password" if user == "root" else "no"
    return "\n".join([
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {folder / 'host_key'}",
        f"PidFile {folder / 'sshd.pid'}",
        f"AuthorizedKeysFile {folder / 'authorized_keys'}",
        f"AllowUsers {user}",
        f"PermitRootLogin {root_login}",
        "StrictModes no",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "Subsystem sftp internal-sftp",
        "MaxStartups 100",  # worker processes log in at once; MaxSessions stays OpenSSH's default (10)
        "LogLevel ERROR",
        "",
    ])  # fmt: skip


@contextlib.contextmanager
def sshd_server(folder: Path) -> Iterator[SshdServer]:
    """Start sshd with fresh keys in ``folder`` on a free loopback port; stop it (and its sessions) on exit."""
    binary = sshd_binary()
    if not PRIVILEGE_SEPARATION.is_dir():
        try:
            PRIVILEGE_SEPARATION.mkdir(mode=0o755)
        except OSError as exc:
            raise Unavailable(f"sshd needs {PRIVILEGE_SEPARATION}, which cannot be made here: {exc}") from None
    folder.mkdir(parents=True, exist_ok=True)
    user = getpass.getuser()
    _keygen(folder / "host_key")
    _keygen(folder / "user_key")
    shutil.copy(folder / "user_key.pub", folder / "authorized_keys")
    host_key = (folder / "host_key.pub").read_text().split()
    for attempt in range(3):  # another process may take the free port before sshd binds it
        port = _free_port()
        (folder / "sshd_config").write_text(_config(folder, port, user))
        (folder / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
        log = open(folder / "sshd.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [binary, "-D", "-e", "-f", str(folder / "sshd_config")],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            start_new_session=True,  # its sessions are in its process group, stopped with it
        )  # fmt: skip
        log.close()
        if _wait_for_banner(port, process):
            break
        _stop(process)
        if attempt == 2:
            raise Unavailable(f"sshd did not start: {(folder / 'sshd.log').read_text(errors='replace').strip()}")
    try:
        yield SshdServer(port, user, folder / "user_key", folder, process)
    finally:
        _stop(process)


def _wait_for_banner(port: int, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as connection:
                if connection.recv(64).startswith(b"SSH-"):
                    return True
        except OSError:
            time.sleep(0.05)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
