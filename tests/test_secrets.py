"""Credentials never leave the process: not in output, logs, errors, reprs or anything stored; on every backend.

Each backend runs the example workflow at ``--log-level debug`` with a log
file, a failing workflow with ``--debug`` (tracebacks shown), and a store
whose bucket does not exist; the recognisable fake secrets, given through
the environment and through ``--store-option``, must appear nowhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import wfe

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "sales" / "workflow.yaml"
AWS_KEY_ID = "AKIAWFEFAKEKEYID7Q3Z"
AWS_SECRET = "wfeFAKEawsSECRET+0123456789abcdefghijklmn"
SUPABASE_KEY = "eyJhbGciOiJIUzI1NiJ9.e30.wfeFAKEsecretsTESTkey42"
SECRETS = (AWS_KEY_ID, AWS_SECRET, SUPABASE_KEY, SUPABASE_KEY.rsplit(".", 1)[1])


@dataclass
class Backend:
    """How to reach one store: its URL, the CLI options and environment, and its raw stored bytes."""

    url: str
    bad_url: str
    env: dict[str, str]
    cli_options: list[str]
    options: dict[str, str]
    stored: Callable[[], list[bytes]]
    extra: list[str] = field(default_factory=list)  # this backend's own secrets, beyond SECRETS


def _local(tmp_path: Path) -> Iterator[Backend]:
    root = tmp_path / "store"

    def stored() -> list[bytes]:
        return [p.read_bytes() for p in root.rglob("*") if p.is_file()]

    # secrets in the environment that a local store has no use for: still never echoed
    (tmp_path / "a-file").write_text("not a folder")  # so the "bad" store cannot be created
    env = {"AWS_ACCESS_KEY_ID": AWS_KEY_ID, "AWS_SECRET_ACCESS_KEY": AWS_SECRET, "SUPABASE_KEY": SUPABASE_KEY}
    yield Backend(str(root), str(tmp_path / "a-file" / "store"), env, [], {}, stored)


def _s3(tmp_path: Path, *, via_env: bool) -> Iterator[Backend]:
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    from servers.s3 import s3_server

    with s3_server() as server:
        raw = server.filesystem()

        def stored() -> list[bytes]:
            return [raw.cat_file(path) for path in raw.find(server.bucket)]

        endpoint = ["--store-option", f"endpoint_url={server.endpoint_url}"]
        options = {"endpoint_url": server.endpoint_url, "key": AWS_KEY_ID, "secret": AWS_SECRET}
        if via_env:
            env = {"AWS_ACCESS_KEY_ID": AWS_KEY_ID, "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
                   "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
            cli = endpoint
        else:
            env = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_DEFAULT_REGION": "us-east-1"}
            cli = [*endpoint, "--store-option", f"key={AWS_KEY_ID}", "--store-option", f"secret={AWS_SECRET}"]
        yield Backend(server.url("secrets"), "s3://no-such-bucket/x", env, cli, options, stored)


def _supabase(tmp_path: Path, *, via_env: bool) -> Iterator[Backend]:
    """The real Supabase Storage server (shared by the session); its keys are secrets to keep, too."""
    pytest.importorskip("wfe_supabase")
    from servers.supabase_fixtures import new_bucket, server_or_skip

    server = server_or_skip()
    bucket = new_bucket(server, "secrets")

    def stored() -> list[bytes]:
        return [server.download(bucket, key) for key in server.keys(bucket)]

    key = server.service_key
    endpoint = ["--store-option", f"storage_url={server.storage_url}"]  # a bare server: no gateway at a project URL
    if via_env:
        env = {"SUPABASE_URL": "", "SUPABASE_KEY": key}
        cli = endpoint
    else:
        env = {"SUPABASE_URL": "", "SUPABASE_KEY": ""}
        cli = [*endpoint, "--store-option", f"key={key}"]
    options = {"storage_url": server.storage_url, "key": key}
    secrets = [key, key.rsplit(".", 1)[1]]  # the whole key and its signature
    yield Backend(f"supabase://{bucket}/secrets", "supabase://no-such-bucket/x", env, cli, options, stored, secrets)


def _azure(tmp_path: Path, *, via_env: bool) -> Iterator[Backend]:
    """Azurite through adlfs (the generic path): the account key sits inside a connection string."""
    pytest.importorskip("adlfs")
    from servers.azurite import ACCOUNT_KEY, Unavailable, azurite_server

    try:
        server_context = azurite_server()
        server = server_context.__enter__()
    except Unavailable as exc:
        pytest.skip(f"Azurite is not available here: {exc}")
    try:
        raw = server.filesystem()

        def stored() -> list[bytes]:
            return [raw.cat_file(path) for path in raw.find(server.container)]

        connection = server.connection_string
        if via_env:
            env, cli = {"AZURE_STORAGE_CONNECTION_STRING": connection}, []
        else:
            env, cli = {"AZURE_STORAGE_CONNECTION_STRING": ""}, ["--store-option", f"connection_string={connection}"]
        yield Backend(server.url("secrets"), "abfs://no-such-container/x", env, cli, server.options, stored,
                      [ACCOUNT_KEY, ACCOUNT_KEY[:40]])  # fmt: skip
    finally:
        server_context.__exit__(None, None, None)


BACKENDS: dict[str, Callable[[Path], Iterator[Backend]]] = {
    "local": _local,
    "s3-env": lambda tmp: _s3(tmp, via_env=True),
    "s3-option": lambda tmp: _s3(tmp, via_env=False),
    "azure-env": lambda tmp: _azure(tmp, via_env=True),
    "azure-option": lambda tmp: _azure(tmp, via_env=False),
    "supabase-env": lambda tmp: _supabase(tmp, via_env=True),
    "supabase-option": lambda tmp: _supabase(tmp, via_env=False),
}

FAILING = textwrap.dedent(
    """
    import os
    import wfe

    @wfe.function(outputs="application/json")
    def explode(*, why: str) -> dict:
        raise RuntimeError(f"failed on purpose: {why}")
    """
)


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    yield from BACKENDS[request.param](tmp_path)


def _cli(backend: Backend, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SUPABASE_", "WFE_STORE"))}
    return subprocess.run(
        [sys.executable, "-m", "wfe", *args], cwd=cwd, env={**env, **backend.env},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_secrets_never_leak(backend: Backend, tmp_path: Path) -> None:
    (tmp_path / "failing").mkdir()
    (tmp_path / "failing" / "failing_functions.py").write_text(FAILING)
    (tmp_path / "failing" / "workflow.yaml").write_text(
        "name: failing\nmodules: [failing_functions]\nnodes:\n"
        "  - {id: boom, function: explode, config: {why: no reason}}\n"
    )
    log_file = tmp_path / "wfe.log"
    logging_flags = ["--log-level", "debug", "--log-file", str(log_file)]
    store_flags = ["--store", backend.url, *backend.cli_options]
    ok = _cli(backend, tmp_path, "run", str(EXAMPLE), *store_flags, *logging_flags, "--json")
    assert ok.returncode == 0, ok.stderr
    failed = _cli(backend, tmp_path, "run", str(tmp_path / "failing" / "workflow.yaml"), *store_flags,
                  *logging_flags, "--debug")  # fmt: skip
    assert failed.returncode != 0 and "failed on purpose" in failed.stdout + failed.stderr
    bad = _cli(backend, tmp_path, "run", str(EXAMPLE), "--store", backend.bad_url, *backend.cli_options,
               *logging_flags)  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: "), bad.stderr
    listing = _cli(backend, tmp_path, "runs", *store_flags)
    assert listing.returncode == 0, listing.stderr

    runs = {"ok": ok, "failed": failed, "bad": bad, "runs": listing}
    texts = {
        f"{name} {stream}": getattr(result, "std" + stream)
        for name, result in runs.items()
        for stream in ("out", "err")
    }
    texts["log file"] = log_file.read_text()
    assert "DEBUG" in texts["log file"]  # debug logging really was on
    store = wfe.open_store(backend.url, **backend.options)
    texts["repr"] = f"{store!r} {store} {store.io!r} {store.blobs!r}"
    stored = backend.stored()
    assert any(b'"run_id"' in data for data in stored)  # manifests are among the stored objects
    for secret in (*SECRETS, *backend.extra):
        for where, text in texts.items():
            assert secret not in text, f"{secret!r} shown in {where}"
        for data in stored:
            assert secret.encode() not in data, "a secret was stored"
