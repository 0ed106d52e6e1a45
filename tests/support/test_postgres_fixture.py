"""The throwaway PostgreSQL server works for sync and async SQLAlchemy, and isolates tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from tests.support import pg_fixtures
from tests.support import postgres as pg

# Self-contained: works whether or not the top-level conftest registers pg_fixtures too.
postgres_server = pg_fixtures.postgres_server
postgres_url = pg_fixtures.postgres_url

_seen_urls: set[str] = set()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # psycopg's async mode and SQLAlchemy's asyncio extension need asyncio


def test_url_shape(postgres_server: pg.PostgresServer, postgres_url: str) -> None:
    url = sa.make_url(postgres_url)
    assert url.drivername == "postgresql+psycopg"
    assert url.database
    assert url.database != postgres_server.database
    if not postgres_server.external:
        assert url.host == "127.0.0.1"
        assert url.username == "postgres"
        assert url.password is None


def test_sync_engine_roundtrip(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE clients (id text PRIMARY KEY, secret text)"))
            conn.execute(
                sa.text("INSERT INTO clients VALUES (:id, :secret)"),
                [{"id": "a", "secret": "x"}, {"id": "b", "secret": "y"}],
            )
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, secret FROM clients ORDER BY id")).all()
            assert [tuple(r) for r in rows] == [("a", "x"), ("b", "y")]
            assert conn.execute(sa.text("SELECT current_database()")).scalar_one() == (
                sa.make_url(postgres_url).database
            )
    finally:
        engine.dispose()


@pytest.mark.anyio
async def test_async_engine_roundtrip(postgres_url: str) -> None:
    engine = create_async_engine(postgres_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("CREATE TABLE tokens (jti text PRIMARY KEY, exp bigint)"))
            await conn.execute(
                sa.text("INSERT INTO tokens VALUES (:jti, :exp)"), {"jti": "t1", "exp": 42}
            )
        async with engine.connect() as conn:
            result = await conn.execute(sa.text("SELECT exp FROM tokens WHERE jti = 't1'"))
            assert result.scalar_one() == 42
    finally:
        await engine.dispose()


@pytest.mark.parametrize("run", [1, 2])
def test_each_test_gets_a_fresh_database(postgres_url: str, run: int) -> None:
    assert postgres_url not in _seen_urls
    _seen_urls.add(postgres_url)
    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            assert not sa.inspect(conn).has_table("marker")  # nothing leaked from the other run
            conn.execute(sa.text("CREATE TABLE marker (run int)"))
            conn.execute(sa.text("INSERT INTO marker VALUES (:run)"), {"run": run})
    finally:
        engine.dispose()


def test_create_database_isolated_and_from_template(
    postgres_server: pg.PostgresServer,
    postgres_url: str,
) -> None:
    template = sa.make_url(postgres_url).database
    assert template
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE seeded (x int)"))
        conn.execute(sa.text("INSERT INTO seeded VALUES (7)"))
    engine.dispose()  # a template must have no open connections

    empty_url = postgres_server.create_database()
    copy_url = postgres_server.create_database(template=template)
    try:
        assert len({postgres_url, empty_url, copy_url}) == 3
        for url, expect_table in [(empty_url, False), (copy_url, True)]:
            other = sa.create_engine(url)
            try:
                with other.connect() as conn:
                    assert sa.inspect(conn).has_table("seeded") is expect_table
                    if expect_table:
                        assert conn.execute(sa.text("SELECT x FROM seeded")).scalar_one() == 7
            finally:
                other.dispose()
    finally:
        for url in (empty_url, copy_url):
            name = sa.make_url(url).database
            assert name
            postgres_server.drop_database(name)


def test_session_database_is_usable(postgres_server: pg.PostgresServer) -> None:
    engine = sa.create_engine(postgres_server.url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT current_database()")).scalar_one() == (
                postgres_server.database
            )
            if not postgres_server.external:
                settings = {
                    name: conn.execute(sa.text(f"SHOW {name}")).scalar_one()
                    for name in ("listen_addresses", "fsync", "synchronous_commit")
                }
                assert settings == {
                    "listen_addresses": "127.0.0.1",
                    "fsync": "off",
                    "synchronous_commit": "off",
                }
    finally:
        engine.dispose()


def test_missing_binaries_raise_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(pg.ENV_URL, raising=False)
    monkeypatch.setenv(pg.ENV_BINDIR, str(tmp_path))
    with pytest.raises(pg.PostgresUnavailable), pg.postgres_server():
        pass
