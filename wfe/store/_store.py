"""``open_store(url)``: one URL picks the backend; a Store bundles the five parts."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .._errors import NotFoundError, StoreURLError
from .._redact import redact, redact_options
from ..storage._base import StorageIO
from ..storage._registry import filesystem, storage_class
from ..storage._urls import check_host, location, with_url_host
from ._blobs import BlobStore
from ._cache import cache_settings, with_cache
from ._records import ActionCache, ConfigStore, FunctionStore, RunStore, load_json

DEFAULT_STORE = "./.wfe"
CONFIG_ENTRIES = 16  # action entries a config missing from the config store is looked for in


def default_store_url() -> str:
    return os.environ.get("WFE_STORE") or DEFAULT_STORE


def _local_root(path: str, url: str) -> str:
    """The absolute folder of a local store; never the filesystem's root, where its folders would sit beside /etc."""
    root = os.path.abspath(path)
    real = os.path.realpath(root)  # a link to / is the root too
    if os.path.dirname(root) == root or os.path.dirname(real) == real:
        raise StoreURLError(f"store URL {url!r} names the filesystem's root: name a folder for the store")
    return root


def split_url(url: str) -> tuple[str, str, dict[str, str]]:
    """``(protocol, path, options)`` of a store URL; a plain path is ``file``."""
    if not isinstance(url, str) or not url or "\x00" in url:
        raise StoreURLError(f"invalid store URL {url!r}")
    if "://" not in url:
        return "file", _local_root(os.path.expanduser(url), url), {}
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise StoreURLError(f"invalid store URL {url!r}: {exc}") from None
    protocol = parts.scheme.lower()
    if not protocol or not protocol.replace("+", "").replace("-", "").isalnum():
        raise StoreURLError(f"invalid store URL {url!r}")
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    if protocol in ("file", "local"):
        if parts.netloc not in ("", "localhost"):
            raise StoreURLError(f"file URLs take no host: {url!r}")
        if not parts.path:
            raise StoreURLError(f"store URL {url!r} names no folder: e.g. file:///path/to/store")
        return "file", _local_root(parts.path, url), options
    check_host(protocol, parts, url)  # sftp://, webdav://, ...: a URL without a host names the form that works
    path = (parts.netloc + parts.path).strip("/")
    if ".." in path.split("/"):
        raise StoreURLError(f"store path may not contain '..': {url!r}")
    return protocol, path, options


class Store:
    """The five parts of one store on one filesystem.

    ``url`` and ``options`` are enough to open the same store again in
    another process (secrets in options are never shown in the repr).
    """

    def __init__(self, storage: StorageIO, url: str, options: Mapping[str, Any] | None = None) -> None:
        self.io = storage
        self.url = url
        self.options = dict(options or {})
        self.blobs = BlobStore(storage)
        self.functions = FunctionStore(storage)
        self.configs = ConfigStore(storage)
        self.actions = ActionCache(storage)
        self.runs = RunStore(storage)

    def config_json(self, digest: str, action_keys: Iterable[str | None] = ()) -> bytes:
        """The canonical JSON of config ``digest``: from the config store, else from one of the action entries
        ``action_keys`` (of the node that used it: a small config is kept there, not in a file of its own).

        NotFoundError if neither has it; IntegrityError if what is found does not match the digest.
        """
        try:
            return self.configs.get_json(digest)
        except NotFoundError:
            # Every entry of the node carries the same config (its digest is part of the action key), so a
            # few suffice: a mapped node's 10,000 element entries, all collected, are not 10,000 requests.
            keys = (key for key in action_keys if key is not None)
            for key in itertools.islice(keys, CONFIG_ENTRIES):
                data = self.configs.from_entry(digest, self.actions.lookup(key))
                if data is not None:
                    return data
            raise

    def config(self, digest: str, action_keys: Iterable[str | None] = ()) -> dict[str, Any]:
        """:meth:`config_json`, decoded."""
        value: dict[str, Any] = load_json(self.config_json(digest, action_keys), f"config {digest}")
        return value

    @property
    def shared(self) -> bool:
        """True if other processes can open the same store by its URL."""
        return self.io.shared

    def __repr__(self) -> str:
        shown = redact_options(self.options)
        return f"Store({redact(self.url)!r}{', ' + repr(shown) if shown else ''})"


def open_store(url: str | None = None, /, **options: Any) -> Store:
    """Open the store at ``url`` (default: ``$WFE_STORE`` or ``./.wfe``).

    ``options`` (and ``?key=value`` pairs in the URL) go to the backend (``url`` is
    positional-only, so a backend may take an option named ``url``),
    except ``cache``/``cache_size``, which put a local blob cache in front
    (see :mod:`wfe.store._cache`; ``$WFE_CACHE`` does the same).
    """
    url = default_store_url() if url is None else url
    protocol, path, url_options = split_url(url)
    merged: dict[str, Any] = {**url_options, **options}
    cache, backend_options = cache_settings(merged)
    storage_cls = storage_class(protocol)
    fs_options = (
        storage_cls.filesystem_options(backend_options)
        if hasattr(storage_cls, "filesystem_options")
        else backend_options
    )
    if protocol == "file":
        if fs_options:
            raise StoreURLError(f"local stores take no options, got {sorted(fs_options)}")
        return Store(storage_cls(None, path), path, {})
    if protocol == "memory" and not path:
        raise StoreURLError("memory:// needs a name, e.g. memory://scratch")
    canonical = f"{protocol}://{path}"
    from_location = getattr(storage_cls, "from_location", None)
    if from_location is not None:  # a backend that reaches its server by the URL's host (wfe_sftp, wfe_webdav)
        storage = from_location(location(canonical), fs_options)
    else:
        fs = filesystem(protocol, with_url_host(protocol, canonical, fs_options))
        root = fs._strip_protocol(canonical) if path else ""
        storage = storage_cls(fs, str(root))
    store = Store(storage, canonical, merged)
    store.blobs = with_cache(store.blobs, storage, cache)  # the cache options stay in store.options for tasks
    return store
