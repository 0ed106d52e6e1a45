"""The SQL repository on SQLite and PostgreSQL: migrations, CRUD, registry version, secrets,
signing-key insert race, audit trail (each change written with its audit record).

Every test runs against both databases (the ``db_url`` fixture); PostgreSQL comes from the
session's throwaway cluster (tests/support/postgres.py) and skips where it is not installed.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
import sqlalchemy as sa

from tokenward.protocol.model import Api, Client
from tokenward.server.storage.sql import tables as t
from tokenward.server.storage.sql.migrate import (
    HEAD,
    REVISIONS,
    alembic_config,
    current_revision,
    sync_url,
    upgrade,
)
from tokenward.server.storage.sql.repository import Repository
from tokenward.server.stores import (
    AuditQuery,
    AuditRecord,
    ConflictError,
    KeyRow,
    NewSecretRow,
    NotFoundError,
)

pytestmark = pytest.mark.anyio

API = Api("https://api.example", "Example", frozenset({"read", "write"}))
NOW = 1_800_000_000


def audit(event: str, **data: object) -> AuditRecord:
    return AuditRecord(at=NOW, event=event, actor="test", data=data)


def secret(
    sid: str, digest: str = "hmac-sha256$p1$aa", *, at: int = NOW, **extra: object
) -> NewSecretRow:
    return NewSecretRow(sid, digest, label="", created_at=at, **extra)  # type: ignore[arg-type]


async def events(repo: Repository) -> list[str]:
    return [e["event"] for e in await repo.list_audit(AuditQuery(limit=100))]


def key_row(kid: str, generation: int, alg: str = "ES256", activates_at: int = NOW) -> KeyRow:
    return KeyRow(kid, alg, generation, "aesgcm$sealed", NOW, activates_at)


def test_the_listed_revision_chain_is_alembics() -> None:
    """``REVISIONS`` lets a start read the schema revision without importing Alembic; it must
    be Alembic's chain exactly, oldest first (a new migration file fails this until listed)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    chain = [r.revision for r in script.walk_revisions()]
    assert tuple(reversed(chain)) == REVISIONS
    assert script.get_current_head() == HEAD


async def test_migrations_run_from_empty(db_url: str) -> None:
    assert current_revision(db_url) is None
    assert upgrade(db_url) is True
    assert current_revision(db_url) == HEAD
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
    await repo.create_api(
        API, now=NOW, descriptions={"read": "Read things"}, audit=audit("api.created")
    )
    assert await repo.version() == v0 + 1
    assert await events(repo) == ["api.created"]
    assert await repo.get_api(API.identifier) == API
    assert await repo.list_apis() == [API]
    assert (await repo.scope_descriptions())["read"] == "Read things"

    await repo.update_api(
        API.identifier,
        add_scopes=["admin"],
        remove_scopes=["write"],
        values={"token_ttl": 300},
        audit=audit("api.updated"),
    )
    assert await repo.version() == v0 + 2
    assert await repo.get_api(API.identifier) == replace(
        API, scopes=frozenset({"read", "admin"}), token_ttl=300
    )

    # A scope belongs to one API: defining it twice fails and changes nothing.
    other = Api("https://other.example", "Other", frozenset({"read"}))
    with pytest.raises(ConflictError, match="scope already defined"):
        await repo.create_api(other, now=NOW, descriptions={}, audit=audit("api.created"))
    with pytest.raises(ConflictError, match="already exists"):
        await repo.create_api(API, now=NOW, descriptions={}, audit=audit("api.created"))
    assert await repo.version() == v0 + 2
    assert await events(repo) == ["api.updated", "api.created"]  # nothing for the failures
    with pytest.raises(NotFoundError):
        await repo.get_api(other.identifier)

    await repo.delete_api(API.identifier, audit=audit("api.deleted"))
    assert await repo.version() == v0 + 3
    assert await repo.list_apis() == []
    assert await repo.scope_descriptions() == {}
    for missing in (
        repo.delete_api(API.identifier, audit=audit("x")),
        repo.update_api(
            API.identifier, add_scopes=[], remove_scopes=[], values={}, audit=audit("x")
        ),
    ):
        with pytest.raises(NotFoundError):
            await missing
    assert "x" not in await events(repo)


