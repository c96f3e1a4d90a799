"""``s3://bucket/prefix`` stores, through s3fs.

Everything S3-specific is here, at the storage boundary:

- Options: ``endpoint_url``, ``region``, ``key``/``secret``/``token``,
  ``profile``, ``anon``, ``addressing_style``, ``requester_pays``, from the
  URL query or ``--store-option``; otherwise botocore's usual chain (AWS_*
  variables, the shared config and credentials files, instance roles).
- Every request is bounded three ways: ``connect_timeout`` to connect,
  ``read_timeout`` without a byte from the server, and ``timeout`` for the
  whole operation across botocore's retries (``max_attempts``). An upload
  gets ``timeout`` plus a second per ``MIN_UPLOAD_RATE`` bytes of its body;
  a streamed read has no total bound, only ``read_timeout`` between bytes.
  A bound that runs out is one :class:`wfe.StoreError` line that names it.
- Opening a store checks the bucket once (one HEAD, within ``OPEN_TIMEOUT``);
  a missing bucket, bad credentials, an unreachable endpoint or one that is
  not S3 is one :class:`wfe.StoreError` line.
- Publishing never shows partial bytes under a key: small objects are one
  PUT, large ones a multipart upload whose object appears only when it is
  completed (and which is aborted on any failure). Exclusive writes send
  ``If-None-Match: *``, so a publish never overwrites, where the server
  honours it: opening a store finds out whether it does (:mod:`._probe`,
  once per process and endpoint, remembered in the store) and claims
  ``conditional_create`` only if so.
- Reads are one streaming GET; an empty object reads as ``b""`` (S3 answers a
  ranged read of it with HTTP 416).

A writer killed mid-upload leaves an incomplete multipart upload, invisible
to readers but billed: :meth:`S3IO.abort_stale_uploads` removes those, as
does a bucket lifecycle rule ``AbortIncompleteMultipartUpload``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import errno
import io
import logging
import os
import tempfile
import time
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any, BinaryIO
from urllib.parse import urlsplit

from wfe import StoreError, StoreURLError
from wfe.storage import CONCURRENCY, Listed, Page, Staging, StorageIO, option_flag, too_large, translate

from ._probe import refuses_second_create

log = logging.getLogger(__name__)

MiB = 1024 * 1024
MIN_PART_SIZE = 5 * MiB  # S3's floor for every part but the last
MAX_PARTS = 10_000
READ_CHUNK = 4 * MiB
RETRY_ATTEMPTS = 5  # botocore "standard" mode: the first try and four retries
CONNECT_TIMEOUT = 5.0  # seconds to open a connection
READ_TIMEOUT = 30.0  # seconds without a byte from the server
OPERATION_TIMEOUT = 60.0  # seconds for one operation, every attempt and backoff included
OPEN_TIMEOUT = 20.0  # seconds for the bucket check when a store is opened (at most OPERATION_TIMEOUT)
MIN_UPLOAD_RATE = 64 * 1024  # bytes/s: an upload may take a second longer per this many bytes
# s3fs keeps s3_additional_kwargs on the filesystem (and in its instance-cache token) and drops every
# key that is not a parameter of the S3 operation called, so the operation timeout rides there.
_TIMEOUT_KEY = "WfeOperationTimeout"

_RENAMED = {
    "endpoint": "endpoint_url",
    "aws_access_key_id": "key",
    "access_key": "key",
    "aws_secret_access_key": "secret",
    "secret_key": "secret",
    "aws_session_token": "token",
    "session_token": "token",
    "region_name": "region",
}
_KNOWN = (
    "addressing_style", "anon", "client_kwargs", "config_kwargs", "connect_timeout", "endpoint_url", "key",
    "max_attempts", "profile", "read_timeout", "region", "requester_pays", "secret", "timeout", "token",
)  # fmt: skip


def _flag(name: str, value: Any) -> bool:
    return option_flag("S3", name, value)


def _seconds(name: str, value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise StoreURLError(f"S3 option {name} must be a positive number of seconds, got {value!r}")
    return seconds


def _attempts(value: Any) -> int:
    try:
        attempts = int(str(value))
    except ValueError:
        attempts = 0
    if attempts < 1:
        raise StoreURLError(f"S3 option max_attempts must be a whole number from 1 up, got {value!r}")
    return attempts


def _endpoint_url(value: Any) -> str:
    """``endpoint_url`` checked before any request: http(s), and no credentials in it."""
    endpoint = str(value)
    try:
        parts = urlsplit(endpoint)
        parts.port  # noqa: B018  # raises ValueError for a port that is not a number
    except ValueError:
        raise StoreURLError("S3 option endpoint_url is not a valid URL") from None
    if "@" in parts.netloc:
        # The part before "@" is never shown: it may be a password.
        shown = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
        raise StoreURLError(
            f"S3 option endpoint_url must not carry credentials ({shown} with a user:password@ part); "
            "give them as the key and secret options (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StoreURLError(f"S3 option endpoint_url must be an http:// or https:// URL, got {endpoint!r}")
    return endpoint


@dataclass(frozen=True)
class Bounds:
    """How long a request may take: per connection, per read, per operation, and how often it is tried."""

    connect: float = CONNECT_TIMEOUT
    read: float = READ_TIMEOUT
    operation: float = OPERATION_TIMEOUT
    attempts: int = RETRY_ATTEMPTS

    @classmethod
    def of(cls, fs: Any) -> Bounds:
        config = getattr(fs, "config_kwargs", None) or {}
        retries = config.get("retries") or {}
        extra = getattr(fs, "s3_additional_kwargs", None) or {}
        attempts = retries.get("total_max_attempts") or (retries.get("max_attempts", RETRY_ATTEMPTS - 1) + 1)
        return cls(
            connect=float(config.get("connect_timeout", CONNECT_TIMEOUT)),
            read=float(config.get("read_timeout", READ_TIMEOUT)),
            operation=float(extra.get(_TIMEOUT_KEY, OPERATION_TIMEOUT)),
            attempts=int(attempts),
        )

    def __str__(self) -> str:
        return (
            f"connect_timeout {_shown(self.connect)} s, read_timeout {_shown(self.read)} s, "
            f"up to {self.attempts} attempt{'s' if self.attempts != 1 else ''}, timeout {_shown(self.operation)} s"
        )


def _shown(seconds: float) -> str:
    return f"{seconds:.0f}" if seconds >= 10 else f"{round(seconds, 1):g}"


_HINT = "raise the timeout options for a slow service, or check endpoint_url"


def _log_background_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """A connection's background task that failed after its request was answered or abandoned (a reset,
    a server gone): the request that mattered has raised already, so it is logged, not printed."""
    log.debug("S3 client: %s: %r", context.get("message"), context.get("exception"))


def _quiet_background_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Keep asyncio's "Task exception was never retrieved" tracebacks off stderr: wfe's errors are one line."""
    if loop.get_exception_handler() is not _log_background_error:
        loop.call_soon_threadsafe(loop.set_exception_handler, _log_background_error)


