"""Store URLs whose first part is a host: one line naming the form when it is missing, and writes only where they say.

``sftp://tmp/x`` is the folder ``/x`` on the host ``tmp`` (what such a URL
means everywhere else); ``sftp:///tmp/x`` names no host and is refused. The
adapters (SFTP, WebDAV) are handed exactly the host, port, user and path the
URL names; the generic path (any other fsspec protocol) gets the host from the
URL too, and an option naming another host is refused rather than obeyed.
"""

from __future__ import annotations

import string
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import wfe
from wfe import StoreURLError
from wfe.storage._urls import HOST_FORMS, location, with_url_host
from wfe.store._store import split_url


class _Reached(Exception):
    """Raised where a store would first talk to its server: what it was about to reach rides along."""

    def __init__(self, reached: dict[str, Any]) -> None:
        super().__init__(reached)
        self.reached = reached


@pytest.fixture
def adapters_stop_before_connecting(monkeypatch: pytest.MonkeyPatch) -> None:
    """SFTPIO and WebdavIO record the server and folder they were given instead of connecting to it."""
    from wfe_sftp import SFTPIO
    from wfe_webdav import WebdavIO

    def sftp(self: Any, fs: Any, root: str) -> None:
        endpoint = fs.endpoint
        raise _Reached({"host": endpoint.host, "port": endpoint.port, "user": endpoint.user, "root": root})

    def webdav(self: Any, fs: Any, root: str) -> None:
        base = urlsplit(str(fs.client.base_url))
        raise _Reached({"host": base.hostname, "port": base.port, "root": root})

    monkeypatch.setattr(SFTPIO, "__init__", sftp)
    monkeypatch.setattr(WebdavIO, "__init__", webdav)


def _reached(url: str, **options: Any) -> dict[str, Any]:
    with pytest.raises(_Reached) as caught:
        wfe.open_store(url, **options)
    return caught.value.reached


@pytest.mark.parametrize("scheme", sorted(HOST_FORMS))
def test_a_url_without_a_host_is_one_line_naming_the_form(scheme: str) -> None:
    with pytest.raises(StoreURLError) as caught:
        wfe.open_store(f"{scheme}:///tmp/x")
    message = str(caught.value)
    assert message.startswith(f"{scheme}:// needs a host: {HOST_FORMS[scheme]}")
    assert "\n" not in message


@pytest.mark.parametrize("url", ["sftp://:22/x", "webdav://alice@/x", "sftp://alice:pw@/x"])
def test_a_user_or_port_is_no_host(url: str) -> None:
    with pytest.raises(StoreURLError, match="needs a host") as caught:
        wfe.open_store(url)
    assert "pw" not in str(caught.value)  # a password in a refused URL is not shown


@pytest.mark.parametrize("url", ["sftp://host:99999/x", "sftp://host:port/x", "webdav://host:-1/x"])
def test_a_bad_port_names_the_form(url: str) -> None:
    with pytest.raises(StoreURLError, match=r"bad host or port .*the form is"):
        wfe.open_store(url)


@pytest.mark.usefixtures("adapters_stop_before_connecting")
def test_sftp_tmp_x_is_the_folder_x_on_the_host_tmp() -> None:
    """The ambiguous case, decided: the first part is the host, as in every other sftp:// URL."""
    assert _reached("sftp://tmp/x") == {"host": "tmp", "port": 22, "user": None, "root": "/x"}
    assert _reached("sftp://alice@files.example.org:2222/srv/wfe") == {
        "host": "files.example.org", "port": 2222, "user": "alice", "root": "/srv/wfe",
    }  # fmt: skip
    assert _reached("sftp://files.example.org/~/wfe")["root"] == "wfe"  # relative: in the login folder
    assert _reached("ssh://files.example.org/srv/wfe")["root"] == "/srv/wfe"


@pytest.mark.usefixtures("adapters_stop_before_connecting")
def test_webdav_urls_reach_the_host_they_name() -> None:
    assert _reached("webdav://dav.example.org:8080/team/wfe") == {
        "host": "dav.example.org", "port": 8080, "root": "team/wfe",
    }  # fmt: skip
    assert _reached("dav://dav.example.org/w", https="true") == {"host": "dav.example.org", "port": None, "root": "w"}


@pytest.mark.parametrize(
    ("url", "options", "refusal"),
    [
        ("sftp://tmp/x", {"host": "127.0.0.1"}, "give the host in the URL"),
        ("sftp://h/x", {"port": "2222"}, "give the port in the URL"),
        ("sftp://alice:secret@h/x", {}, "password option, not in the URL"),
        ("webdav://bob:secret@h/x", {}, "password option, not in the URL"),
        ("webdav://bob@h/x", {"user": "carol"}, "names user 'bob' but the user option says 'carol'"),
        ("sftp:///srv/x", {"host": "h"}, "sftp:// needs a host"),
        ("sftp://h/", {}, "root of the server's file system is refused"),
        ("sftp://h/x", {"nonsense": "1"}, "unknown SFTP store option 'nonsense'"),
        ("webdav://h/x", {"https": "maybe"}, "https must be true or false"),
    ],
)
def test_the_adapters_refuse_what_would_write_elsewhere(url: str, options: dict[str, str], refusal: str) -> None:
    with pytest.raises(StoreURLError, match=refusal) as caught:
        wfe.open_store(url, **options)
    assert "secret" not in str(caught.value)


