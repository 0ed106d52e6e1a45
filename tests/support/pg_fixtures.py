"""pytest fixtures backed by a real PostgreSQL server (see tests/support/postgres.py).

Register from the top-level conftest with ``pytest_plugins = ["tests.support.pg_fixtures"]``
(or ``from tests.support.pg_fixtures import *``), then:

* ``postgres_server`` (session): the running `PostgresServer`; ``.url`` is a session-wide database,
  ``.create_database(name=None, template=None)`` makes another and returns its URL.
* ``postgres_url`` (function): SQLAlchemy URL of a fresh database for this test, dropped afterwards.
* ``stoppable_postgres`` (function): a cluster of the test's own that it may ``stop()`` and
  ``start()`` again on the same port (fault tests).

Tests using either fixture are marked ``postgres`` automatically (``pytest -m "not postgres"``).
Without PostgreSQL installed they skip, unless ``TOKENWARD_TEST_POSTGRES=required`` (CI), which
turns that into an error. ``TOKENWARD_TEST_POSTGRES=off`` skips them even if it is installed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import NoReturn

import pytest

from tests.support import postgres as pg

__all__ = [
    "postgres_server",
    "postgres_url",
    "pytest_collection_modifyitems",
    "stoppable_postgres",
]


def _mode() -> str:
    mode = os.environ.get(pg.ENV_MODE, "").strip().lower()
    if mode in {"off", "0", "no", "false", "skip"}:
        pytest.skip(f"PostgreSQL tests disabled by {pg.ENV_MODE}={mode}")
    return mode


def _unavailable(mode: str, exc: pg.PostgresUnavailable) -> NoReturn:
    if mode == "required":
        pytest.fail(f"{pg.ENV_MODE}=required, but {exc}", pytrace=False)
    pytest.skip(str(exc))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[pg.PostgresServer]:
    """A PostgreSQL server shared by the whole test session."""
    mode = _mode()
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(pg.postgres_server())
        except pg.PostgresUnavailable as exc:
            _unavailable(mode, exc)
        yield server


@pytest.fixture
def stoppable_postgres() -> Iterator[pg.StoppablePostgres]:
    """A PostgreSQL cluster private to this test, which it may stop and start."""
    mode = _mode()
    with contextlib.ExitStack() as stack:
        try:
            cluster = stack.enter_context(pg.stoppable_postgres())
        except pg.PostgresUnavailable as exc:
            _unavailable(mode, exc)
        yield cluster


@pytest.fixture
def postgres_url(
    postgres_server: pg.PostgresServer, request: pytest.FixtureRequest
) -> Iterator[str]:
    """SQLAlchemy URL (postgresql+psycopg) of an empty database private to this test."""
    name = pg.database_name(request.node.name)
    url = postgres_server.create_database(name)
    yield url
    # WITH (FORCE): connections the test left open are cut rather than blocking the drop.
    postgres_server.drop_database(name)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that (directly or indirectly) needs PostgreSQL with ``postgres``."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "postgres_server" in names or "stoppable_postgres" in names:
            item.add_marker(pytest.mark.postgres)
