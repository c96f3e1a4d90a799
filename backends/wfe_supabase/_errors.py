"""Supabase Storage errors, translated into the builtin and fsspec ones at one place.

Supabase Storage answers every user error with HTTP 400 and puts the real
status in the JSON body (``{"statusCode": "404", "code": "NoSuchKey",
"error": "not_found", "message": "Object not found"}``); ``storage3`` raises
``StorageApiError(message, error, statusCode)`` and keeps the response on
``__cause__``. :func:`translate` turns that into:

::

    FileNotFoundError              no such object (NoSuchKey, not_found)
    FileExistsError                duplicate upload without upsert (KeyAlreadyExists, Duplicate)
    PermissionError                a key the server cannot verify, or a row-level-security refusal
                                   (AccessDenied, 401, 403)
    SupabaseStorageError (OSError) anything else, with status, code and the server's message; an
                                   answer that is not Storage's JSON says the server is not Supabase
                                   Storage, a route the server does not have says the base URL is
                                   wrong (NoSuchRoute); a timeout names the bound (:func:`timed_out`)
    ├── BucketNotFoundError        the bucket does not exist (NoSuchBucket)
    ├── ObjectTooLargeError        over the bucket's or the project's size limit (EntityTooLarge)
    └── InvalidKeyError            (ValueError) a key outside Storage's alphabet (InvalidKey)

The server's message is kept in every case; the key is never part of one
(only its role, which :func:`key_role` reads from it, may be).

Row-level security answers some refusals as absence: a key whose policies
hide an object reads it as ``NoSuchKey``, and a key the server cannot verify
reads a private bucket's objects as ``NoSuchBucket``. A message for a missing
object says so when the key is not a service-role key.
"""

from __future__ import annotations

import base64
import binascii
import errno
import json
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


SERVICE_ROLE = "service_role"
# Fastify's answer for a path the server has no route for, and the hosted gateway's (Kong's)
_NO_ROUTE = re.compile(r"Route [A-Z]+:\S* not found|no Route matched", re.IGNORECASE)


def key_role(key: str) -> str | None:
    """The role a Supabase key acts as (``service_role``, ``anon``, ``authenticated``), None if unknown.

    Legacy keys are JWTs whose payload names the role (read, not verified);
    the newer ``sb_secret_`` and ``sb_publishable_`` keys act as the service
    role and as ``anon``.
    """
    if key.startswith("sb_secret_"):
        return SERVICE_ROLE
    if key.startswith("sb_publishable_"):
        return "anon"
    parts = key.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    role = payload.get("role") if isinstance(payload, dict) else None
    return role if isinstance(role, str) and role else None


def rls_hint(role: str | None) -> str:
    """What to add to a "not found" seen with a key whose row-level-security policies apply ("" otherwise)."""
    if role is None or role == SERVICE_ROLE:
        return ""
    return (
        f" (the key's role is {role!r}, not service_role: row-level security hides what its storage policies "
        "do not allow, and the server answers that as not found; check the key and the policies on storage.objects)"
    )


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


def translate(exc: Exception, shown: str, endpoint: str = "", role: str | None = None) -> OSError:
    """The Python exception for a storage3 ``StorageApiError`` raised while working on ``shown``.

    ``endpoint`` (the Storage API's base URL) is named where the answer says it
    is wrong; ``role`` (:func:`key_role`) words the errors row-level security causes.
    """
    message = str(getattr(exc, "message", "") or exc)
    status = str(getattr(exc, "status", "") or "")
    error = str(getattr(exc, "code", "") or "")
    if message.startswith("Unable to parse error message"):  # storage3's words for a body that is not its JSON
        not_storage = _not_storage(exc, shown, status)
        if not_storage is not None:
            return not_storage
    code = _body_code(exc)
    http = _http_status(exc)
    no_route = _NO_ROUTE.search(message) if http == 404 and not code else None
    if no_route is not None:
        where = f"Supabase Storage at {endpoint}" if endpoint else "the server"
        return SupabaseStorageError(
            f"{where} has no such route ({no_route.group(0)}, for {shown}): the Storage API is not at this "
            "base URL; check storage_url (a self-hosted Storage server without the gateway serves /bucket and "
            "/object at its root: pass that root) or the project URL (https://<project-ref>.supabase.co, whose "
            "Storage API is under /storage/v1)",
            status="404",
            code="NoSuchRoute",
        )
    detail = f"{message} ({code or error or 'error'}, status {status or http})"
    if code == "NoSuchBucket" or error == "Bucket not found":
        bucket = shown.removeprefix("supabase://").split("/", 1)[0]
        where = f" at {endpoint}" if endpoint else ""
        hidden = (
            ""
            if role == SERVICE_ROLE
            else "; a key the server cannot verify, or one whose policies hide the bucket, gets the same answer: "
            "check the key too"
        )
        return BucketNotFoundError(
            f"bucket {bucket!r} not found{where} ({detail}); create it in the dashboard (Storage > New bucket) "
            f"or with fs.mkdir(bucket){hidden}",
            status=status,
            code=code or "NoSuchBucket",
        )
    if code == "NoSuchKey" or error == "not_found" or (status == "404" and not code):
        return FileNotFoundError(errno.ENOENT, f"{message}: {shown}{rls_hint(role)}")
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
        if "row-level security" in message:
            advice = (
                "the key's storage policies do not allow this: use a service_role key, or add policies on "
                "storage.objects for this bucket that allow it"
            )
        else:
            advice = "check SUPABASE_KEY (or the key option): the server could not verify it"
        return PermissionError(
            errno.EACCES,
            f"Supabase Storage refused access to {shown}: {message} ({code or error or status or http}); {advice}",
        )
    return SupabaseStorageError(
        f"Supabase Storage failed on {shown}: {detail}", status=status or str(http), code=code or error
    )
