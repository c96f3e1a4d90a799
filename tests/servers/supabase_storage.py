"""The real Supabase Storage API server for tests: built once per machine, started fresh per use.

The server is the open-source one every Supabase project runs (Node.js, with
PostgreSQL for its metadata). Its source comes as a snapshot without
``node_modules``; :func:`build` installs Node 24 and the dependencies from the
npm registry once per machine into a cache folder, and
:func:`supabase_storage_server` starts a throwaway PostgreSQL and the server
on loopback ports, with objects kept in a temporary folder.

Tests against it see what the hosted service does, not what its documentation
says: an emulator written from the docs got races, listings and error
answers wrong in ways only the real server showed.

Environment:

- ``WFE_SUPABASE_STORAGE_URL`` and ``WFE_SUPABASE_STORAGE_KEY`` (a service-role
  key; optionally ``WFE_SUPABASE_STORAGE_ANON_KEY``): use a stack that already
  runs, with its Storage API at that URL; nothing is built or started.
- ``WFE_SUPABASE_STORAGE_SRC``: the source snapshot (default
  ``<repo>/../shared/vendor/supabase-storage``).
- ``WFE_TEST_SERVER_CACHE``: where builds are kept (default
  ``~/.cache/wfe-test-servers``).

Building needs npm (any version: it only fetches Node 24 and npm 11), a C++
compiler, make and python3 (a native module); starting needs PostgreSQL's
``initdb`` and ``postgres`` (on ``PATH`` or Debian's ``/usr/lib/postgresql/*/bin``).
PostgreSQL refuses to run as root: as root it runs as the ``postgres`` user
(or ``nobody``). The object folder needs extended attributes (ext4 has them).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import fcntl
import hashlib
import hmac
import json
import os
import platform
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

RECIPE_VERSION = "1"  # bump when the build steps change: the cache folder's name changes with it
NODE_SPEC = "24"  # the server's package.json wants Node >= 24 and .npmrc makes that strict
NPM_SPEC = "11"  # the lockfile's npm; the machine's own npm only fetches these two
START_TIMEOUT = 120.0  # seconds for PostgreSQL and the server to answer (64 migrations run at start)
STOP_GRACE = 10.0  # seconds between the polite signal and SIGKILL
REPO = Path(__file__).resolve().parents[2]

Log = Callable[[str], None]


class Unavailable(Exception):
    """The server cannot be had on this machine; the message is one line, fit for ``pytest.skip``."""


@dataclass(frozen=True)
class Server:
    """A running Storage API: where it answers and the keys it accepts.

    ``url`` is the server's root (``/bucket``, ``/object/...`` are right under
    it) and ``storage_url`` the Storage API base a client should use: the same
    root for a bare server, ``<project>/storage/v1`` behind Supabase's gateway.
    ``jwt_secret`` and ``anon_key`` are None for a stack this module did not start
    (unless ``WFE_SUPABASE_STORAGE_ANON_KEY`` is set).
    """

    url: str
    storage_url: str
    service_key: str = field(repr=False)
    anon_key: str | None = field(default=None, repr=False)
    jwt_secret: str | None = field(default=None, repr=False)
    process_groups: tuple[int, ...] = field(default=(), repr=False)

    def request(self, method: str, path: str, body: Any = None, key: str | None = None) -> Any:
        """One JSON request to the Storage API as the service role (or ``key``); the decoded answer."""
        data = None if body is None else json.dumps(body).encode()
        text = self._send(method, path, data, "application/json", key).decode()
        return json.loads(text) if text else None

    def _send(self, method: str, path: str, data: bytes | None, content_type: str, key: str | None = None,
              headers: dict[str, str] | None = None) -> bytes:
        key = key or self.service_key
        req = urllib.request.Request(
            f"{self.storage_url.rstrip('/')}/{path.lstrip('/')}",
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {key}", "apikey": key, "Content-Type": content_type,
                     **(headers or {})},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                body: bytes = response.read()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{method} {path}: HTTP {exc.code}: {exc.read().decode(errors='replace')}") from None
        return body

    def create_bucket(self, name: str, public: bool = False, file_size_limit: int | None = None) -> None:
        """Create bucket ``name`` (private unless ``public``)."""
        self.request("POST", "bucket", {"id": name, "name": name, "public": public,
                                        "file_size_limit": file_size_limit})

    def ensure_bucket(self, name: str) -> None:
        """Create bucket ``name`` (private) unless it exists."""
        try:
            self.create_bucket(name)
        except RuntimeError as exc:
            if "already exists" not in str(exc):
                raise

    def upload(self, bucket: str, key: str, data: bytes, *, upsert: bool = True) -> None:
        """Store ``data`` at ``bucket/key`` with a plain request (not through the backend)."""
        self._send("POST", f"object/{bucket}/{urllib.parse.quote(key)}", data, "application/octet-stream",
                   headers={"x-upsert": "true" if upsert else "false"})

    def download(self, bucket: str, key: str, api_key: str | None = None) -> bytes:
        """The bytes stored at ``bucket/key``, asked for with a plain request."""
        return self._send("GET", f"object/{bucket}/{urllib.parse.quote(key)}", None, "application/json", api_key)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key in ``bucket`` that starts with ``prefix`` (exactly), in key order."""
        keys: list[str] = []
        cursor = None
        while True:
            body: dict[str, Any] = {"prefix": prefix, "limit": 1000, "with_delimiter": False}
            if cursor:
                body["cursor"] = cursor
            page = self.request("POST", f"object/list-v2/{bucket}", body)
            keys.extend(found["name"] for found in page["objects"])
            if not page.get("hasNext"):
                return keys
            cursor = page["nextCursor"]

    def memory_bytes(self) -> int:
        """Resident memory of every process this module started for the server (0 for a foreign stack)."""
        total = 0
        page = os.sysconf("SC_PAGE_SIZE")
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                pgrp = int(stat.rpartition(")")[2].split()[2])
                if pgrp in self.process_groups:
                    total += int((entry / "statm").read_text().split()[1]) * page
            except (OSError, ValueError, IndexError):
                continue
        return total


