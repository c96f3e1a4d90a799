"""A real WebDAV server on 127.0.0.1, in its own process: wsgidav serving a folder, behind basic auth.

wsgidav keeps each resource as a file in the folder it serves, and moves one
with a rename, which is what the WebDAV adapter's publish rests on. Use
:func:`webdav_server` as a context manager::

    with webdav_server(tmp_path) as server:
        store = wfe.open_store(server.url("prefix"), **server.options)

Run as ``python -m servers.webdav FOLDER USER PASSWORD`` it serves until
killed (or its parent is gone) and prints its port on the first line of stdout.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from servers._process import exit_with_parent, read_port, stop

USER = "wfe"
PASSWORD = "wfe-test-password-not-real"
THREADS = 32  # requests served at once: the store sends up to 32 together (StorageIO.gather)


@dataclass
class WebdavServer:
    """A running server: its address, the folder it serves, and the credentials it takes."""

    port: int
    folder: Path
    user: str = USER
    password: str = PASSWORD
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def options(self) -> dict[str, str]:
        """Store options for the adapter: the credentials."""
        return {"user": self.user, "password": self.password}

    def url(self, prefix: str = "", scheme: str = "webdav") -> str:
        """``webdav://127.0.0.1:PORT/prefix`` for a store on this server."""
        return f"{scheme}://127.0.0.1:{self.port}/{prefix}".rstrip("/")

    def filesystem(self) -> Any:
        """webdav4's own fsspec filesystem on this server, to look behind the store's back."""
        from webdav4.fsspec import WebdavFileSystem

        return WebdavFileSystem(self.base_url, auth=(self.user, self.password))


@contextlib.contextmanager
def webdav_server(folder: Path, user: str = USER, password: str = PASSWORD) -> Iterator[WebdavServer]:
    """Serve ``folder`` on a free loopback port with basic auth; stop the server on exit."""
    folder.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "servers.webdav", str(folder), user, password],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    try:
        yield WebdavServer(read_port(process, "WebDAV"), folder, user, password, process)
    finally:
        stop(process)


def main() -> None:
    from cheroot import wsgi
    from wsgidav.wsgidav_app import WsgiDAVApp

    folder, user, password = sys.argv[1:4]
    config = {
        "provider_mapping": {"/": folder},
        "simple_dc": {"user_mapping": {"*": {user: {"password": password}}}},
        "http_authenticator": {"accept_basic": True, "accept_digest": False, "default_to_digest": False},
        "verbose": 0,
        "logging": {"enable": False},
        "dir_browser": {"enable": False},
        "lock_storage": True,
        "property_manager": None,
    }
    app = WsgiDAVApp(config)
    server = wsgi.Server(("127.0.0.1", 0), app, numthreads=THREADS)
    server.prepare()
    print(server.bind_addr[1], flush=True)
    exit_with_parent()
    server.serve()


if __name__ == "__main__":
    main()