async def test_client_crud_and_registry_snapshot(repo: Repository) -> None:
    await repo.create_api(API, now=NOW, descriptions={}, audit=audit("api.created"))
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
    await repo.create_client(client, now=NOW, secret=None, audit=audit("client.created"))
    assert await repo.version() == v0 + 1
    assert await repo.get_client("c1") == client
    assert await repo.list_clients() == [client]
    with pytest.raises(ConflictError):
        await repo.create_client(client, now=NOW, secret=None, audit=audit("client.created"))

    updated = replace(client, enabled=False, scopes=frozenset({"read", "write"}), name="B2")
    await repo.save_client(updated, now=NOW + 1, audit=audit("client.updated"))
    assert await repo.version() == v0 + 2
    assert await repo.get_client("c1") == updated

    registry = await repo.load_registry()
    assert registry.version == v0 + 2
    assert registry.clients == {"c1": updated}
    assert registry.apis == {API.identifier: API}
    assert registry.scope_api == {"read": API.identifier, "write": API.identifier}

    await repo.delete_client("c1", audit=audit("client.deleted"))
    assert await repo.version() == v0 + 3
    for missing in (
        repo.get_client("c1"),
        repo.delete_client("c1", audit=audit("x")),
        repo.save_client(updated, now=NOW, audit=audit("x")),
    ):
        with pytest.raises(NotFoundError):
            await missing
    assert await events(repo) == [
        "client.deleted",
        "client.updated",
        "client.created",
        "api.created",
    ]


async def test_a_client_and_its_first_secret_are_one_write(repo: Repository) -> None:
    """Created together, in one transaction and one version bump: no worker can load the
    client without its secret."""
    v0 = await repo.version()
    row = secret("sec_1", encrypted_secret="aesgcm$x")
    await repo.create_client(Client("c1", "one"), now=NOW, secret=row, audit=audit("c"))
    assert await repo.version() == v0 + 1
    registry = await repo.load_registry()
    assert [s.id for s in registry.clients["c1"].secrets] == ["sec_1"]
    assert registry.clients["c1"].secrets[0].encrypted == "aesgcm$x"
    # A failed creation writes neither.
    with pytest.raises(ConflictError):
        await repo.create_client(
            Client("c1", "dup"), now=NOW, secret=secret("sec_2"), audit=audit("c")
        )
    assert [s.id for s in (await repo.get_client("c1")).secrets] == ["sec_1"]


async def test_secrets_add_list_expire_revoke_and_last_used(repo: Repository) -> None:
    await repo.create_client(Client("c1", "one"), now=NOW, secret=None, audit=audit("c"))
    first = await repo.add_secret("c1", secret("sec_a"), audit=audit("secret.added"))
    second = await repo.add_secret(
        "c1",
        secret("sec_b", "hmac-sha256$p1$bb", at=NOW + 1, expires_at=NOW + 100),
        audit=audit("secret.added"),
    )
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

    await repo.revoke_secret("c1", first.id, expires_at=NOW + 10, audit=audit("r"))
    assert await repo.version() == version + 1
    assert (await repo.get_client("c1")).secrets[0].expires_at == NOW + 10

    await repo.revoke_secret("c1", first.id, expires_at=None, audit=audit("r"))
    assert await repo.version() == version + 2
    assert [s.id for s in (await repo.get_client("c1")).secrets] == [second.id]
    for missing in (
        repo.revoke_secret("c1", first.id, expires_at=None, audit=audit("x")),
        repo.revoke_secret("c1", first.id, expires_at=NOW, audit=audit("x")),
        repo.revoke_secret("c2", second.id, expires_at=None, audit=audit("x")),  # not c2's
        repo.add_secret("nosuch", secret("sec_c"), audit=audit("x")),
    ):
        with pytest.raises(NotFoundError):
            await missing


async def test_secrets_go_with_their_client(repo: Repository) -> None:
    await repo.create_client(Client("c1", "one"), now=NOW, secret=secret("s1"), audit=audit("c"))
    await repo.add_secret("c1", secret("s2", "d2"), audit=audit("a"))
    await repo.delete_client("c1", audit=audit("d"))
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


async def test_audit_trail_filters_and_pages(repo: Repository) -> None:
    await repo.add_audit([])
    await repo.add_audit(
        [
            AuditRecord(NOW, "client.created", "cli", {"client_id": "c1"}),
            AuditRecord(NOW + 1, "secret.added", "api:ops", {"client_id": "c1", "secret_id": "s"}),
            AuditRecord(NOW + 2, "client.created", "console:alice", {"client_id": "c2"}),
        ]
    )

    async def listed(**filters: object) -> list[tuple[str, str]]:
        rows = await repo.list_audit(AuditQuery(**filters))  # type: ignore[arg-type]
        return [(e["event"], e["actor"]) for e in rows]

    everything = [
        ("client.created", "console:alice"),
        ("secret.added", "api:ops"),
        ("client.created", "cli"),
    ]
    assert await listed() == everything  # newest first
    assert await listed(limit=1) == everything[:1]
    assert await listed(client_id="c1") == everything[1:]
    assert await listed(event="client.created") == [everything[0], everything[2]]
    assert await listed(actor="api:ops") == [everything[1]]
    assert await listed(since=NOW + 1, until=NOW + 2) == [everything[1]]
    newest = (await repo.list_audit(AuditQuery(limit=1)))[0]
    assert await listed(before_id=newest["id"]) == everything[1:]
    assert (await repo.list_audit(AuditQuery(limit=1)))[0]["data"] == {"client_id": "c2"}
