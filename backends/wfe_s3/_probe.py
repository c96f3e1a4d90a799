"""Does this S3 endpoint refuse a second create-only PUT? Probed once, remembered in the store.

S3 refuses a PUT with ``If-None-Match: *`` to a key that exists (HTTP 412),
and wfe builds on that: the first action result wins, leases hold, a publish
never overwrites. Several S3-compatible services (older MinIO and Ceph
releases, s3rver) ignore the header and replace the object. So the first
time a process opens a store on an endpoint and bucket, it reads the store's
record (:data:`RECORD`); with no record it can trust, it PUTs one fresh key
under ``tmp/`` twice with the header and sees whether either is refused,
deletes the key, and writes the answer to the record.

A record is trusted only if it parses, names this endpoint and bucket, and
was probed less than :data:`MAX_AGE` ago: a server replaced or downgraded
behind the same endpoint is found out within a day. (Finding out at a write
would cost a request per write, the request the header saves.)

What it costs: the first open on an endpoint and bucket in a process, one
GET; with no trusted record, two PUTs, a DELETE and the record's PUT more.
Every later open in the process, of any prefix in that bucket: nothing.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from wfe.storage import RECORD_MAX_AGE as MAX_AGE  # noqa: F401  (seconds a record is trusted, as every backend's)
from wfe.storage import Memo, fresh

if TYPE_CHECKING:
    from ._io import S3IO

log = logging.getLogger(__name__)

RECORD = "capabilities/s3.json"  # outside every folder gc, verify and sync walk; not copied to another store
FORMAT = 1
MAX_RECORD_BYTES = 4096
PROBE_PREFIX = "tmp/probe-"  # a probe key left by a writer killed mid-probe goes with gc's other tmp/ leftovers

IGNORED = "the endpoint ignores If-None-Match"  # why the store lacks conditional_create, for check-store's line
CONSEQUENCE = (
    "so create-only writes are not refused: two runs at once may both compute an action and the later result "
    "replaces the earlier; leases are off"
)

_KNOWN: Memo[tuple[bool | None, str]] = Memo()  # (endpoint, bucket) -> (refuses?, why not claimed)


def refuses_second_create(storage: S3IO) -> tuple[bool | None, str]:
    """Whether a create-only PUT to an existing key is refused here, and if not, why, in a few words.

    True: it is. False: the endpoint ignores ``If-None-Match``. None: it could
    not be told (the probe's requests failed, e.g. a read-only key); the
    store then claims nothing either. Never raises.
    """
    return _KNOWN.get((storage._endpoint(), storage.bucket), lambda: _learn(storage))[0]


def forget() -> None:
    """Drop what this process learnt, so the next open reads the store's record again (as a new process would)."""
    _KNOWN.forget()


def _learn(storage: S3IO) -> tuple[bool | None, str]:
    where = f"s3://{storage.root} at {storage._endpoint()}"
    if getattr(storage.fs, "anon", False):
        return None, "not probed: anonymous access cannot write"
    remembered, before = _read_record(storage)
    if remembered is not None:
        if not remembered:
            log.info("%s: %s, %s", where, IGNORED, CONSEQUENCE)
            return False, IGNORED
        return True, ""
    refused, failure = _probe(storage)
    if refused is None:
        log.info("%s: could not tell whether create-only writes are refused (%s): not relying on them", where, failure)
        return None, f"the probe failed: {failure}"
    _write_record(storage, refused)
    if not refused:
        # Said once per process; loudest when it is news (no record said so before).
        level = logging.INFO if before is False else logging.WARNING
        log.log(level, "%s: %s, %s", where, IGNORED, CONSEQUENCE)
        return False, IGNORED
    return True, ""


def _read_record(storage: S3IO) -> tuple[bool | None, bool | None]:
    """``(what the record says, or None if it is missing or not to be trusted; what an old record said)``."""
    try:
        data = storage.read_bytes(RECORD, MAX_RECORD_BYTES)
    except FileNotFoundError:
        return None, None
    except Exception as exc:  # unreadable (too large, refused): probe as if it were not there
        log.debug("s3://%s: capability record unreadable (%s): probing", storage.root, exc)
        return None, None
    try:
        record: Any = json.loads(data)
    except (ValueError, RecursionError):
        record = None
    valid = (
        isinstance(record, dict)
        and record.get("format") == FORMAT
        and record.get("backend") == "s3"
        and isinstance(record.get("conditional_create"), bool)
        and isinstance(record.get("probed"), (int, float))
        and not isinstance(record.get("probed"), bool)
    )  # a valid record that is too old still tells what the endpoint did before
    if not valid:
        log.debug("s3://%s: capability record garbled: probing", storage.root)
        return None, None
    said: bool = record["conditional_create"]
    if record.get("endpoint") != storage._endpoint() or record.get("bucket") != storage.bucket:
        log.debug("s3://%s: capability record is for another endpoint: probing", storage.root)
        return None, None
    if not fresh(record["probed"]):
        return None, said
    return said, None


def _probe(storage: S3IO) -> tuple[bool | None, str]:
    """Two create-only PUTs to one fresh key: refuses if either is refused (the first can be, on a retry)."""
    rel = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
    try:
        refused = not storage._put_object(rel, b"first", exclusive=True)
        if not refused:
            refused = not storage._put_object(rel, b"second", exclusive=True)
    except Exception as exc:  # a probe that fails says nothing either way
        if _precondition_failed(exc):
            # The server refuses, but without naming the If-None-Match condition (as S3 does), so the S3
            # client takes the refusal for an error rather than for "exists": relying on it would fail writes.
            return None, "the server refuses a second create-only PUT with an HTTP 412 that does not name If-None-Match"
        return None, _first_line(exc)
    finally:
        try:
            storage.remove(rel)
        except Exception as exc:  # gc removes tmp/ leftovers
            log.debug("s3://%s: could not delete the probe key %s: %s", storage.root, rel, exc)
    return refused, ""


def _write_record(storage: S3IO, refused: bool) -> None:
    record = {
        "format": FORMAT,
        "backend": "s3",
        "endpoint": storage._endpoint(),
        "bucket": storage.bucket,
        "conditional_create": refused,
        "probed": time.time(),
    }
    try:
        storage._put_object(RECORD, json.dumps(record, sort_keys=True).encode(), exclusive=False)
    except Exception as exc:  # then the next process probes again
        log.debug("s3://%s: could not write the capability record: %s", storage.root, exc)


def _precondition_failed(exc: BaseException) -> bool:
    """True if botocore's answer behind ``exc`` (s3fs and wfe keep it as a cause) is HTTP 412."""
    seen: BaseException | None = exc
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, dict):
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return bool(status == 412 or response.get("Error", {}).get("Code") == "PreconditionFailed")
        seen = seen.__cause__ or seen.__context__
    return False


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
