"""The SQL repository on SQLite and PostgreSQL: migrations, CRUD, registry version, secrets,
signing-key insert race, audit trail.

Every test runs against both databases (the ``db_url`` fixture); PostgreSQL comes from the
session's throwaway cluster (tests/support/postgres.py) and skips where it is not installed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
import sqlalchemy as sa

from tokenward.protocol.model import Api, Client
from tokenward.server.storage.sql import tables as t
from tokenward.server.storage.sql.migrate import current_revision, head_revision, sync_url, upgrade
from tokenward.server.storage.sql.repository import KeyRow, NotFoundError, Repository

pytestmark = pytest.mark.anyio

API = Api("https://api.example", "Example", frozenset({"read", "write"}))
NOW = 1_800_000_000


@pytest.fixture
async def repo(db_url: str) -> AsyncIterator[Repository]:
    assert upgrade(db_url)
    repository = Repository.from_url(db_url)
    try:
        yield repository
    finally:
        await repository.close()


def key_row(kid: str, generation: int, alg: str = "ES256", activates_at: int = NOW) -> KeyRow:
    return KeyRow(kid, alg, generation, "aesgcm$sealed", NOW, activates_at)


async def test_migrations_run_from_empty(db_url: str) -> None:
    assert current_revision(db_url) is None
    assert upgrade(db_url) is True
    assert current_revision(db_url) == head_revision(db_url)
    assert upgrade(db_url) is False  # idempotent
    engine = sa.create_engine(sync_url(db_url))
    try:
        tables = set(sa.inspect(engine).get_table_names())
        with engine.connect() as conn:
            version = conn.execute(sa.select(t.registry_state.c.version)).scalar_one()
    finally:
        engine.dispose()
    # Alembic creates exactly the tables the code reads and writes.
    assert set(t.metadata.tables) <= tables
    assert tables - set(t.metadata.tables) == {"alembic_version"}
    assert version == 0


async def test_api_crud_and_version_bumps(repo: Repository) -> None:
    v0 = await repo.version()
    await repo.create_api(API, now=NOW, descriptions={"read": "Read things"})
    assert await repo.version() == v0 + 1
    assert await repo.get_api(API.identifier) == API
    assert await repo.list_apis() == [API]
    assert (await repo.scope_descriptions())["read"] == "Read things"

    await repo.update_api(
        API.identifier, add_scopes=["admin"], remove_scopes=["write"], values={"token_ttl": 300}
    )
    assert await repo.version() == v0 + 2
    assert await repo.get_api(API.identifier) == replace(
        API, scopes=frozenset({"read", "admin"}), token_ttl=300
    )

    # A scope belongs to one API: defining it twice fails and changes nothing.
    other = Api("https://other.example", "Other", frozenset({"read"}))
    with pytest.raises(ValueError, match="scope already defined"):
        await repo.create_api(other, now=NOW, descriptions={})
    assert await repo.version() == v0 + 2
    with pytest.raises(NotFoundError):
        await repo.get_api(other.identifier)

    await repo.delete_api(API.identifier)
    assert await repo.version() == v0 + 3
    assert await repo.list_apis() == []
    assert await repo.scope_descriptions() == {}
    for missing in (repo.delete_api(API.identifier), repo.update_api(API.identifier)):
        with pytest.raises(NotFoundError):
            await missing


async def test_client_crud_and_registry_snapshot(repo: Repository) -> None:
    await repo.create_api(API, now=NOW, descriptions={})
    client = Client(
        "c1",
        "Billing",
        scopes=frozenset({"read"}),
        default_scopes=frozenset({"read"}),
        apis=frozenset({API.identifier}),
        token_ttl=299,
        token_format="jwt",
        jwks={"keys": []},
        created_at=NOW,
    )
    v0 = await repo.version()
    await repo.create_client(client, now=NOW)
    assert await repo.version() == v0 + 1
    assert await repo.get_client("c1") == client
    assert await repo.list_clients() == [client]

    updated = replace(client, enabled=False, scopes=frozenset({"read", "write"}), name="B2")
    await repo.save_client(updated, now=NOW + 1)
    assert await repo.version() == v0 + 2
    assert await repo.get_client("c1") == updated

    registry = await repo.load_registry()
    assert registry.version == v0 + 2
    assert registry.clients == {"c1": updated}
    assert registry.apis == {API.identifier: API}
    assert registry.scope_api == {"read": API.identifier, "write": API.identifier}

    await repo.delete_client("c1")
    assert await repo.version() == v0 + 3
    for missing in (
        repo.get_client("c1"),
        repo.delete_client("c1"),
        repo.save_client(updated, now=NOW),
    ):
        with pytest.raises(NotFoundError):
            await missing


async def test_secrets_add_list_expire_revoke_and_last_used(repo: Repository) -> None:
    await repo.create_client(Client("c1", "one"), now=NOW)
    first = await repo.add_secret("c1", digest="hmac-sha256$p1$aa", label="initial", now=NOW)
    second = await repo.add_secret(
        "c1", digest="hmac-sha256$p1$bb", label="rotation", now=NOW + 1, expires_at=NOW + 100
    )
    assert first.id != second.id
    client = await repo.get_client("c1")
    assert client.secrets == (first, second)  # ordered by creation
    assert second.expires_at == NOW + 100

    # Write-behind of last-used stamps: no version bump, the hot path does not read them.
    version = await repo.version()
    await repo.touch_secrets({first.id: NOW + 50})
    await repo.touch_secrets({})
    assert await repo.version() == version
    stamps = {s.id: s.last_used_at for s in (await repo.get_client("c1")).secrets}
    assert stamps == {first.id: NOW + 50, second.id: None}

    await repo.expire_secret("c1", first.id, NOW + 10)
    assert await repo.version() == version + 1
    assert (await repo.get_client("c1")).secrets[0].expires_at == NOW + 10

    await repo.revoke_secret("c1", first.id)
    assert await repo.version() == version + 2
    assert [s.id for s in (await repo.get_client("c1")).secrets] == [second.id]
    for missing in (
        repo.revoke_secret("c1", first.id),
        repo.expire_secret("c1", first.id, NOW),
        repo.revoke_secret("c2", second.id),  # another client's secret id
        repo.add_secret("nosuch", digest="d", label="", now=NOW),
    ):
        with pytest.raises(NotFoundError):
            await missing


async def test_encrypted_secrets_and_cascade_on_client_delete(repo: Repository) -> None:
    await repo.create_client(Client("c1", "one"), now=NOW)
    await repo.add_secret("c1", digest="d1", label="", now=NOW, encrypted_secret="aesgcm$x")
    await repo.add_secret("c1", digest="d2", label="", now=NOW)
    assert await repo.encrypted_secrets("c1") == ["aesgcm$x"]
    await repo.delete_client("c1")
    async with repo.engine.connect() as conn:
        assert await conn.scalar(sa.select(sa.func.count()).select_from(t.client_secrets)) == 0


async def test_key_insert_race_second_insert_loses(repo: Repository) -> None:
    """Two instances rotating at once: same alg + generation twice -> the second gets False."""
    version = await repo.version()
    assert await repo.insert_key(key_row("k1", 1)) is True
    assert await repo.insert_key(key_row("k1-other", 1)) is False
    assert await repo.version() == version + 1  # the failed insert bumped nothing
    assert await repo.insert_key(key_row("k2", 2)) is True
    assert await repo.insert_key(key_row("r1", 1, alg="RS256")) is True
    assert [(r.kid, r.alg, r.generation) for r in await repo.list_keys()] == [
        ("k1", "ES256", 1),
        ("k2", "ES256", 2),
        ("r1", "RS256", 1),
    ]
    await repo.delete_keys(["k1", "r1"])
    await repo.delete_keys([])
    assert [r.kid for r in await repo.list_keys()] == ["k2"]


async def test_concurrent_key_inserts_exactly_one_wins(repo: Repository) -> None:
    results = await asyncio.gather(*(repo.insert_key(key_row(f"k{i}", 7)) for i in range(5)))
    assert sorted(results) == [False, False, False, False, True]
    assert len(await repo.list_keys()) == 1


async def test_audit_events_round_trip(repo: Repository) -> None:
    await repo.add_audit([])
    events = [
        {"at": NOW, "event": "client.created", "actor": "cli", "data": {"client_id": "c1"}},
        {"at": NOW + 1, "event": "secret.added", "actor": "cli", "data": {"secret_id": "s"}},
    ]
    await repo.add_audit(events)
    listed = await repo.list_audit(limit=10)
    assert [(e["event"], e["data"]) for e in listed] == [
        ("secret.added", {"secret_id": "s"}),
        ("client.created", {"client_id": "c1"}),
    ]
    assert len(await repo.list_audit(limit=1)) == 1
