"""Fixtures for the token-lifecycle and client-authentication tests.

``harness`` is an in-process tokenward on SQLite; ``db_harness`` runs the same tests on SQLite
and on PostgreSQL (storage-dependent behaviour: replay store, revocations, opaque tokens,
purging). PostgreSQL tests skip when it is not installed (tests/support/pg_fixtures.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.lifecycle.harness import Harness, settings_for
from tests.lifecycle.jwks_server import JwksServer
from tests.support.live import LiveServer


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # SQLAlchemy's asyncio extension and psycopg's async mode need asyncio


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/tw.db"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    if request.param == "sqlite":
        return sqlite_url
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def harness(sqlite_url: str) -> AsyncIterator[Harness]:
    h = await Harness.start(settings_for(sqlite_url))
    try:
        yield h
    finally:
        await h.close()


@pytest.fixture
async def db_harness(database_url: str) -> AsyncIterator[Harness]:
    h = await Harness.start(settings_for(database_url))
    try:
        yield h
    finally:
        await h.close()


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    """A client's key server on loopback (tests/support/live.py): counts every request."""
    server = JwksServer()
    live = LiveServer(server.app()).start()
    server.url = live.url
    try:
        yield server
    finally:
        live.stop()
