"""Secrets are masked by what they are, wherever they sit in a text, and nothing else is touched.

The end-to-end side (a run's output, logs, errors, reprs and stored records
on every backend, with secrets in options whose names say nothing) is
``tests/test_secrets.py``; here, the masking itself, over generated texts.
"""

from __future__ import annotations

import logging
import string
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import wfe
from wfe._redact import MASK, is_secret_option, redact, redact_options

B64 = string.ascii_letters + string.digits + "+/"
URLSAFE = string.ascii_letters + string.digits + "-_"


def _mixed(text: str) -> bool:
    return any(c.isupper() for c in text) and any(c.islower() for c in text) and any(c.isdigit() for c in text)


account_keys = st.text(B64, min_size=86, max_size=86).filter(_mixed).map(lambda k: k + "==")
passwords = st.text(string.ascii_letters + string.digits + "!$%*+,;=~-._", min_size=6, max_size=30)
signatures = st.text(string.ascii_letters + string.digits + "%", min_size=20, max_size=60)
jwts = st.tuples(st.text(URLSAFE, min_size=10, max_size=40), st.text(URLSAFE, min_size=4, max_size=40),
                 st.text(URLSAFE, min_size=20, max_size=43)).map(lambda p: f"eyJ{p[0]}.{p[1]}.{p[2]}")  # fmt: skip
aws_ids = st.text(string.ascii_uppercase + string.digits, min_size=16, max_size=16).map(lambda t: "AKIA" + t)
hosts = st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z]{2,5})?(:[0-9]{2,5})?", fullmatch=True)
users = st.from_regex(r"[a-z][a-z0-9._-]{0,15}", fullmatch=True)


@st.composite
def secret_in_text(draw: st.DrawFn) -> tuple[str, str]:
    """``(text, secret)``: a secret of some kind, written the way it appears in the wild, inside other text."""
    kind = draw(st.sampled_from(["connection", "url", "sas", "jwt", "aws", "key"]))
    if kind == "connection":
        secret = draw(account_keys)
        field = draw(st.sampled_from(["AccountKey", "accountkey", "SharedAccessKey", "Password", "Pwd"]))
        text = (f"DefaultEndpointsProtocol=http;AccountName={draw(users)};{field}={secret};"
                f"BlobEndpoint=http://{draw(hosts)}/x;")  # fmt: skip
    elif kind == "url":
        secret = draw(passwords)
        scheme = draw(st.sampled_from(["https", "http", "sftp", "webdav", "postgresql", "s3"]))
        text = f"{scheme}://{draw(users)}:{secret}@{draw(hosts)}/some/path"
    elif kind == "sas":
        secret = draw(signatures)
        text = f"https://{draw(hosts)}/container/blob?sv=2022-11-02&se=2030-01-01&sp=rcw&sig={secret}"
    elif kind == "jwt":
        secret = draw(jwts)
        text = f"Authorization: Bearer {secret}"
    elif kind == "aws":
        secret = draw(aws_ids)
        text = f"credentials {secret} rejected"
    else:
        secret = draw(account_keys)
        text = f"account key {secret}"
    before = draw(st.text(alphabet=string.printable, max_size=40))
    after = draw(st.text(alphabet=string.printable, max_size=40))
    separator = draw(st.sampled_from([" ", "\n", ": ", " (", "'"]))
    whole = f"{before}{separator}{text}{separator[::-1]}{after}"
    assume(whole.count(secret) == 1)  # the text around it does not happen to hold it again
    return whole, secret


@given(secret_in_text())
def test_a_secret_anywhere_in_a_text_is_masked(case: tuple[str, str]) -> None:
    text, secret = case
    shown = redact(text)
    assert secret not in shown
    assert MASK in shown
    assert redact(shown) == shown  # masking twice changes nothing more


digests = st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda h: f"sha256:{h}")
paths = st.lists(st.from_regex(r"[A-Za-z0-9_.-]{1,30}", fullmatch=True), min_size=1, max_size=6).map("/".join)
plain_urls = st.tuples(st.sampled_from(["s3", "https", "memory", "file"]), hosts, paths).map(
    lambda p: f"{p[0]}://{p[1]}/{p[2]}"
)


@given(st.lists(st.one_of(digests, paths, plain_urls, st.from_regex(r"[a-z ]{0,30}", fullmatch=True)), max_size=8))
def test_digests_paths_and_urls_without_secrets_are_left_as_they_are(parts: list[str]) -> None:
    text = " ".join(parts)
    assert redact(text) == text


def test_options_are_masked_by_name_and_by_content() -> None:
    connection = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                  "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
                  "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;")  # fmt: skip
    shown = redact_options({"conn": connection, "endpoint_url": "http://me:s3cr3tpass@127.0.0.1:9000",
                            "api_token": "abc", "region": "eu-west-1", "retries": 3})  # fmt: skip
    assert "Eby8vdM02" not in str(shown) and "s3cr3tpass" not in str(shown)
    assert shown["api_token"] == MASK and shown["region"] == "eu-west-1" and shown["retries"] == 3
    assert shown["conn"].startswith("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=***;")
    assert is_secret_option("connection_string") and is_secret_option("account_key")
    assert not is_secret_option("endpoint_url") and not is_secret_option("region")


def test_a_store_repr_masks_a_password_in_its_url_and_options(tmp_path: Path) -> None:
    store = wfe.open_store(f"memory://user:hunter2pass@somewhere/{tmp_path.name}",
                           note="https://bob:alsoSecret9@host/x")  # fmt: skip
    shown = f"{store!r} {store.io!r}"
    assert "hunter2pass" not in shown and "alsoSecret9" not in shown
    assert "user:***@somewhere" in shown


def test_log_lines_and_their_tracebacks_are_masked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from wfe.cli._logging_setup import configure_logging

    log_file = tmp_path / "wfe.log"
    configure_logging("debug", str(log_file))
    logger = logging.getLogger("wfe.test")
    try:
        raise RuntimeError("connect to https://bob:tops3cretpw@db.example/x failed")
    except RuntimeError:
        logger.exception("with AccountKey=%s", "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq")
    finally:
        for name in ("wfe", "wfe_s3", "wfe_supabase"):
            for handler in list(logging.getLogger(name).handlers):
                logging.getLogger(name).removeHandler(handler)
                handler.close()
    text = log_file.read_text() + capsys.readouterr().err
    assert "RuntimeError" in text and "AccountKey=***" in text
    assert "tops3cretpw" not in text and "Eby8vdM02" not in text


@pytest.mark.parametrize(
    "args",
    [
        ["--store", "s3://bucket/x", "--store-option", "endpoint_url=http://wfeuser:wfeFAKEpass42@127.0.0.1:9"],
        ["--store", "webdav://wfeuser:wfeFAKEpass42@127.0.0.1:9/x"],
        ["--store", "sftp://wfeuser:wfeFAKEpass42@127.0.0.1:9/x"],
    ],
    ids=["s3-endpoint", "webdav-url", "sftp-url"],
)
def test_a_password_in_a_url_or_endpoint_never_reaches_the_output(args: list[str], tmp_path: Path) -> None:
    from _cli import run_in_process

    done = run_in_process(["runs", *args], tmp_path, {"PATH": "/usr/bin:/bin"})
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith("error: "), done.stderr
    assert "unrecognized arguments" not in done.stderr and "usage:" not in done.stderr
    assert "wfeFAKEpass42" not in done.stdout + done.stderr