# keys


def sign_jwt(secret: str, payload: dict[str, Any]) -> str:
    """An HS256 JWT: the server checks these with the shared secret (no dependency needed to make one)."""

    def part(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = part(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = part(json.dumps(payload, separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{part(signature)}"


def role_key(secret: str, role: str) -> str:
    """A key for ``role`` (``service_role`` or ``anon``), valid for a day."""
    now = int(time.time())
    return sign_jwt(secret, {"role": role, "iat": now, "exp": now + 86400})


# building


def source_dir() -> Path:
    """The server's source snapshot; Unavailable if it is not there."""
    configured = os.environ.get("WFE_SUPABASE_STORAGE_SRC")
    src = Path(configured) if configured else REPO.parent / "shared" / "vendor" / "supabase-storage"
    if not (src / "package-lock.json").is_file():
        raise Unavailable(f"no Supabase Storage source snapshot at {src} (set WFE_SUPABASE_STORAGE_SRC)")
    return src.resolve()


def cache_root() -> Path:
    return Path(os.environ.get("WFE_TEST_SERVER_CACHE") or Path.home() / ".cache" / "wfe-test-servers")


def build_name(src: Path) -> str:
    """The cache folder's name: changes with the locked dependencies, the recipe and the CPU."""
    digest = hashlib.sha256((src / "package-lock.json").read_bytes())
    digest.update(f"{RECIPE_VERSION} node {NODE_SPEC} npm {NPM_SPEC} {_node_cpu()}".encode())
    return f"supabase-storage-{digest.hexdigest()[:12]}"


def _node_cpu() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)


def node_binary(built: Path) -> Path:
    return built / "tools" / "node_modules" / f"node-linux-{_node_cpu()}" / "bin" / "node"


def build(log: Log = print) -> Path:
    """The built server's folder (``server/dist``, ``tools/`` with Node), building it first if needed.

    One build per machine and snapshot: others wait on a file lock (pytest-xdist
    workers, parallel sessions) and then find it done. The build happens in a
    temporary folder renamed into place when complete, so an interrupted build
    is never taken for a finished one.
    """
    src = source_dir()
    root = cache_root()
    name = build_name(src)
    final = root / name
    if (final / "BUILT").is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{name}.lock", "w") as lock:
        if not _try_lock(lock):
            log(f"supabase-storage: waiting for another process building {final}")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / "BUILT").is_file():
            return final
        for stale in [*root.glob(f"{name}.tmp-*"), final]:  # left by a build that was killed
            shutil.rmtree(stale, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=f"{name}.tmp-", dir=root))
        try:
            _build_into(src, work, log)
            os.rename(work, final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return final


def _try_lock(lock: IO[str]) -> bool:
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _build_into(src: Path, work: Path, log: Log) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise Unavailable("npm not found: it is needed once to fetch Node 24 for the Supabase Storage server")
    for tool in ("make", "g++", "python3"):
        if shutil.which(tool) is None:
            raise Unavailable(f"{tool} not found: the Supabase Storage server's native module needs it to build")
    log(f"supabase-storage: building from {src} into {work.parent} (once per machine)")
    build_log = work / "build.log"
    started = time.monotonic()

    step = time.monotonic()
    server = work / "server"
    shutil.copytree(src, server, ignore=shutil.ignore_patterns("node_modules", "dist", ".git"), symlinks=True)
    for folder, _dirs, files in os.walk(server):  # the snapshot may be read-only; the copy must not be
        os.chmod(folder, 0o755)
        for file in files:
            path = os.path.join(folder, file)
            if not os.path.islink(path):
                os.chmod(path, 0o644)
    log(f"supabase-storage: copied the source in {time.monotonic() - step:.1f} s")

    tools = work / "tools"
    cpu = _node_cpu()
    _run_step(
        f"installing Node {NODE_SPEC} and npm {NPM_SPEC}",
        [npm, "install", "--prefix", str(tools), "--no-save", "--no-audit", "--no-fund",
         f"node-linux-{cpu}@{NODE_SPEC}", f"npm@{NPM_SPEC}"],
        work, {}, build_log, log,
    )
    node = node_binary(work)
    npm_cli = tools / "node_modules" / "npm" / "bin" / "npm-cli.js"
    env = {
        "PATH": f"{node.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "npm_config_nodedir": str(node.parent.parent),  # native modules build against Node 24's headers
        "npm_config_update_notifier": "false",
    }
    _run_step("npm ci", [str(node), str(npm_cli), "ci", "--no-audit", "--no-fund"], server, env, build_log, log)
    # `npm run build` would type-check first, which fails on the job-queue swap this snapshot carries
    _run_step("compiling", [str(node), "./build.js"], server, env, build_log, log)
    _run_step("resolving paths", [str(node), str(npm_cli), "exec", "--", "resolve-tspaths"], server, env,
              build_log, log)
    version = subprocess.run([str(node), "--version"], capture_output=True, text=True).stdout.strip()
    seconds = time.monotonic() - started
    (work / "BUILT").write_text(json.dumps({"node": version, "seconds": round(seconds, 1), "source": str(src)}))
    log(f"supabase-storage: built with Node {version} in {seconds:.0f} s")


def _run_step(what: str, command: list[str], cwd: Path, env: dict[str, str], build_log: Path, log: Log) -> None:
    log(f"supabase-storage: {what} ...")
    started = time.monotonic()
    with open(build_log, "ab") as out:
        out.write(f"\n$ {' '.join(command)}\n".encode())
        out.flush()
        code = subprocess.run(command, cwd=cwd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL).returncode
    if code != 0:
        raise Unavailable(f"building Supabase Storage: {what} failed (exit {code}): {_tail(build_log)}")
    log(f"supabase-storage: {what} took {time.monotonic() - started:.1f} s")


def _tail(path: Path, lines: int = 8, chars: int = 800) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    tail = " | ".join(line.strip() for line in text.strip().splitlines()[-lines:] if line.strip())
    return tail[-chars:]


# starting


def postgres_bin(tool: str) -> str:
    """``initdb`` or ``postgres``: on PATH, else in Debian's versioned folder (which is not on PATH)."""
    found = shutil.which(tool)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"), key=lambda p: int(p.parts[-3]))
    if not candidates:
        raise Unavailable(f"PostgreSQL's {tool} not found (on Debian: apt-get install postgresql)")
    return str(candidates[-1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _postgres_user() -> dict[str, Any]:
    """Popen arguments that drop root for PostgreSQL, which refuses to run as root."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    raise Unavailable("running as root with neither a 'postgres' nor a 'nobody' user to run PostgreSQL as")


try:
    _PRCTL: Any = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it
except (OSError, AttributeError):
    _PRCTL = None
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: be killed when the process (thread) that started it dies.

    Runs in their own sessions, the servers would outlive a test run that is
    killed before its cleanup runs, holding ports and memory.
    """
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)


def _stop(process: subprocess.Popen[bytes], first: signal.Signals) -> None:
    """Signal the process group, wait a grace period, then kill what is left of the group."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, first)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(STOP_GRACE)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _wait(what: str, ready: Callable[[], bool], process: subprocess.Popen[bytes], log_path: Path,
          deadline: float) -> None:
    while not ready():
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} at start: {_tail(log_path)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer within {START_TIMEOUT:.0f} s: {_tail(log_path)}")
        time.sleep(0.1)


def _postgres_ready(data: Path) -> bool:
    try:  # the last line of postmaster.pid says "ready" once connections are accepted
        return (data / "postmaster.pid").read_text().splitlines()[7].strip() == "ready"
    except (OSError, IndexError):
        return False


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def _postgres(folder: Path, deadline: float, log: Log) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A throwaway PostgreSQL on 127.0.0.1 with a ``storage`` database; its port and process."""
    initdb, postgres = postgres_bin("initdb"), postgres_bin("postgres")
    drop = _postgres_user()
    if drop:
        os.chown(folder, drop["user"], drop["group"])
    data, log_path = folder / "data", folder / "postgres.log"
    started = time.monotonic()
    with open(log_path, "wb") as out:
        init = subprocess.run(
            [initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8",
             "--no-sync", "--no-instructions"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **drop,
        )
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed (exit {init.returncode}): {_tail(log_path)}")
        single = subprocess.run(  # single-user mode: no client program needed to create the database
            [postgres, "--single", "-D", str(data), "postgres"], input=b"CREATE DATABASE storage;\n",
            stdout=out, stderr=subprocess.STDOUT, **drop,
        )
        if single.returncode != 0:
            raise RuntimeError(f"creating the database failed (exit {single.returncode}): {_tail(log_path)}")
    log(f"supabase-storage: initdb took {time.monotonic() - started:.1f} s")
    port = _free_port()
    with open(log_path, "ab") as out:
        process = subprocess.Popen(
            [postgres, "-D", str(data), "-p", str(port), "-k", str(folder), "-c", "listen_addresses=127.0.0.1",
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=_die_with_parent, **drop,
        )
    try:
        _wait("PostgreSQL", lambda: _postgres_ready(data), process, log_path, deadline)
        yield port, process
    finally:
        _stop(process, signal.SIGINT)  # SIGINT: fast shutdown, without waiting for clients


@contextlib.contextmanager
def supabase_storage_server(log: Log = print) -> Iterator[Server]:
    """A running Storage API server, stopped and cleaned up on exit.

    With ``WFE_SUPABASE_STORAGE_URL`` and ``WFE_SUPABASE_STORAGE_KEY`` set, that
    stack is used as it is. Otherwise the server is built if needed (Unavailable
    if it cannot be) and started with a fresh PostgreSQL and object folder;
    RuntimeError with the log's tail if either does not come up. Both processes
    are killed if the thread that entered this dies first (enter it from one
    that outlives the server: pytest's main thread does).
    """
    running = os.environ.get("WFE_SUPABASE_STORAGE_URL")
    running_key = os.environ.get("WFE_SUPABASE_STORAGE_KEY")
    if running and running_key:
        url = running.rstrip("/")
        yield Server(url, url, running_key, os.environ.get("WFE_SUPABASE_STORAGE_ANON_KEY"))
        return
    postgres_bin("initdb")  # Unavailable before anything is built or started
    built = build(log)
    started = time.monotonic()
    deadline = started + START_TIMEOUT
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wfe-supabase-storage-")))
        pg_folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wfe-supabase-pg-")))
        pg_port, pg_process = stack.enter_context(_postgres(pg_folder, deadline, log))
        secret = secrets.token_urlsafe(32)
        service_key, anon_key = role_key(secret, "service_role"), role_key(secret, "anon")
        port, admin_port = _free_port(), _free_port()
        (folder / "objects").mkdir()
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(folder),
            "NODE_ENV": "production",
            "SERVER_HOST": "127.0.0.1",
            "SERVER_PORT": str(port),
            "SERVER_ADMIN_PORT": str(admin_port),
            "AUTH_JWT_SECRET": secret,
            "AUTH_JWT_ALGORITHM": "HS256",
            "ANON_KEY": anon_key,
            "SERVICE_KEY": service_key,
            "DATABASE_URL": f"postgresql://postgres:postgres@127.0.0.1:{pg_port}/storage",
            "DB_INSTALL_ROLES": "true",
            "DB_SUPER_USER": "postgres",
            "DB_ANON_ROLE": "anon",
            "DB_SERVICE_ROLE": "service_role",
            "DB_AUTHENTICATED_ROLE": "authenticated",
            "DB_MIGRATIONS_STRATEGY": "on_request",
            "STORAGE_BACKEND": "file",
            "STORAGE_FILE_BACKEND_PATH": str(folder / "objects"),
            "STORAGE_FILE_ETAG_ALGORITHM": "md5",
            "TENANT_ID": "stub",
            "UPLOAD_FILE_SIZE_LIMIT": "524288000",
            "UPLOAD_FILE_SIZE_LIMIT_STANDARD": "52428800",
            "IMAGE_TRANSFORMATION_ENABLED": "false",
            "PG_QUEUE_ENABLE": "false",
            "RATE_LIMITER_ENABLED": "false",
            "PROMETHEUS_METRICS_ENABLED": "false",
            "OTEL_METRICS_ENABLED": "false",
            "TRACING_ENABLED": "false",
        }
        log_path = folder / "server.log"
        server_started = time.monotonic()
        with open(log_path, "wb") as out:
            process = subprocess.Popen(
                [str(node_binary(built)), "dist/start/server.js"], cwd=built / "server", env=env,
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        stack.callback(_stop, process, signal.SIGTERM)
        url = f"http://127.0.0.1:{port}"
        _wait("the Supabase Storage server", lambda: _answers(f"{url}/status"), process, log_path, deadline)
        now = time.monotonic()
        log(f"supabase-storage: server answered after {now - server_started:.1f} s "
            f"({now - started:.1f} s with PostgreSQL) at {url}")
        yield Server(url, url, service_key, anon_key, secret, (process.pid, pg_process.pid))


_shared: dict[str, Any] = {}
_shared_lock = threading.Lock()


def shared_server(log: Log = print) -> Server:
    """The one server of this process: started on first use, stopped when the process exits.

    Every user in a test session (the conformance suite's backend, the
    fixtures of each test file) shares it, each in buckets of its own, so the
    server starts once. ``Unavailable`` is remembered: asked again, it is
    raised again at once. Call it first from the main thread (see
    :func:`supabase_storage_server`).
    """
    with _shared_lock:
        if "server" in _shared:
            return _shared["server"]  # type: ignore[no-any-return]
        if "unavailable" in _shared:
            raise Unavailable(_shared["unavailable"])
        stack = contextlib.ExitStack()
        try:
            server = stack.enter_context(supabase_storage_server(log))
        except Unavailable as exc:
            _shared["unavailable"] = str(exc)
            raise
        atexit.register(stack.close)
        _shared["server"] = server
        return server
