"""Store URLs whose first part is a host: the form each scheme takes, and the host the URL names.

For ``sftp://``, ``webdav://``, ``ftp://`` and the like, what follows ``//``
is a host, not a folder: ``sftp://tmp/x`` is the folder ``/x`` on the host
``tmp``. A URL of such a scheme without a host (``sftp:///tmp/x``) is a
:class:`~wfe.StoreURLError` that names the form that works. A backend that
reaches its server by the URL's host (``from_location`` on its storage class)
gets the URL as a :class:`Location`; the generic path (plain
:class:`~wfe.storage.StorageIO` over an fsspec filesystem) gets the host,
port and user the filesystem reads from the URL, and an option naming
another host is refused rather than obeyed: a store writes only where its
URL says.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import SplitResult, unquote, urlsplit

from .._errors import StoreURLError

_USER_HOST = "[user@]host[:port]/path"
HOST_FORMS: dict[str, str] = {
    "sftp": f"sftp://{_USER_HOST}",
    "ssh": f"ssh://{_USER_HOST}",
    "webdav": f"webdav://{_USER_HOST}",
    "dav": f"dav://{_USER_HOST}",
    "ftp": f"ftp://{_USER_HOST}",
    "http": "http://host[:port]/path",
    "https": "https://host[:port]/path",
    "smb": "smb://[user@]host[:port]/share/path",
}
"""Scheme -> the form of its URLs, for every scheme whose first path part is a host."""

_SECRET_WORDS = ("password", "secret", "token", "key")


class Location(NamedTuple):
    """What a host-first store URL names: who logs in where, and the path there (as written, not decoded)."""

    scheme: str
    host: str
    port: int | None
    user: str | None
    password: str | None
    path: str

    def __str__(self) -> str:
        """The URL without any password."""
        user = f"{self.user}@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}://{user}{host}{port}{self.path}"


def needs_host(scheme: str) -> bool:
    return scheme in HOST_FORMS


def _shown(url: str) -> str:
    """``url`` without the part before ``@`` in its host part (it may hold a password), on one line."""
    scheme, sep, rest = url.partition("://")
    if sep:
        netloc, slash, path = rest.partition("/")
        url = f"{scheme}://{netloc.rpartition('@')[2]}{slash}{path}"
    return url if url.isprintable() else repr(url)[1:-1]  # a line break or control character shown escaped


def check_host(scheme: str, parts: SplitResult, url: str) -> None:
    """A :class:`StoreURLError` if ``scheme`` needs a host and ``url`` (split as ``parts``) has none or a bad port."""
    form = HOST_FORMS.get(scheme)
    if form is None:
        return
    try:
        host = parts.hostname
        parts.port  # noqa: B018  # raises ValueError for a port that is not a number in range
    except ValueError:
        shown = _shown(url)
        raise StoreURLError(f"{scheme}:// store URL has a bad host or port ({shown}); the form is {form}") from None
    if not host:
        raise StoreURLError(f"{scheme}:// needs a host: {form} (got {_shown(url)})")


def location(url: str) -> Location:
    """The :class:`Location` of a host-first store URL; :class:`StoreURLError` if it names no host."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise StoreURLError(f"invalid store URL {_shown(url)}: {exc}") from None
    scheme = parts.scheme.lower()
    check_host(scheme, parts, url)
    assert parts.hostname is not None  # check_host refused a URL without one
    return Location(
        scheme=scheme,
        host=parts.hostname,
        port=parts.port,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        path=parts.path or "/",
    )


def with_url_host(scheme: str, url: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` for the generic path, with what the filesystem reads from ``url`` (host, port, user).

    fsspec filesystems of host-first schemes take the host as an argument and
    drop it from the path, so ``sftp://tmp/x`` with a ``host`` option would
    write ``/x`` on that other host. Here the URL's reading is added, and an
    option that disagrees with it is a :class:`StoreURLError`.
    """
    form = HOST_FORMS.get(scheme)
    if form is None:
        return dict(options)
    import fsspec

    try:
        reader = fsspec.get_filesystem_class(scheme)
    except (ValueError, ImportError):  # unknown or not installed: opening the filesystem says so
        return dict(options)
    from_url: dict[str, Any] = {
        name: value for name, value in reader._get_kwargs_from_urls(url).items() if value not in (None, "")
    }
    for name, value in from_url.items():
        given = options.get(name)
        if given is not None and str(given) != str(value):
            if any(word in name.lower() for word in _SECRET_WORDS):
                detail = f"the URL and the {name} option give different values"
            else:
                detail = f"the URL names {name} {value!r} but the {name} option says {given!r}"
            raise StoreURLError(f"{detail}; give it once, in the URL: {form}")
    return {**from_url, **options}


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def option_flag(backend: str, name: str, value: Any) -> bool:
    """A store option that is true or false (``true``/``yes``/``on``/``1`` or their opposites, or a bool)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise StoreURLError(f"{backend} option {name} must be true or false, got {value!r}")
