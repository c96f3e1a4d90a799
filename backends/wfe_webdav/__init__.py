"""WebDAV for wfe: ``webdav://[user@]host[:port]/path``, through webdav4 (httpx).

The URL names the server and the folder on it: ``webdav://alice@dav.example.org:8443/team/wfe?https=true``
is the collection ``/team/wfe`` on ``https://dav.example.org:8443``, as
``alice``. ``dav://`` is the same. Options (``?name=value`` or ``--store-option``):

- ``user``: the user to log in as (or ``user@`` in the URL);
- ``password``: the password (HTTP basic auth: use it over https);
- ``https``: ``true`` to speak HTTPS (default ``false``: plain HTTP);
- ``verify``: ``false`` to accept any TLS certificate (default ``true``);
- ``timeout``: seconds to wait for an answer (default 60).

A password never goes in the URL. Registered by entry point
(``wfe.storage``: ``webdav`` and ``dav`` -> :class:`WebdavIO`), exactly as a
third-party backend is; it uses only wfe's public names. webdav4's own
fsspec filesystem stays what ``fsspec.filesystem("webdav")`` gives, and is
the store's ``io.fs``.
"""

from __future__ import annotations

from ._io import WebdavIO

__all__ = ["WebdavIO"]
