"""Supabase Storage errors, translated into the builtin and fsspec ones at one place.

Supabase Storage answers every user error with HTTP 400 and puts the real
status in the JSON body (``{"statusCode": "404", "code": "NoSuchKey",
"error": "not_found", "message": "Object not found"}``); ``storage3`` raises
``StorageApiError(message, error, statusCode)`` and keeps the response on
``__cause__``. :func:`translate` turns that into:

::

    FileNotFoundError              no such object (NoSuchKey, not_found)
    FileExistsError                duplicate upload without upsert (KeyAlreadyExists, Duplicate)
    PermissionError                invalid key or JWT, RLS refusal (AccessDenied, 401, 403)
    SupabaseStorageError (OSError) anything else, with status, code and the server's message; an
                                   answer that is not Storage's JSON says the server is not Supabase
                                   Storage; a timeout names the bound (:func:`timed_out`)
    ├── BucketNotFoundError        the bucket does not exist (NoSuchBucket)
    ├── ObjectTooLargeError        over the bucket's or the project's size limit (EntityTooLarge)
    └── InvalidKeyError            (ValueError) a key outside Storage's alphabet (InvalidKey)

The server's message is kept in every case; the key is never part of one.
"""

from __future__ import annotations

import errno
import re
from typing import Any

# Supabase Storage's own key check (storage-api ``isValidKey``): \w, / and these punctuation marks.
VALID_KEY = re.compile(r"[A-Za-z0-9_/!.*'() &$=@;:+,?-]+")
KEY_ALPHABET = "A-Z a-z 0-9 _ / ! - . * ' ( ) space & $ @ = ; : + , ?"


class SupabaseStorageError(OSError):
    """Supabase Storage refused a request; ``status`` and ``code`` are the server's."""

    def __init__(self, message: str, *, status: str = "", code: str = "", error_number: int | None = None) -> None:
        if error_number is None:
            super().__init__(message)
        else:
            super().__init__(error_number, message)
        self.status = status
        self.code = code

    def __str__(self) -> str:
        return str(self.strerror if self.strerror is not None else self.args[0] if self.args else "")


class BucketNotFoundError(SupabaseStorageError):
    """The bucket named in the path does not exist in the project."""


class ObjectTooLargeError(SupabaseStorageError):
    """An upload exceeded the bucket's ``file_size_limit`` or the project's global limit."""


class InvalidKeyError(SupabaseStorageError, ValueError):
    """An object key with characters Supabase Storage does not accept."""


def check_key(key: str, shown: str) -> None:
    """Raise InvalidKeyError before sending a key the server would refuse."""
    parts = key.split("/")
    if not key or not VALID_KEY.fullmatch(key) or "." in parts or ".." in parts or "" in parts:
        raise InvalidKeyError(
            f"invalid object key for {shown}: Supabase Storage keys are non-empty, use only "
            f"{KEY_ALPHABET}, and have no empty, '.' or '..' segments",
            status="400",
            code="InvalidKey",
            error_number=errno.EINVAL,
        )


def _body_code(exc: BaseException) -> str:
    """The body's ``code`` field (NoSuchKey, ...), which storage3 does not keep on the exception."""
    response = getattr(exc.__cause__, "response", None)
    if response is None:
        return ""
    try:
        body: Any = response.json()
    except ValueError:
        return ""
    return str(body.get("code") or "") if isinstance(body, dict) else ""


def _http_status(exc: BaseException) -> int:
    response = getattr(exc.__cause__, "response", None)
    return int(getattr(response, "status_code", 0) or 0)


_TIMEOUTS = {
    "ConnectTimeout": ("did not accept a connection", "connect"),
    "ReadTimeout": ("did not answer", "read"),
    "WriteTimeout": ("took no more of the request", "read"),
    "PoolTimeout": ("had no free connection", "operation"),
}


def timed_out(exc: BaseException, url: str, shown: str, bounds: Any) -> str:
    """The one line for an httpx timeout on ``shown``: which bound ran out, and all of them."""
    what, which = _TIMEOUTS.get(type(exc).__name__, ("did not answer", "read"))
    seconds = getattr(bounds, which)
    return (
        f"Supabase Storage at {url} {what} within {seconds:g} s for {shown} ({bounds}); "
        "raise the timeout options for a slow project, or check the URL"
    )


def _not_storage(exc: BaseException, shown: str, status: str) -> SupabaseStorageError | None:
    """For an error answer that is not JSON at all, the error saying the URL is some other server.

    None for JSON without Storage's fields: Supabase's gateway answers a bad key that way.
    """
    response: Any = None
    error: BaseException | None = exc
    while error is not None and response is None:  # storage3 raises it from the JSON error, itself from httpx's
        response = getattr(error, "response", None)
        error = error.__cause__ or error.__context__
    kind = response.headers.get("content-type", "") if response is not None else ""
    if "json" in kind:
        return None
    came_back = ", ".join(part for part in (f"HTTP {status}", kind and f"Content-Type {kind}") if part)
    return SupabaseStorageError(
        f"the server does not answer like Supabase Storage ({came_back} for {shown}); check the project URL "
        "(SUPABASE_URL or the url option: https://<project-ref>.supabase.co)",
        status=status,
        code="NotSupabaseStorage",
    )


def translate(exc: Exception, shown: str) -> OSError:
    """The Python exception for a storage3 ``StorageApiError`` raised while working on ``shown``."""
    message = str(getattr(exc, "message", "") or exc)
    status = str(getattr(exc, "status", "") or "")
    error = str(getattr(exc, "code", "") or "")
    if message.startswith("Unable to parse error message"):  # storage3's words for a body that is not its JSON
        not_storage = _not_storage(exc, shown, status)
        if not_storage is not None:
            return not_storage
    code = _body_code(exc)
    http = _http_status(exc)
    detail = f"{message} ({code or error or 'error'}, status {status or http})"
    if code == "NoSuchBucket" or error == "Bucket not found":
        bucket = shown.removeprefix("supabase://").split("/", 1)[0]
        return BucketNotFoundError(
            f"bucket {bucket!r} not found in the Supabase project ({detail}); "
            "create it in the dashboard (Storage > New bucket) or with fs.mkdir(bucket)",
            status=status,
            code=code or "NoSuchBucket",
        )
    if code == "NoSuchKey" or error == "not_found" or (status == "404" and not code):
        return FileNotFoundError(errno.ENOENT, f"{message}: {shown}")
    if code in ("KeyAlreadyExists", "ResourceAlreadyExists") or error == "Duplicate" or status == "409":
        return FileExistsError(errno.EEXIST, f"{message}: {shown}")
    if code == "EntityTooLarge" or status == "413":
        return ObjectTooLargeError(
            f"{message}: {shown} ({code or error}); raise the bucket's file size limit, or the project's "
            "global upload limit in the dashboard (Storage > Settings)",
            status=status,
            code=code or "EntityTooLarge",
            error_number=errno.EFBIG,
        )
    if code == "InvalidKey":
        return InvalidKeyError(
            f"{message} ({shown}); keys may use only {KEY_ALPHABET}",
            status=status,
            code=code,
            error_number=errno.EINVAL,
        )
    if code in ("AccessDenied", "InvalidJWT") or status in ("401", "403") or http in (401, 403):
        return PermissionError(
            errno.EACCES,
            f"Supabase Storage refused access to {shown}: {message} ({code or error or status or http}); "
            "check SUPABASE_KEY (a service_role key, or a key whose storage policies allow this)",
        )
    return SupabaseStorageError(
        f"Supabase Storage failed on {shown}: {detail}", status=status or str(http), code=code or error
    )
