"""Pytest fixtures over the real Supabase Storage server, for the test modules that talk to it.

``tests/conftest.py`` imports them, so every test module can ask for ``server`` and ``bucket``.
"""

from __future__ import annotations

import uuid

import pytest
from servers.supabase_storage import Server, Unavailable, role_key, shared_server

WRONG_KEY = role_key("wfe-not-the-servers-secret-0123456789", "service_role")  # signed with another secret


def server_or_skip() -> Server:
    """The session's server, started once; the test is skipped, saying why, where it cannot be had."""
    try:
        return shared_server()
    except Unavailable as exc:
        pytest.skip(str(exc))


def new_bucket(server: Server, prefix: str = "wfe") -> str:
    """A new private bucket: tests never see each other's objects."""
    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    server.create_bucket(name)
    return name


@pytest.fixture(scope="session")
def server() -> Server:
    return server_or_skip()


@pytest.fixture
def bucket(server: Server) -> str:
    return new_bucket(server)
