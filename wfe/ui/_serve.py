"""Serve the app with uvicorn on a socket bound here, so a port in use is one line, not a traceback."""

from __future__ import annotations

import errno
import ipaddress
import socket
import sys
from typing import TextIO

from .._errors import WfeError
from ..store._store import Store
from ._app import create_app
from ._format import store_label

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one); WfeError in one line if it cannot be had."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise WfeError(f"cannot listen on {host!r}: {exc}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise WfeError(f"port {port} is in use on {host}; pass --port") from None
        if exc.errno == errno.EACCES:
            raise WfeError(f"not allowed to listen on port {port} of {host}; pass --port above 1023") from None
        raise WfeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def _hosts(host: str) -> tuple[str, ...]:
    """The Host names the app answers to: loopback names, the bound address; any for a wildcard address."""
    try:
        if ipaddress.ip_address(host).is_unspecified:
            return ("*",)
    except ValueError:
        pass
    return (*LOOPBACK, host)


def serve(store: Store, *, host: str = "127.0.0.1", port: int = 8000, debug: bool = False,
          out: TextIO = sys.stdout) -> None:
    """Serve ``store`` until interrupted; prints the address first (with the port chosen for ``port=0``)."""
    import uvicorn

    sock = bind(host, port)
    bound_port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    print(f"wfe ui: serving {store_label(store)} at http://{shown}:{bound_port}/ (Ctrl-C stops it)", file=out,
          flush=True)
    config = uvicorn.Config(create_app(store, hosts=_hosts(host)), log_level="info" if debug else "warning",
                            access_log=debug, lifespan="off", server_header=False)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
