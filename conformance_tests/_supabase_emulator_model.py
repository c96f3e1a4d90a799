"""What the Supabase Storage emulator stores, and the error bodies it answers with.

Part of the test emulator in :mod:`conformance_tests._supabase_emulator`;
not Supabase.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO, Any

from werkzeug.wrappers import Request, Response

VALID_KEY = re.compile(r"[A-Za-z0-9_/!.*'() &$=@;:+,?-]+")


class StorageError(Exception):
    """One storage-api error: rendered as HTTP 400 (or 500) with the real status in the body."""

    def __init__(self, status: int, code: str, message: str, error: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.error = status, code, message, error or code

    def response(self) -> Response:
        body = {"statusCode": str(self.status), "code": self.code, "error": self.error, "message": self.message}
        return Response(json.dumps(body), status=500 if self.status >= 500 else 400, mimetype="application/json")


def no_such_key() -> StorageError:
    return StorageError(404, "NoSuchKey", "Object not found", "not_found")


def no_such_bucket() -> StorageError:
    return StorageError(404, "NoSuchBucket", "Bucket not found", "Bucket not found")


def key_exists() -> StorageError:
    return StorageError(409, "KeyAlreadyExists", "The resource already exists", "Duplicate")


def too_large() -> StorageError:
    return StorageError(413, "EntityTooLarge", "The object exceeded the maximum allowed size", "Payload too large")


def invalid_key(key: str) -> StorageError:
    return StorageError(400, "InvalidKey", f"Invalid key: {key}")


def access_denied(message: str) -> StorageError:
    return StorageError(403, "AccessDenied", message, "Unauthorized")


def now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass
class StoredObject:
    path: str
    size: int
    etag: str
    mimetype: str
    cache_control: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    version: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: str = field(default_factory=now)
    updated_at: str = field(default_factory=now)

    def metadata(self) -> dict[str, Any]:
        return {
            "eTag": f'"{self.etag}"',
            "size": self.size,
            "mimetype": self.mimetype,
            "cacheControl": f"max-age={self.cache_control}",
            "lastModified": self.updated_at,
            "contentLength": self.size,
            "httpStatusCode": 200,
        }


@dataclass
class Bucket:
    id: str
    public: bool = False
    file_size_limit: int | None = None
    allowed_mime_types: list[str] | None = None
    created_at: str = field(default_factory=now)
    objects: dict[str, StoredObject] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.id,
            "owner": "",
            "public": self.public,
            "file_size_limit": self.file_size_limit,
            "allowed_mime_types": self.allowed_mime_types,
            "created_at": self.created_at,
            "updated_at": self.created_at,
        }


def size_limit(value: Any) -> int | None:
    """``file_size_limit`` as storage-api accepts it: a number of bytes or text like ``20MB``."""
    if value in (None, "", 0):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    match = re.fullmatch(r"\s*(\d+)\s*(B|KB|MB|GB)?\s*", str(value), re.IGNORECASE)
    if not match:
        raise StorageError(400, "InvalidRequest", "Invalid file size format, hint: use 20GB / 20MB / 30KB / 3B")
    scale = {"": 1, "B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3}[(match.group(2) or "").upper()]
    return int(match.group(1)) * scale


def like(pattern: str) -> re.Pattern[str]:
    """SQL ``ILIKE pattern || '%'``: ``%`` and ``_`` are wildcards, case is ignored."""
    parts = [".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern]
    return re.compile("".join(parts) + ".*", re.IGNORECASE | re.DOTALL)


def json_response(value: Any, status: int = 200) -> Response:
    return Response(json.dumps(value), status=status, mimetype="application/json")


def json_body(request: Request) -> dict[str, Any]:
    try:
        value = json.loads(request.get_data() or b"{}")
    except ValueError:
        raise StorageError(400, "InvalidRequest", "Body is not valid JSON", "Bad Request") from None
    if not isinstance(value, dict):
        raise StorageError(400, "InvalidRequest", "body must be object", "Bad Request")
    return value


def copy_hashing(source: IO[bytes], destination: str) -> tuple[int, str]:
    hasher = hashlib.md5()
    size = 0
    with open(destination, "wb") as target:
        while chunk := source.read(1024 * 1024):
            hasher.update(chunk)
            target.write(chunk)
            size += len(chunk)
    return size, hasher.hexdigest()


def read_file(handle: IO[bytes], start: int, length: int) -> Iterator[bytes]:
    """``length`` bytes from ``start`` of an object's file, opened while it was the object's current one."""
    handle.seek(start)

    def chunks() -> Iterator[bytes]:
        with handle:
            remaining = length
            while remaining > 0:
                chunk = handle.read(min(remaining, 1024 * 1024))
                if not chunk:
                    return
                remaining -= len(chunk)
                yield chunk

    return chunks()