class S3IO(StorageIO):
    """Objects under ``bucket/prefix`` on S3 or an S3-compatible service.

    ``part_size`` (bytes) is both the multipart threshold and the part size;
    at most ``max_concurrency`` parts are in memory and in flight at once, so a
    put holds about ``part_size * max_concurrency`` bytes whatever the blob size.

    ``conditional_create`` is True for the class (S3 refuses a create-only PUT
    to an existing key) and set False on an instance whose endpoint was found
    not to (or could not be probed); ``capability_notes`` then says why, by flag.
    """

    atomic_upload = True
    conditional_create = True
    paged_listing = True  # ListObjectsV2: 1,000 keys in name order per request
    # How the flags the probe at opening confirms were found, for check-store's table (wfe.storage._probe).
    probed_flags = {"conditional_create": "a second create-only PUT (If-None-Match) was refused (capabilities/s3.json)"}
    part_size = 8 * MiB
    max_concurrency = 4

    @classmethod
    def filesystem_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """Map store options to ``S3FileSystem`` arguments; an unknown option is a StoreURLError."""
        given: dict[str, Any] = {}
        for name, value in options.items():
            canonical = _RENAMED.get(name, name)
            if canonical not in _KNOWN:
                known = ", ".join(sorted({*_KNOWN, *_RENAMED} - {"client_kwargs", "config_kwargs"}))
                raise StoreURLError(f"unknown S3 store option {name!r}; known: {known}")
            given[canonical] = value
        client_kwargs = dict(given.pop("client_kwargs", None) or {})
        config_kwargs = dict(given.pop("config_kwargs", None) or {})
        # wfe verifies sha256 itself; botocore's newer default checksums cost time and
        # are refused by several S3-compatible services.
        config_kwargs.setdefault("request_checksum_calculation", "when_required")
        config_kwargs.setdefault("response_checksum_validation", "when_required")
        # Transient faults (HTTP 500/503, throttling, resets, timeouts) are retried by botocore
        # with jittered exponential backoff, max_attempts times in all (S3IO turns s3fs's own
        # retries off, which would multiply them); S3IO bounds each operation by `timeout`.
        if "max_attempts" in given:
            config_kwargs["retries"] = {"total_max_attempts": _attempts(given.pop("max_attempts")), "mode": "standard"}
        config_kwargs.setdefault("retries", {"total_max_attempts": RETRY_ATTEMPTS, "mode": "standard"})
        # Enough connections for the requests a run sends together (StorageIO.gather), and a multipart put's parts.
        config_kwargs.setdefault("max_pool_connections", 2 * CONCURRENCY)
        for name, default in (("connect_timeout", CONNECT_TIMEOUT), ("read_timeout", READ_TIMEOUT)):
            if name in given:
                config_kwargs[name] = _seconds(name, given.pop(name))
            config_kwargs.setdefault(name, default)
        operation = _seconds("timeout", given.pop("timeout")) if "timeout" in given else OPERATION_TIMEOUT
        fs_options: dict[str, Any] = {
            "use_listings_cache": False,  # other writers change the bucket under us
            # Stores with the same options share one filesystem (fsspec's instance cache, reset
            # after fork): a new S3 client costs about 0.3 s, and with the listings cache off a
            # shared instance holds nothing that could go stale.
            "skip_instance_cache": False,
        }
        if "endpoint_url" in given:
            client_kwargs["endpoint_url"] = _endpoint_url(given.pop("endpoint_url"))
        if "region" in given:
            client_kwargs["region_name"] = str(given.pop("region"))
        if "addressing_style" in given:
            style = str(given.pop("addressing_style"))
            if style not in ("auto", "path", "virtual"):
                raise StoreURLError(f"S3 option addressing_style must be auto, path or virtual, got {style!r}")
            config_kwargs["s3"] = {**config_kwargs.get("s3", {}), "addressing_style": style}
        if "anon" in given:
            fs_options["anon"] = _flag("anon", given.pop("anon"))
        if "requester_pays" in given:
            fs_options["requester_pays"] = _flag("requester_pays", given.pop("requester_pays"))
        for name in ("key", "secret", "token", "profile"):
            if name in given:
                fs_options[name] = str(given.pop(name))
        fs_options["client_kwargs"] = client_kwargs
        fs_options["config_kwargs"] = config_kwargs
        fs_options["s3_additional_kwargs"] = {_TIMEOUT_KEY: operation}
        return fs_options

    def __init__(self, fs: Any, root: str) -> None:
        super().__init__(fs, root)
        self.bucket, _, self.prefix = self.root.partition("/")
        if not self.bucket:
            raise StoreURLError("an S3 store URL needs a bucket: s3://BUCKET/PREFIX")
        self.bounds = Bounds.of(fs)
        # botocore retries (max_attempts in all); s3fs would repeat each of those series up to
        # five times more, so neither the attempt count nor the time taken would be what is set.
        fs.retries = 1
        _quiet_background_errors(fs.loop)
        self._check_bucket()
        self.capability_notes: dict[str, str] = {}
        refused, why = refuses_second_create(self)
        if not refused:
            self.conditional_create = False  # the generic path then: an existence check, then the write
            self.capability_notes["conditional_create"] = why

    def _endpoint(self) -> str:
        """The endpoint for messages, without any user:password@ part."""
        kwargs = getattr(self.fs, "client_kwargs", None) or {}
        endpoint = str(kwargs.get("endpoint_url") or "AWS S3")
        parts = urlsplit(endpoint)
        return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl() if parts.netloc else endpoint

    # every request goes through here: bounded, and a timeout becomes one line naming the bounds
    def _call(self, method: str, what: str, *, deadline: float | None = None, body: int = 0, **kwargs: Any) -> Any:
        """``fs._call_s3(method, **kwargs)`` within the operation timeout (or until ``deadline``)."""
        from fsspec.asyn import sync

        limit = self._limit(body) if deadline is None else deadline - time.monotonic()
        return sync(self.fs.loop, self._bounded, what, limit, method, kwargs)

    def _limit(self, body: int = 0) -> float:
        """The operation timeout, plus a second per MIN_UPLOAD_RATE bytes sent."""
        return self.bounds.operation + body / MIN_UPLOAD_RATE

    async def _bounded(self, what: str, limit: float, method: str, kwargs: dict[str, Any]) -> Any:
        """Await the call for at most ``limit`` seconds; cancel it and raise StoreError past that."""
        started = time.monotonic()
        task = asyncio.ensure_future(self.fs._call_s3(method, **kwargs))
        try:
            done, _ = await asyncio.wait({task}, timeout=max(limit, 0.0))
        except BaseException:
            task.cancel()
            raise
        if not done:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise StoreError(
                f"{what} at {self._endpoint()} did not answer within {_shown(limit)} s ({self.bounds}); {_HINT}"
            )
        try:
            return task.result()
        except Exception as exc:
            if _is_timeout(exc):  # every attempt timed out before the operation's time was up
                raise StoreError(
                    f"{what} at {self._endpoint()} did not answer in {self.bounds.attempts} attempts over "
                    f"{_shown(time.monotonic() - started)} s ({type(exc).__name__}; {self.bounds}); {_HINT}"
                ) from None
            raise

    def _check_bucket(self) -> None:
        """One HEAD on the bucket, so a bad bucket, key or endpoint fails here in one clear line.

        A HEAD answer has no body, so a refused HEAD is asked again as a GET,
        whose body tells S3's "no such bucket" from a server that is not S3.
        Both share one budget, OPEN_TIMEOUT (at most the operation timeout).
        Done once per filesystem and bucket in a process; a bucket removed later
        shows up as a StoreError on the next request instead.
        """
        checked = _CHECKED_BUCKETS.setdefault(self.fs, set())
        if self.bucket in checked:
            return
        where = f"S3 bucket {self.bucket!r} at {self._endpoint()}"
        deadline = time.monotonic() + min(OPEN_TIMEOUT, self.bounds.operation)
        what = f"S3 bucket {self.bucket!r}"
        try:
            self._call("head_bucket", what, deadline=deadline, Bucket=self.bucket)
        except StoreError:
            raise
        except Exception as exc:
            failure: Exception | None = exc
            if _response(exc) is not None:
                try:
                    self._call("list_objects_v2", what, deadline=deadline, Bucket=self.bucket, MaxKeys=1)
                    failure = None
                except StoreError:
                    raise
                except Exception as probe:
                    failure = probe
            if failure is not None:
                error = self._bucket_error(where, failure)
                if error is None:
                    return
                raise error from None
        checked.add(self.bucket)

    def _bucket_error(self, where: str, exc: Exception) -> StoreError | None:
        """The one line for a failed bucket check; None where the store may work anyway."""
        name = type(exc).__name__
        if name == "NoCredentialsError":
            return StoreError(
                f"{where}: no AWS credentials found; set key/secret options, "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, or anon=true"
            )
        not_s3 = f"the endpoint {self._endpoint()} does not answer like S3"
        hint = "check endpoint_url: it must be an S3 API endpoint"
        if name == "ResponseParserError":
            return StoreError(f"{not_s3} (its answer for bucket {self.bucket!r} is not S3 XML); {hint}")
        response = _response(exc)
        if response is not None:
            code = str(response.get("Error", {}).get("Code", ""))
            if code.isdigit():  # botocore found no S3 error document in the body
                meta = response.get("ResponseMetadata", {})
                headers = meta.get("HTTPHeaders", {}) or {}
                status = meta.get("HTTPStatusCode", code)
                reason = str(response.get("Error", {}).get("Message", "")).strip()
                came_back = " ".join(part for part in (f"HTTP {status}", reason) if part)
                kind = headers.get("content-type")
                server = headers.get("server")
                details = ", ".join(
                    part for part in (came_back, kind and f"Content-Type {kind}", server and f"Server {server}") if part
                )
                return StoreError(f"{not_s3} ({details} for bucket {self.bucket!r}); {hint}")
        if isinstance(exc, FileNotFoundError):
            return StoreError(f"{where} does not exist")
        if isinstance(exc, PermissionError):
            if getattr(self.fs, "anon", False):
                return None  # public buckets often refuse HeadBucket yet serve their objects
            return StoreError(
                f"{where}: access denied; check the credentials (key/secret options, "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the AWS profile)"
            )
        return StoreError(f"cannot reach {where}: {name}: {_first_line(exc)}")

    def _split(self, rel: str) -> tuple[str, str]:
        return self.bucket, self.path(rel)[len(self.bucket) + 1 :]

    # reads: one HEAD where fsspec would add a listing on a miss
    def _head(self, rel: str) -> dict[str, Any]:
        bucket, key = self._split(rel)
        with translate("stat", self.path(rel)):
            response: dict[str, Any] = self._call("head_object", f"stat {self.path(rel)!r}: S3", Bucket=bucket, Key=key)
            return response

    def exists(self, rel: str) -> bool:
        try:
            self._head(rel)
        except FileNotFoundError:
            return False
        return True

    def size(self, rel: str) -> int:
        return int(self._head(rel)["ContentLength"])

    def modified(self, rel: str) -> float | None:
        return float(self._head(rel)["LastModified"].timestamp())

    def read_bytes(self, rel: str, limit: int | None = None) -> bytes:
        if limit is None:
            with self.open_read(rel) as handle:
                return handle.read()  # BufferedReader hands a whole read to _ObjectReader.readall
        # A record: the same single GET, for one byte more than it may hold, tells a huge one without reading it.
        bucket, key = self._split(rel)
        path = self.path(rel)
        with translate("read", path):
            try:
                response = self._call("get_object", f"read {path!r}", Bucket=bucket, Key=key, Range=f"bytes=0-{limit}")
            except OSError as exc:
                if exc.errno == errno.EINVAL and self.size(rel) == 0:  # HTTP 416 on an empty object
                    return b""
                raise
        with io.BufferedReader(_ObjectReader(self, response["Body"], path), 4 * MiB) as handle:
            data = handle.read()
        if len(data) > limit:
            raise too_large(path, limit)
        return data

    def open_read(self, rel: str) -> BinaryIO:
        """One streaming GET; the body is read in chunks as the caller reads."""
        bucket, key = self._split(rel)
        with translate("open", self.path(rel)):
            try:
                # bounded until the body starts; the body then by read_timeout between bytes
                response = self._call("get_object", f"open {self.path(rel)!r}: S3", Bucket=bucket, Key=key)
            except OSError as exc:
                if exc.errno == errno.EINVAL and self.size(rel) == 0:  # HTTP 416 on an empty object
                    return io.BytesIO(b"")
                raise
        return io.BufferedReader(_ObjectReader(self, response["Body"], self.path(rel)), 4 * MiB)

    def refresh(self, rel: str) -> bool:
        """Renew the object's modification time: S3 has no touch, so the object is copied onto itself."""
        bucket, key = self._split(rel)
        path = self.path(rel)
        try:
            with translate("refresh", path):
                self._call("copy_object", f"refresh {path!r}: S3", Bucket=bucket, Key=key,
                           CopySource={"Bucket": bucket, "Key": key}, MetadataDirective="REPLACE")
        except StoreError as exc:  # e.g. over 5 GB, which one copy cannot take: its age stays as it was
            log.warning("could not renew the age of %s: %s", path, exc)
            return False
        return True

    def list_page(self, prefix: str, start_after: str = "", limit: int = 1000) -> Page:
        """One ListObjectsV2 request: up to ``limit`` (at most 1,000) keys after ``start_after``, with ETags."""
        return self._list_once(prefix.rstrip("/") + "/", start_after, limit)

    def list_prefix(self, prefix: str, start_after: str = "") -> Iterator[Page]:
        """ListObjectsV2 with ``Prefix`` as given (not only a folder), 1,000 keys a request, with ETags."""
        while True:
            page = self._list_once(prefix, start_after, 1000)
            yield page
            if not page.more or not page.objects:
                return
            start_after = page.objects[-1].rel

    def _list_once(self, prefix: str, start_after: str, limit: int) -> Page:
        """One ListObjectsV2 request for the keys starting with ``prefix`` (a path under the root)."""
        bucket, key_prefix = self._split(prefix)
        path = self.path(prefix)
        params: dict[str, Any] = {"Bucket": bucket, "Prefix": key_prefix, "MaxKeys": min(limit, 1000)}
        if start_after:
            params["StartAfter"] = self._split(start_after)[1]
        with translate("list", path):
            response = self._call("list_objects_v2", f"list {path!r}: S3", **params)
        base = len(self.prefix) + 1 if self.prefix else 0
        objects = [
            Listed(item["Key"][base:], int(item.get("Size", 0)), str(item.get("ETag", "")).strip('"') or None)
            for item in response.get("Contents", [])
        ]
        return Page(objects, bool(response.get("IsTruncated")))

    def remove(self, rel: str) -> None:
        """One DELETE, whether or not ``rel`` exists (S3 does not say)."""
        path = self.path(rel)
        bucket, key = self._split(rel)
        with translate("delete", path):
            self._call("delete_object", f"delete {path!r}: S3", Bucket=bucket, Key=key)

    def delete(self, rel: str) -> bool:
        # S3 deletes a missing key without complaint; the stores want to know.
        if not self.exists(rel):
            return False
        path = self.path(rel)
        bucket, key = self._split(rel)
        with translate("delete", path):
            self._call("delete_object", f"delete {path!r}: S3", Bucket=bucket, Key=key)
        return True

    # writes
    def write_bytes(self, rel: str, data: bytes, *, exclusive: bool = False) -> bool:
        if len(data) <= self.part_size:
            return self._put_object(rel, data, exclusive=exclusive)
        return self._multipart(rel, io.BytesIO(data), len(data), exclusive=exclusive)

    def stage(self) -> Staging:
        return _S3Staging(self)

    def upload(self, local: IO[bytes], rel: str, size: int) -> None:
        local.seek(0)
        if size <= self.part_size:
            self._put_object(rel, local.read(), exclusive=False)
        else:
            self._multipart(rel, local, size, exclusive=False)

    def _put_object(self, rel: str, data: bytes, *, exclusive: bool) -> bool:
        if exclusive and not self.conditional_create and self.exists(rel):
            return False  # the server would not refuse it (see _probe): ask first, as the generic path does
        bucket, key = self._split(rel)
        condition: dict[str, Any] = {"IfNoneMatch": "*"} if exclusive else {}
        with translate("write", self.path(rel)):
            try:
                self._call(
                    "put_object", f"write {self.path(rel)!r}: S3", body=len(data), Bucket=bucket, Key=key, Body=data,
                    **condition,
                )  # fmt: skip
            except FileExistsError:
                return False
        return True

    def _multipart(self, rel: str, source: IO[bytes], size: int, *, exclusive: bool) -> bool:
        """Upload ``size`` bytes from ``source`` in parts; the object appears only on completion."""
        if exclusive and self.exists(rel):
            return False  # cheaper than uploading a large blob only to be refused
        bucket, key = self._split(rel)
        part_size = max(self.part_size, MIN_PART_SIZE, -(-size // MAX_PARTS))
        path = self.path(rel)
        with translate("write", path):
            what = f"write {path!r}: S3"
            upload_id = self._call("create_multipart_upload", what, Bucket=bucket, Key=key)["UploadId"]
            try:
                from fsspec.asyn import sync

                parts = sync(self.fs.loop, self._upload_parts, bucket, key, upload_id, source, part_size)
                condition: dict[str, Any] = {"IfNoneMatch": "*"} if exclusive else {}
                try:
                    self._call(
                        "complete_multipart_upload", what, Bucket=bucket, Key=key, UploadId=upload_id,
                        MultipartUpload={"Parts": parts}, **condition,
                    )  # fmt: skip
                except FileExistsError:
                    self._abort(bucket, key, upload_id)
                    return False
            except BaseException:
                self._abort(bucket, key, upload_id)
                raise
        return True

    async def _upload_parts(
        self, bucket: str, key: str, upload_id: str, source: IO[bytes], part_size: int
    ) -> list[dict[str, Any]]:
        slots = asyncio.Semaphore(self.max_concurrency)
        pending: list[asyncio.Task[dict[str, Any]]] = []

        async def send(number: int, body: bytes) -> dict[str, Any]:
            try:
                response = await self._bounded(
                    f"write {f'{bucket}/{key}'!r} (part {number}): S3", self._limit(len(body)), "upload_part",
                    {"Bucket": bucket, "Key": key, "UploadId": upload_id, "PartNumber": number, "Body": body},
                )  # fmt: skip
                return {"PartNumber": number, "ETag": response["ETag"]}
            finally:
                slots.release()

        try:
            number = 0
            while True:
                await slots.acquire()  # bounds the parts held in memory
                body = source.read(part_size)
                if not body and number:
                    slots.release()
                    break
                number += 1
                pending.append(asyncio.ensure_future(send(number, body)))
                if len(body) < part_size:
                    break
            return list(await asyncio.gather(*pending))
        except BaseException:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            raise

    def _abort(self, bucket: str, key: str, upload_id: str) -> None:
        with contextlib.suppress(Exception):
            self._call("abort_multipart_upload", f"abort {key!r}: S3", Bucket=bucket, Key=key, UploadId=upload_id)

    def abort_stale_uploads(self, older_than: float = 24 * 3600.0) -> int:
        """Abort incomplete multipart uploads under this store begun more than ``older_than`` seconds ago.

        Returns how many were aborted. Safe to repeat. An upload still in
        progress elsewhere and older than the limit is aborted too, and its
        writer then fails: keep ``older_than`` well above the longest put.
        """
        cutoff = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=older_than)
        prefix = f"{self.prefix}/" if self.prefix else ""
        aborted = 0
        with translate("list uploads in", self.root):
            request: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
            while True:
                page = self._call("list_multipart_uploads", f"list uploads in {self.root!r}: S3", **request)
                for upload in page.get("Uploads", []):
                    if upload["Initiated"] <= cutoff:
                        self._abort(self.bucket, upload["Key"], upload["UploadId"])
                        aborted += 1
                if not page.get("IsTruncated"):
                    return aborted
                request["KeyMarker"] = page.get("NextKeyMarker", "")
                request["UploadIdMarker"] = page.get("NextUploadIdMarker", "")


_CHECKED_BUCKETS: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


def _response(exc: BaseException) -> dict[str, Any] | None:
    """The parsed HTTP answer behind a botocore ClientError (s3fs keeps it as the cause)."""
    for candidate in (exc, exc.__cause__):
        response = getattr(candidate, "response", None)
        if isinstance(response, dict):
            return response
    return None


def _is_timeout(exc: BaseException) -> bool:
    """A connect or read timeout (botocore's, aiohttp's or asyncio's), after any retries."""
    from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

    error: BaseException | None = exc
    while error is not None:  # fsspec's sync() re-raises a timeout as FSTimeoutError from the original
        if isinstance(error, (TimeoutError, asyncio.TimeoutError, ConnectTimeoutError, ReadTimeoutError)):
            return True
        error = error.__cause__
    return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else ""


class _ObjectReader(io.RawIOBase):
    """A GET response body, read chunk by chunk on s3fs's event loop."""

    def __init__(self, storage: S3IO, body: Any, path: str) -> None:
        super().__init__()
        self._storage = storage
        self._body = body
        self._path = path

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        with translate("read", self._path):
            data = self._chunk(len(view))
        view[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        # io's default reads 8 KiB at a time, one event-loop round trip each
        chunks = []
        with translate("read", self._path):
            while chunk := self._chunk(READ_CHUNK):
                chunks.append(chunk)
        return b"".join(chunks)

    def _chunk(self, size: int) -> bytes:
        """Up to ``size`` bytes of the body; a server silent for read_timeout is a StoreError.

        No total bound here: a large body may take as long as it takes while bytes keep coming.
        """
        from fsspec.asyn import sync

        try:
            data: bytes = sync(self._storage.fs.loop, self._body.read, size)
        except Exception as exc:
            if _is_timeout(exc):
                storage = self._storage
                raise StoreError(
                    f"read {self._path!r}: S3 at {storage._endpoint()} sent nothing for "
                    f"{_shown(storage.bounds.read)} s (read_timeout; {storage.bounds}); {_HINT}"
                ) from None
            raise
        return data

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(Exception):
                self._body.close()
        super().close()


class _S3Staging(Staging):
    """Bytes in memory up to one part, then in a local temporary file; published by :class:`S3IO`.

    The digest, and so the key, is known only once every byte has been
    written, which is why the bytes wait locally instead of going straight
    into a multipart upload.
    """

    def __init__(self, storage: S3IO) -> None:
        self._storage = storage
        self._buffer: IO[bytes] = io.BytesIO()
        self._size = 0
        self._spilled: str | None = None

    def write(self, data: bytes | memoryview) -> None:
        if self._spilled is None and self._size + len(data) > self._storage.part_size:
            spill = tempfile.NamedTemporaryFile(prefix="wfe-s3-", delete=False)  # noqa: SIM115
            self._spilled = spill.name
            assert isinstance(self._buffer, io.BytesIO)
            spill.write(self._buffer.getbuffer())
            self._buffer = spill
        self._buffer.write(data)
        self._size += len(data)

    def publish(self, rel: str, *, exclusive: bool) -> bool:
        self._buffer.flush()
        self._buffer.seek(0)
        if self._size <= self._storage.part_size:
            return self._storage._put_object(rel, self._buffer.read(), exclusive=exclusive)
        return self._storage._multipart(rel, self._buffer, self._size, exclusive=exclusive)

    def discard(self) -> None:
        self._buffer.close()
        if self._spilled is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._spilled)
            self._spilled = None
