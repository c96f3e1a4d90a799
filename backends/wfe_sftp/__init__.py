"""SFTP for wfe: ``sftp://[user@]host[:port]/path``, through paramiko, safe from threads.

The URL names the server and the folder on it: ``sftp://deploy@files.example.org/srv/wfe``
is ``/srv/wfe`` on ``files.example.org`` (port 22), logged in as ``deploy``
(by default, the local user name); ``sftp://host/~/wfe`` is ``wfe`` in the
login folder. ``ssh://`` is the same. Options (``?name=value`` or
``--store-option``):

- ``key_file``: the private key to log in with (only it is tried); without
  it and without ``password``, the SSH agent and ``~/.ssh/id_*`` are tried;
- ``password``: the password to log in with, or the key file's passphrase;
- ``known_hosts``: the file that holds the server's host key (default
  ``~/.ssh/known_hosts``); a server whose key is not there is refused;
- ``timeout``: seconds to connect and log in (default 10);
- ``sessions``: SFTP sessions opened on the connection, at most (default 8;
  OpenSSH allows 10 by default).

Host, port and user go in the URL only; a password never does. Registered by
entry point (``wfe.storage``: ``sftp`` and ``ssh`` -> :class:`SFTPIO`),
exactly as a third-party backend is; it uses only wfe's public names.
"""

from __future__ import annotations

from ._fs import SFTPFileSystem
from ._io import SFTPIO
from ._sessions import Endpoint, Sessions

__all__ = ["SFTPIO", "Endpoint", "SFTPFileSystem", "Sessions"]
