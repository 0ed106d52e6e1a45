"""Fixtures for the authorization server tests.

* ``tw`` (module): the real app in-process, inside its lifespan, with the standard registry of
  tests/server/harness.py on a fresh SQLite database. A module changes the settings by
  overriding the ``tw_settings_overrides`` fixture.
* ``db_url`` (function, parametrized): an empty SQLite or PostgreSQL database URL, for the
  storage and rotation tests that must pass on both.

psycopg's async mode and the service's background tasks need asyncio: no trio here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.harness import InProcess, in_process, make_settings, seed_registry
from tokenward.server.storage.sql.migrate import upgrade
from tokenward.server.storage.sql.repository import Repository


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def tw_settings_overrides() -> dict[str, Any]:
    return {}


@pytest.fixture(scope="module")
async def tw(
    tmp_path_factory: pytest.TempPathFactory, tw_settings_overrides: dict[str, Any]
) -> AsyncIterator[InProcess]:
    home = tmp_path_factory.mktemp("tw")
    settings = make_settings(home, **tw_settings_overrides)
    async with in_process(settings) as running:
        await seed_registry(running)
        await running.sync()
        yield running


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def repo(db_url: str) -> AsyncIterator[Repository]:
    """The SQL repository on a freshly migrated database (SQLite, and PostgreSQL when run)."""
    assert upgrade(db_url)
    repository = Repository.from_url(db_url)
    try:
        yield repository
    finally:
        await repository.close()
