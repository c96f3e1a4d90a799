"""``s3://bucket/prefix`` stores, through s3fs.

Everything S3-specific is here, at the storage boundary:

- Options: ``endpoint_url``, ``region``, ``key``/``secret``/``token``,
  ``profile``, ``anon``, ``addressing_style``, ``requester_pays``, from the
  URL query or ``--store-option``; otherwise botocore's usual chain (AWS_*
  variables, the shared config and credentials files, instance roles).
- Opening a store checks the bucket once (one HEAD); a missing bucket, bad
  credentials or an unreachable endpoint is one :class:`wfe.StoreError` line.
- Publishing never shows partial bytes under a key: small objects are one
  PUT, large ones a multipart upload whose object appears only when it is
  completed (and which is aborted on any failure). Exclusive writes send
  ``If-None-Match: *``, so a publish never overwrites.
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
import os
import tempfile
import weakref
from collections.abc import Mapping
from typing import IO, Any, BinaryIO
from urllib.parse import urlsplit

from ._errors import StoreError, StoreURLError
from ._fsio import Staging, StorageIO, translate

MiB = 1024 * 1024
MIN_PART_SIZE = 5 * MiB  # S3's floor for every part but the last
MAX_PARTS = 10_000
READ_CHUNK = 4 * MiB
RETRY_ATTEMPTS = 5  # botocore "standard" mode: the first try and four retries
CONNECT_TIMEOUT = 5.0  # seconds
READ_TIMEOUT = 60.0  # seconds without a byte from the server

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
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
    "addressing_style", "anon", "client_kwargs", "config_kwargs", "endpoint_url", "key", "profile",
    "region", "requester_pays", "secret", "token",
)  # fmt: skip


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise StoreURLError(f"S3 option {name} must be true or false, got {value!r}")


class S3IO(StorageIO):
    """Objects under ``bucket/prefix`` on S3 or an S3-compatible service.

    ``part_size`` (bytes) is both the multipart threshold and the part size;
    at most ``max_concurrency`` parts are in memory and in flight at once, so a
    put holds about ``part_size * max_concurrency`` bytes whatever the blob size.
    """

    atomic_upload = True
    conditional_create = True
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
        # with jittered exponential backoff; s3fs retries dropped connections on top. A dead
        # endpoint thus fails within about RETRY_ATTEMPTS backoffs (seconds, not minutes).
        config_kwargs.setdefault("retries", {"max_attempts": RETRY_ATTEMPTS, "mode": "standard"})
        config_kwargs.setdefault("connect_timeout", CONNECT_TIMEOUT)
        config_kwargs.setdefault("read_timeout", READ_TIMEOUT)
        fs_options: dict[str, Any] = {
            "use_listings_cache": False,  # other writers change the bucket under us
            # Stores with the same options share one filesystem (fsspec's instance cache, reset
            # after fork): a new S3 client costs about 0.3 s, and with the listings cache off a
            # shared instance holds nothing that could go stale.
            "skip_instance_cache": False,
        }
        if "endpoint_url" in given:
            client_kwargs["endpoint_url"] = str(given.pop("endpoint_url"))
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
        return fs_options

    def __init__(self, fs: Any, root: str) -> None:
        super().__init__(fs, root)
        self.bucket, _, self.prefix = self.root.partition("/")
        if not self.bucket:
            raise StoreURLError("an S3 store URL needs a bucket: s3://BUCKET/PREFIX")
        self._check_bucket()

    def _endpoint(self) -> str:
        """The endpoint for messages, without any user:password@ part."""
        kwargs = getattr(self.fs, "client_kwargs", None) or {}
        endpoint = str(kwargs.get("endpoint_url") or "AWS S3")
        parts = urlsplit(endpoint)
        return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl() if parts.netloc else endpoint

    def _check_bucket(self) -> None:
        """One HEAD on the bucket, so a bad bucket or key fails here in one clear line.

        Done once per filesystem and bucket in a process; a bucket removed later
        shows up as a StoreError on the next request instead.
        """
        checked = _CHECKED_BUCKETS.setdefault(self.fs, set())
        if self.bucket in checked:
            return
        where = f"S3 bucket {self.bucket!r} at {self._endpoint()}"
        try:
            self.fs.call_s3("head_bucket", Bucket=self.bucket)
        except FileNotFoundError:
            raise StoreError(f"{where} does not exist") from None
        except PermissionError:
            if getattr(self.fs, "anon", False):
                return  # public buckets often refuse HeadBucket yet serve their objects
            raise StoreError(
                f"{where}: access denied; check the credentials (key/secret options, "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the AWS profile)"
            ) from None
        except Exception as exc:  # botocore: no credentials, endpoint unreachable, bad region
            name = type(exc).__name__
            if name == "NoCredentialsError":
                raise StoreError(
                    f"{where}: no AWS credentials found; set key/secret options, "
                    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, or anon=true"
                ) from None
            raise StoreError(f"cannot reach {where}: {name}: {_first_line(exc)}") from None
        checked.add(self.bucket)

    def _split(self, rel: str) -> tuple[str, str]:
        return self.bucket, self.path(rel)[len(self.bucket) + 1 :]

    # reads: one HEAD where fsspec would add a listing on a miss
    def _head(self, rel: str) -> dict[str, Any]:
        bucket, key = self._split(rel)
        with translate("stat", self.path(rel)):
            response: dict[str, Any] = self.fs.call_s3("head_object", Bucket=bucket, Key=key)
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

    def read_bytes(self, rel: str) -> bytes:
        with self.open_read(rel) as handle:
            return handle.read()  # BufferedReader hands a whole read to _ObjectReader.readall

    def open_read(self, rel: str) -> BinaryIO:
        """One streaming GET; the body is read in chunks as the caller reads."""
        bucket, key = self._split(rel)
        with translate("open", self.path(rel)):
            try:
                response = self.fs.call_s3("get_object", Bucket=bucket, Key=key)
            except OSError as exc:
                if exc.errno == errno.EINVAL and self.size(rel) == 0:  # HTTP 416 on an empty object
                    return io.BytesIO(b"")
                raise
        return io.BufferedReader(_ObjectReader(self, response["Body"], self.path(rel)), 4 * MiB)

    def delete(self, rel: str) -> bool:
        # S3 deletes a missing key without complaint; the stores want to know.
        if not self.exists(rel):
            return False
        path = self.path(rel)
        with translate("delete", path):
            self.fs.rm_file(path)
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
        bucket, key = self._split(rel)
        condition = {"IfNoneMatch": "*"} if exclusive else {}
        with translate("write", self.path(rel)):
            try:
                self.fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, **condition)
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
            upload_id = self.fs.call_s3("create_multipart_upload", Bucket=bucket, Key=key)["UploadId"]
            try:
                from fsspec.asyn import sync

                parts = sync(self.fs.loop, self._upload_parts, bucket, key, upload_id, source, part_size)
                condition = {"IfNoneMatch": "*"} if exclusive else {}
                try:
                    self.fs.call_s3(
                        "complete_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id,
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
                response = await self.fs._call_s3(
                    "upload_part", Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
                )
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
            self.fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id)

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
                page = self.fs.call_s3("list_multipart_uploads", **request)
                for upload in page.get("Uploads", []):
                    if upload["Initiated"] <= cutoff:
                        self._abort(self.bucket, upload["Key"], upload["UploadId"])
                        aborted += 1
                if not page.get("IsTruncated"):
                    return aborted
                request["KeyMarker"] = page.get("NextKeyMarker", "")
                request["UploadIdMarker"] = page.get("NextUploadIdMarker", "")


_CHECKED_BUCKETS: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


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
        from fsspec.asyn import sync

        view = memoryview(buffer).cast("B")
        with translate("read", self._path):
            data: bytes = sync(self._storage.fs.loop, self._body.read, len(view))
        view[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        # io's default reads 8 KiB at a time, one event-loop round trip each
        from fsspec.asyn import sync

        chunks = []
        with translate("read", self._path):
            while chunk := sync(self._storage.fs.loop, self._body.read, READ_CHUNK):
                chunks.append(chunk)
        return b"".join(chunks)

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