def test_the_generic_path_takes_the_host_from_the_url_and_refuses_another() -> None:
    """fsspec's ftp filesystem takes the host as an option and drops it from the path: the URL's host wins."""
    assert with_url_host("ftp", "ftp://alice@files.example.org:2121/x", {}) == {
        "host": "files.example.org", "port": 2121, "username": "alice",
    }  # fmt: skip
    with pytest.raises(StoreURLError, match="names host 'tmp' but the host option says 'other'"):
        wfe.open_store("ftp://tmp/x", host="other")
    with pytest.raises(StoreURLError, match="give it once, in the URL") as caught:
        with_url_host("ftp", "ftp://u:one@h/x", {"password": "two"})
    assert "one" not in str(caught.value) and "two" not in str(caught.value)
    assert with_url_host("s3", "s3://bucket/x", {"key": "k"}) == {"key": "k"}  # not a host-first scheme


# --- generated URLs ------------------------------------------------------------------------------------------

_hosts = st.one_of(
    st.just(""),
    st.from_regex(r"[a-z][a-z0-9-]{0,12}(\.[a-z][a-z0-9-]{0,8}){0,2}", fullmatch=True),
    st.from_regex(r"(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])){3}", fullmatch=True),
    st.text(string.printable, max_size=12),  # garbage: must be refused or taken literally, never crash
)
_segments = st.lists(
    st.one_of(st.from_regex(r"[A-Za-z0-9_.~-]{1,10}", fullmatch=True), st.sampled_from(["..", ".", "~", ""])),
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(
    scheme=st.sampled_from(sorted(HOST_FORMS)),
    user=st.one_of(st.none(), st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)),
    host=_hosts,
    port=st.one_of(st.none(), st.integers(-5, 70000), st.text(string.ascii_letters, min_size=1, max_size=3)),
    segments=_segments,
    slashes=st.sampled_from(["//", "///"]),
)
def test_generated_host_urls_are_refused_in_one_line_or_name_exactly_their_host_and_path(
    scheme: str, user: str | None, host: str, port: int | str | None, segments: list[str], slashes: str
) -> None:
    netloc = f"{user + '@' if user else ''}{host}{'' if port is None else f':{port}'}"
    url = f"{scheme}:{slashes}{netloc}/{'/'.join(segments)}"
    try:
        protocol, path, _ = split_url(url)
        where = location(f"{protocol}://{path}")
    except StoreURLError as exc:
        assert "\n" not in str(exc)
        return
    # Accepted: then the URL had a host, and what the store reaches is exactly what the URL says.
    parts = urlsplit(url)
    assert where.host == parts.hostname and where.host
    assert where.port == parts.port
    assert where.user == (parts.username or None)
    assert ".." not in where.path.split("/")
    assert where.path.strip("/") == parts.path.strip("/")


_names = st.from_regex(r"[A-Za-z0-9_.-]{1,10}", fullmatch=True).filter(lambda s: s not in (".", ".."))


@settings(max_examples=60, deadline=None)
@given(
    scheme=st.sampled_from(["sftp", "ssh", "webdav", "dav"]),
    host=st.from_regex(r"[a-z][a-z0-9-]{0,12}(\.[a-z]{2,5})?", fullmatch=True),
    port=st.one_of(st.none(), st.integers(1, 65535)),
    segments=st.lists(_names, min_size=1, max_size=4),
    option_host=st.one_of(st.none(), st.from_regex(r"[a-z]{1,8}", fullmatch=True)),
)
def test_generated_urls_reach_their_own_host_and_folder_or_are_refused(
    scheme: str, host: str, port: int | None, segments: list[str], option_host: str | None
) -> None:
    url = f"{scheme}://{host}{'' if port is None else f':{port}'}/{'/'.join(segments)}"
    options = {} if option_host is None else {"host": option_host}
    with pytest.MonkeyPatch.context() as patch:
        from wfe_sftp import SFTPIO
        from wfe_webdav import WebdavIO

        def record(self: Any, fs: Any, root: str) -> None:
            endpoint = getattr(fs, "endpoint", None)
            reached = (endpoint.host, endpoint.port) if endpoint else _base(fs)
            raise _Reached({"host": reached[0], "port": reached[1], "root": root})

        patch.setattr(SFTPIO, "__init__", record)
        patch.setattr(WebdavIO, "__init__", record)
        try:
            reached = _reached(url, **options)
        except StoreURLError as exc:
            assert option_host is not None and "host" in str(exc)  # only another host is refused
            return
    assert option_host is None  # never a host option obeyed
    assert reached["host"] == host
    assert reached["port"] == (port if port is not None else 22 if scheme in ("sftp", "ssh") else None)
    assert reached["root"].strip("/") == "/".join(segments)


def _base(fs: Any) -> tuple[str | None, int | None]:
    base = urlsplit(str(fs.client.base_url))
    return base.hostname, base.port


@pytest.mark.parametrize(
    ("url", "library", "extra"), [("sftp://h/x", "paramiko", "sftp"), ("webdav://h/x", "webdav4", "webdav")]
)
def test_a_missing_library_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, url: str, library: str, extra: str
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, library, None)  # as if the extra were not installed
    monkeypatch.setitem(sys.modules, f"{library}.fsspec", None)
    with pytest.raises(StoreURLError, match=rf"{extra} needs the {extra} extra: pip install 'wfe\[{extra}\]'"):
        wfe.open_store(url)
