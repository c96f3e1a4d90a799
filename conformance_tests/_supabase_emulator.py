"""An emulator of Supabase Storage's HTTP API, for tests on 127.0.0.1.

This is not Supabase: it is a small local imitation of the endpoints wfe
uses, written from Supabase Storage's documented API and error codes, so
that the real ``supabase`` client can be tested over HTTP without a project.
Objects are kept in files in a temporary folder (memory stays flat).

What it imitates, under ``/storage/v1``:

- the gateway's key check: ``apiKey`` must be the project key (or the
  optional anon key), else HTTP 401 ``{"message": "Invalid API key"}``;
  ``Authorization: Bearer`` must carry the same key, else AccessDenied;
- buckets: ``POST /bucket`` (with ``file_size_limit``), ``GET /bucket``,
  ``GET /bucket/{id}``, ``DELETE /bucket/{id}``;
- objects: upload ``POST`` (``x-upsert``) and update ``PUT`` of
  ``/object/{bucket}/{key}`` (multipart or raw body), download ``GET``
  with ``Range``, ``GET /object/info/{bucket}/{key}``, list
  ``POST /object/list/{bucket}`` (folders first, limit/offset, prefix taken
  as a folder and matched like SQL ``ILIKE``), remove
  ``DELETE /object/{bucket}`` (``prefixes`` are exact keys, at most 1000),
  ``POST /object/move`` and ``POST /object/copy``;
- errors as storage-api sends them: HTTP 400 (500 for internal errors) with
  ``{"statusCode": "<real status>", "code", "error", "message"}``.

Writes with the anon key are refused as a row-level-security policy would.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
import threading
import uuid
from typing import IO, Any

from werkzeug.routing import Map, Rule
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from ._supabase_emulator_model import (
    VALID_KEY,
    Bucket,
    StorageError,
    StoredObject,
    access_denied,
    copy_hashing,
    invalid_key,
    json_body,
    json_response,
    key_exists,
    like,
    no_such_bucket,
    no_such_key,
    read_file,
    size_limit,
    too_large,
)

DELETE_LIMIT = 1000
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class SupabaseStorageEmulator:
    """Start with :meth:`start` (or as a context manager); ``url`` is the project URL for the client."""

    def __init__(self, key: str, *, anon_key: str | None = None, global_size_limit: int | None = None) -> None:
        self.key = key
        self.anon_key = anon_key
        self.global_size_limit = global_size_limit
        self.buckets: dict[str, Bucket] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, for tests
        self.ranges: list[str] = []  # every Range header served
        self._lock = threading.RLock()
        self._folder = tempfile.mkdtemp(prefix="supabase-emulator-")
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._routes = Map(
            [
                Rule("/storage/v1/bucket", methods=["POST"], endpoint="create_bucket"),
                Rule("/storage/v1/bucket", methods=["GET"], endpoint="list_buckets"),
                Rule("/storage/v1/bucket/<bucket>", methods=["GET"], endpoint="get_bucket"),
                Rule("/storage/v1/bucket/<bucket>", methods=["DELETE"], endpoint="delete_bucket"),
                Rule("/storage/v1/object/list/<bucket>", methods=["POST"], endpoint="list_objects"),
                Rule("/storage/v1/object/move", methods=["POST"], endpoint="move"),
                Rule("/storage/v1/object/copy", methods=["POST"], endpoint="copy"),
                Rule("/storage/v1/object/info/<bucket>/<path:key>", methods=["GET"], endpoint="info"),
                Rule("/storage/v1/object/info/authenticated/<bucket>/<path:key>", methods=["GET"], endpoint="info"),
                Rule("/storage/v1/object/authenticated/<bucket>/<path:key>", methods=["GET"], endpoint="download"),
                Rule("/storage/v1/object/<bucket>", methods=["DELETE"], endpoint="remove"),
                Rule("/storage/v1/object/<bucket>/<path:key>", methods=["GET", "HEAD"], endpoint="download"),
                Rule("/storage/v1/object/<bucket>/<path:key>", methods=["POST"], endpoint="upload"),
                Rule("/storage/v1/object/<bucket>/<path:key>", methods=["PUT"], endpoint="update"),
                Rule("/storage/v1/object/<bucket>/<path:key>", methods=["DELETE"], endpoint="remove_one"),
            ],
            merge_slashes=False,
            strict_slashes=False,
        )

    # lifecycle
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> SupabaseStorageEmulator:
        class QuietHandler(WSGIRequestHandler):
            def log_request(self, *args: Any, **kwargs: Any) -> None:
                pass

        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True, request_handler=QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="supabase-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> SupabaseStorageEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def create_bucket(self, name: str, *, file_size_limit: int | None = None, public: bool = False) -> None:
        """Make a bucket directly (as the dashboard would)."""
        with self._lock:
            self.buckets[name] = Bucket(name, public=public, file_size_limit=file_size_limit)

    def put_object(self, bucket: str, key: str, data: bytes) -> None:
        """Store an object directly, as a finished upload would (for tests that need many objects)."""
        path = os.path.join(self._folder, f"object-{uuid.uuid4().hex}")
        with open(path, "wb") as handle:
            handle.write(data)
        with self._lock:
            self._bucket(bucket).objects[key] = StoredObject(
                path, len(data), hashlib.md5(data).hexdigest(), "application/octet-stream", "3600"
            )

    def stored_files(self) -> list[str]:
        """The local files holding every object's bytes."""
        with self._lock:
            return [obj.path for bucket in self.buckets.values() for obj in bucket.objects.values()]

    def raw_path(self, bucket: str, key: str) -> str:
        """The local file holding an object's bytes (tests may rewrite it behind the client's back)."""
        return self.buckets[bucket].objects[key].path

    # plumbing
    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        try:
            response = self._dispatch(request)
        except StorageError as exc:
            response = exc.response()
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        with self._lock:
            self.requests.append((request.method, request.path))
        apikey = request.headers.get("apikey")
        if not apikey:
            return json_response({"message": "No API key found in request"}, 401)
        if apikey not in (self.key, self.anon_key):
            return json_response({"message": "Invalid API key", "hint": "Double check your Supabase API key."}, 401)
        bearer = request.headers.get("Authorization", "")
        token = bearer[7:].strip() if bearer.lower().startswith("bearer ") else ""
        if token != apikey:
            raise access_denied("invalid signature" if token else "Invalid Compact JWS")
        adapter = self._routes.bind_to_environ(request.environ)
        try:
            endpoint, arguments = adapter.match()
        except Exception:
            message = f"Route {request.method}:{request.path} not found"
            return json_response({"statusCode": "404", "error": "Not Found", "message": message}, 404)
        if request.method not in ("GET", "HEAD") and endpoint not in ("list_objects",) and apikey == self.anon_key:
            raise access_denied("new row violates row-level security policy")
        handler = getattr(self, f"_{endpoint}")
        result: Response = handler(request, **arguments)
        return result

    def _bucket(self, name: str) -> Bucket:
        bucket = self.buckets.get(name)
        if bucket is None:
            raise no_such_bucket()
        return bucket

    def _object(self, bucket: str, key: str) -> StoredObject:
        found = self._bucket(bucket).objects.get(key)
        if found is None:
            raise no_such_key()
        return found

    # buckets
    def _create_bucket(self, request: Request) -> Response:
        body = json_body(request)
        name = str(body.get("id") or body.get("name") or "")
        if not name or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise StorageError(400, "InvalidBucketName", "Bucket name invalid", "Invalid Input")
        with self._lock:
            if name in self.buckets:
                raise StorageError(409, "BucketAlreadyExists", "The resource already exists", "Duplicate")
            self.buckets[name] = Bucket(
                name,
                public=bool(body.get("public", False)),
                file_size_limit=size_limit(body.get("file_size_limit")),
                allowed_mime_types=body.get("allowed_mime_types"),
            )
        return json_response({"name": name})

    def _list_buckets(self, request: Request) -> Response:
        return json_response([bucket.row() for bucket in self.buckets.values()])

    def _get_bucket(self, request: Request, bucket: str) -> Response:
        return json_response(self._bucket(bucket).row())

    def _delete_bucket(self, request: Request, bucket: str) -> Response:
        with self._lock:
            if self._bucket(bucket).objects:
                raise StorageError(409, "ResourceNotEmpty", "The bucket you tried to delete is not empty")
            del self.buckets[bucket]
        return json_response({"message": "Successfully deleted"})

    # objects
    def _upload(self, request: Request, bucket: str, key: str, *, upsert: bool | None = None) -> Response:
        target = self._bucket(bucket)
        if not VALID_KEY.fullmatch(key):
            raise invalid_key(key)
        if upsert is None:
            upsert = request.headers.get("x-upsert", "false").lower() == "true"
        cache_control = "no-cache"
        if request.mimetype.startswith("multipart/form-data"):
            part = request.files.get("file")
            if part is None:
                raise StorageError(400, "InvalidRequest", "No content provided")
            source: IO[bytes] = part.stream
            mimetype = part.mimetype or "application/octet-stream"
            cache_control = request.form.get("cacheControl", "3600")
        else:
            source = request.stream
            mimetype = request.mimetype or "application/octet-stream"
        staged = os.path.join(self._folder, f"upload-{uuid.uuid4().hex}")
        size, etag = copy_hashing(source, staged)
        try:
            limits = [x for x in (target.file_size_limit, self.global_size_limit) if x is not None]
            if limits and size > min(limits):
                raise too_large()
            with self._lock:
                existing = target.objects.get(key)
                if existing is not None and not upsert:
                    raise key_exists()
                final = os.path.join(self._folder, f"object-{uuid.uuid4().hex}")
                os.replace(staged, final)  # the object appears whole, as a completed upload does
                stored = StoredObject(final, size, etag, mimetype, cache_control)
                if existing is not None:
                    stored.id, stored.created_at = existing.id, existing.created_at
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(existing.path)
                target.objects[key] = stored
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staged)
        return json_response({"Id": stored.id, "Key": f"{bucket}/{key}"})

    def _update(self, request: Request, bucket: str, key: str) -> Response:
        return self._upload(request, bucket, key, upsert=True)

    def _download(self, request: Request, bucket: str, key: str) -> Response:
        with self._lock:  # an upsert replaces the object's file under this lock: open the current one
            found = self._object(bucket, key)
            handle = None if request.method == "HEAD" else open(found.path, "rb")  # noqa: SIM115 - read below
        try:
            return self._send(request, found, handle)
        except BaseException:
            if handle is not None:
                handle.close()
            raise

    def _send(self, request: Request, found: StoredObject, handle: IO[bytes] | None) -> Response:
        start, end = 0, found.size - 1
        status = 200
        header = request.headers.get("Range")
        if header:
            match = _RANGE.fullmatch(header.strip())
            if not match or (not match.group(1) and not match.group(2)):
                raise StorageError(400, "InvalidRange", "invalid range provided", "invalid_range")
            if match.group(1):
                start = int(match.group(1))
                end = min(int(match.group(2)), found.size - 1) if match.group(2) else found.size - 1
            else:  # suffix range: the last N bytes
                start, end = max(found.size - int(match.group(2)), 0), found.size - 1
            if start >= found.size or start > end:
                raise StorageError(400, "InvalidRange", "invalid range provided", "invalid_range")
            status = 206
            with self._lock:
                self.ranges.append(header)
        headers = {
            "Accept-Ranges": "bytes",
            "ETag": f'"{found.etag}"',
            "Cache-Control": f"max-age={found.cache_control}",
            "Content-Length": str(max(end - start + 1, 0)),
        }
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end}/{found.size}"
        body = b"" if handle is None else read_file(handle, start, end - start + 1)
        return Response(body, status=status, headers=headers, mimetype=found.mimetype)

    def _info(self, request: Request, bucket: str, key: str) -> Response:
        found = self._object(bucket, key)
        return json_response(
            {
                "id": found.id,
                "name": key,
                "version": found.version,
                "bucket_id": bucket,
                "size": found.size,
                "content_type": found.mimetype,
                "cache_control": f"max-age={found.cache_control}",
                "etag": f'"{found.etag}"',
                "metadata": {},
                "last_modified": found.updated_at,
                "created_at": found.created_at,
            }
        )

    def _list_objects(self, request: Request, bucket: str) -> Response:
        target = self._bucket(bucket)
        body = json_body(request)
        if "prefix" not in body:
            raise StorageError(400, "InvalidRequest", "body must have required property 'prefix'", "Bad Request")
        prefix = str(body.get("prefix") or "")
        if prefix and not prefix.endswith("/"):
            prefix += "/"  # storage-api takes the prefix as a folder
        limit = int(body.get("limit") or 100)
        offset = int(body.get("offset") or 0)
        search = str(body.get("search") or "")
        sort = body.get("sortBy") or {}
        column = sort.get("column", "name") if sort.get("column") in ("name", "updated_at", "created_at") else "name"
        descending = str(sort.get("order", "asc")).lower() == "desc"
        level = len(prefix.split("/"))
        matcher = like(prefix + search)
        with self._lock:
            matched = [(name, obj) for name, obj in target.objects.items() if matcher.fullmatch(name)]
        folders = sorted(
            {name.split("/")[level - 1] for name, _ in matched if len(name.split("/")) != level}, reverse=descending
        )
        files = [(name.split("/")[level - 1], obj) for name, obj in matched if len(name.split("/")) == level]
        files.sort(key=lambda item: item[0] if column == "name" else getattr(item[1], column), reverse=descending)
        rows: list[dict[str, Any]] = [
            dict.fromkeys(("id", "updated_at", "created_at", "last_accessed_at", "metadata"), None) | {"name": folder}
            for folder in folders
        ]
        rows.extend(
            {
                "name": name,
                "id": obj.id,
                "updated_at": obj.updated_at,
                "created_at": obj.created_at,
                "last_accessed_at": obj.updated_at,
                "metadata": obj.metadata(),
            }
            for name, obj in files
        )
        return json_response(rows[offset : offset + limit])

    def _remove(self, request: Request, bucket: str) -> Response:
        target = self._bucket(bucket)
        prefixes = json_body(request).get("prefixes")
        if not isinstance(prefixes, list) or not prefixes:
            raise StorageError(400, "InvalidRequest", "body/prefixes must NOT have fewer than 1 items", "Bad Request")
        if len(prefixes) > DELETE_LIMIT:
            raise StorageError(400, "InvalidRequest", f"At most {DELETE_LIMIT} objects can be deleted per request.")
        removed = []
        with self._lock:
            for name in prefixes:
                found = target.objects.pop(str(name), None)
                if found is None:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(found.path)
                removed.append({"name": name, "bucket_id": bucket, "id": found.id, "metadata": found.metadata()})
        return json_response(removed)

    def _remove_one(self, request: Request, bucket: str, key: str) -> Response:
        with self._lock:
            found = self._object(bucket, key)
            del self._bucket(bucket).objects[key]
        with contextlib.suppress(FileNotFoundError):
            os.unlink(found.path)
        return json_response({"message": "Successfully deleted"})

    def _transfer(self, request: Request, *, keep_source: bool) -> Response:
        body = json_body(request)
        source_bucket = self._bucket(str(body.get("bucketId") or ""))
        destination_bucket = self._bucket(str(body.get("destinationBucket") or body.get("bucketId") or ""))
        source_key, destination_key = str(body.get("sourceKey") or ""), str(body.get("destinationKey") or "")
        if not VALID_KEY.fullmatch(destination_key):
            raise invalid_key(destination_key)
        upsert = keep_source and request.headers.get("x-upsert", "false").lower() == "true"
        with self._lock:
            found = source_bucket.objects.get(source_key)
            if found is None:
                raise no_such_key()
            if destination_key in destination_bucket.objects and not upsert:
                raise key_exists()
            copy_path = os.path.join(self._folder, f"object-{uuid.uuid4().hex}")
            shutil.copyfile(found.path, copy_path)
            stored = StoredObject(copy_path, found.size, found.etag, found.mimetype, found.cache_control)
            old = destination_bucket.objects.get(destination_key)
            if old is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(old.path)
            destination_bucket.objects[destination_key] = stored
            if not keep_source:
                del source_bucket.objects[source_key]
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(found.path)
        if keep_source:
            return json_response({"Id": stored.id, "Key": f"{destination_bucket.id}/{destination_key}"})
        return json_response({"message": "Successfully moved", "Id": stored.id, "Key": destination_key})

    def _move(self, request: Request) -> Response:
        return self._transfer(request, keep_source=False)

    def _copy(self, request: Request) -> Response:
        return self._transfer(request, keep_source=True)
