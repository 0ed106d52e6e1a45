"""The SQL adapter: one class implementing every storage port of ``server/stores.py``.

Every write that changes what the token endpoint sees bumps ``registry_state.version`` in the
same transaction; workers poll that one integer and reload when it moves. Every administrative
write stores its audit record in that same transaction: a change without its audit event, or a
client without the secret it was created with, cannot be observed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from tokenward.protocol.introspection import ClientFacts
from tokenward.protocol.model import Api, Client, ClientSecret, Registry
from tokenward.server.storage.sql import tables as t
from tokenward.server.storage.sql.group_commit import GroupCommit
from tokenward.server.storage.sql.migrate import ensure_sqlite_dir, sync_url
from tokenward.server.storage.sql.notify import CHANNEL, PgRegistryChanges
from tokenward.server.storage.sql.writer import WriterThread
from tokenward.server.stores import (
    AuditQuery,
    AuditRecord,
    ConcurrentChangeError,
    ConflictError,
    CountIncrement,
    KeyRow,
    NewSecretRow,
    NotFoundError,
    OperatorRow,
    SessionRow,
    Stores,
    UsageCount,
)

__all__ = ["Repository", "async_url", "create_engine_for", "sql_stores"]

#: Most keys one exchange reads back by name (the hot rows come back regardless).
_MAX_READ_KEYS = 2000


def async_url(url: str) -> str:
    """The async driver URL: aiosqlite for SQLite, psycopg 3 for PostgreSQL."""
    if url.startswith("sqlite:"):
        return "sqlite+aiosqlite:" + url.removeprefix("sqlite:")
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def create_engine_for(url: str) -> AsyncEngine:
    url = async_url(url)
    if url.startswith("sqlite"):
        ensure_sqlite_dir(url)
        engine = create_async_engine(url)
        _sqlite_connect_pragmas(engine.sync_engine)
        return engine
    return create_async_engine(url, pool_size=5, max_overflow=5, pool_pre_ping=True)


def _sqlite_connect_pragmas(engine: sa.Engine) -> None:
    event.listen(engine, "connect", _sqlite_pragmas)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _api(row: sa.Row[Any], scope_names: Iterable[str]) -> Api:
    return Api(
        identifier=row.identifier,
        name=row.name,
        scopes=frozenset(scope_names),
        token_ttl=row.token_ttl,
        signing_alg=row.signing_alg,
        token_format=row.token_format,
    )


def _secret(row: sa.Row[Any]) -> ClientSecret:
    return ClientSecret(
        id=row.id,
        digest=row.digest,
        label=row.label,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        encrypted=row.encrypted_secret,
    )


def _client(row: sa.Row[Any], client_secrets: Sequence[ClientSecret]) -> Client:
    return Client(
        client_id=row.client_id,
        name=row.name,
        enabled=row.enabled,
        auth_methods=frozenset(row.auth_methods),
        scopes=frozenset(row.scopes),
        default_scopes=None if row.default_scopes is None else frozenset(row.default_scopes),
        apis=frozenset(row.apis),
        token_ttl=row.token_ttl,
        token_format=row.token_format,
        secrets=tuple(client_secrets),
        grant_types=frozenset(row.grant_types),
        jwks=row.jwks,
        jwks_uri=row.jwks_uri,
        assertion_alg=row.assertion_alg,
        not_before=row.not_before,
        created_at=row.created_at,
        introspect_apis=frozenset(row.introspect_apis or ()),
        revision=row.revision,
        quota_per_minute=row.quota_per_minute,
        quota_per_hour=row.quota_per_hour,
    )


def _operator(row: sa.Row[Any]) -> OperatorRow:
    return OperatorRow(**row._mapping)


def _client_values(client: Client) -> dict[str, Any]:
    return {
        "name": client.name,
        "enabled": client.enabled,
        "auth_methods": sorted(client.auth_methods),
        "scopes": sorted(client.scopes),
        "default_scopes": None if client.default_scopes is None else sorted(client.default_scopes),
        "apis": sorted(client.apis),
        "token_ttl": client.token_ttl,
        "token_format": client.token_format,
        "grant_types": sorted(client.grant_types),
        "jwks": dict(client.jwks) if client.jwks is not None else None,
        "jwks_uri": client.jwks_uri,
        "assertion_alg": client.assertion_alg,
        "not_before": client.not_before,
        "introspect_apis": sorted(client.introspect_apis),
        "quota_per_minute": client.quota_per_minute,
        "quota_per_hour": client.quota_per_hour,
    }


AssertionRow = tuple[str, str, int]  # client_id, jti, expires_at
OpaqueRow = tuple[str, str, dict[str, Any], int]  # digest, client_id, claims, expires_at


class Repository:
    """Async data access over one SQLAlchemy engine (SQLite or PostgreSQL).

    The token path's two writes (a used assertion ``jti``, an opaque token's row) go through
    group commit (``group_commit.py``): concurrent requests share a transaction."""

    def __init__(
        self, engine: AsyncEngine, *, batch_delay: float = 0.0, batch_rows: int = 256
    ) -> None:
        self.engine = engine
        self._placeholder = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._use_jti_sqls: dict[int, str] = {}
        # The group commit's transactions, each run whole on a thread of its own (writer.py).
        url = sync_url(engine.url.render_as_string(hide_password=False))
        if engine.dialect.name == "sqlite":
            self._writes = WriterThread(url, configure=_sqlite_connect_pragmas)
        else:
            self._writes = WriterThread(url, pool_size=1, max_overflow=0, pool_pre_ping=True)
        self._assertions = GroupCommit[AssertionRow, bool](
            self.use_assertions, delay=batch_delay, max_rows=batch_rows
        )
        self._opaque = GroupCommit[OpaqueRow, None](
            self.store_opaque_tokens, delay=batch_delay, max_rows=batch_rows
        )

    @classmethod
    def from_url(cls, url: str, *, batch_delay: float = 0.0, batch_rows: int = 256) -> Repository:
        return cls(create_engine_for(url), batch_delay=batch_delay, batch_rows=batch_rows)

    def _insert(self, table: sa.Table) -> Any:
        """INSERT with the dialect's ON CONFLICT support."""
        if self.engine.dialect.name == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    async def close(self) -> None:
        await self._writes.close()
        await self.engine.dispose()

    # -- registry version -------------------------------------------------------------------

    async def version(self) -> int:
        async with self.engine.connect() as conn:
            value = await conn.scalar(sa.select(t.registry_state.c.version))
            return int(value or 0)

    @staticmethod
    async def _bump(conn: AsyncConnection) -> None:
        """Move the registry version; on PostgreSQL also notify every listening worker,
        delivered when (and only if) this transaction commits (``notify.py``)."""
        await conn.execute(
            sa.update(t.registry_state).values(version=t.registry_state.c.version + 1)
        )
        if conn.dialect.name == "postgresql":
            await conn.execute(sa.select(sa.func.pg_notify(CHANNEL, "")))

    # -- snapshot for the hot path ------------------------------------------------------------

    async def load_registry(self) -> Registry:
        async with self.engine.connect() as conn:
            version = int(await conn.scalar(sa.select(t.registry_state.c.version)) or 0)
            apis = await self._apis(conn)
            secret_rows = (await conn.execute(sa.select(t.client_secrets))).all()
            by_client: dict[str, list[ClientSecret]] = {}
            for row in secret_rows:
                by_client.setdefault(row.client_id, []).append(_secret(row))
            client_rows = (await conn.execute(sa.select(t.clients))).all()
            clients = [_client(r, by_client.get(r.client_id, [])) for r in client_rows]
        return Registry.build(apis, clients, version)

    async def client_record(self, client_id: str) -> tuple[int, Client | None]:
        """The version and one client with its secrets, on one connection: the single-row
        lookup of a failed authentication (``RegistryCache.fresh_client``)."""
        async with self.engine.connect() as conn:
            version = int(await conn.scalar(sa.select(t.registry_state.c.version)) or 0)
            return version, await self._client_row(conn, client_id)

    @staticmethod
    async def _client_row(conn: AsyncConnection, client_id: str) -> Client | None:
        """The client and its secrets: both queries run whether or not the client exists
        (the lookup after a failed authentication must cost the same either way)."""
        row = (
            await conn.execute(sa.select(t.clients).where(t.clients.c.client_id == client_id))
        ).first()
        rows = (
            await conn.execute(
                sa.select(t.client_secrets)
                .where(t.client_secrets.c.client_id == client_id)
                .order_by(t.client_secrets.c.created_at)
            )
        ).all()
        return None if row is None else _client(row, [_secret(r) for r in rows])

    # -- APIs ---------------------------------------------------------------------------------

    async def _apis(self, conn: AsyncConnection, identifier: str | None = None) -> list[Api]:
        query = sa.select(t.apis).order_by(t.apis.c.identifier)
        scope_query = sa.select(t.scopes.c.api_identifier, t.scopes.c.name)
        if identifier is not None:
            query = query.where(t.apis.c.identifier == identifier)
            scope_query = scope_query.where(t.scopes.c.api_identifier == identifier)
        names: dict[str, list[str]] = {}
        for api_id, name in (await conn.execute(scope_query)).all():
            names.setdefault(api_id, []).append(name)
        return [_api(r, names.get(r.identifier, [])) for r in (await conn.execute(query)).all()]

    async def list_apis(self) -> list[Api]:
        async with self.engine.connect() as conn:
            return await self._apis(conn)

    async def get_api(self, identifier: str) -> Api:
        async with self.engine.connect() as conn:
            found = await self._apis(conn, identifier)
        if not found:
            raise NotFoundError(identifier)
        return found[0]

    async def scope_descriptions(self) -> dict[str, str]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(sa.select(t.scopes.c.name, t.scopes.c.description))).all()
        return {name: desc for name, desc in rows}

    async def create_api(
        self, api: Api, *, now: int, descriptions: Mapping[str, str], audit: AuditRecord
    ) -> None:
        async with self.engine.begin() as conn:
            if await conn.scalar(
                sa.select(sa.func.count()).where(t.apis.c.identifier == api.identifier)
            ):
                raise ConflictError(f"an API with identifier {api.identifier} already exists")
            await conn.execute(
                sa.insert(t.apis).values(
                    identifier=api.identifier,
                    name=api.name,
                    token_ttl=api.token_ttl,
                    signing_alg=api.signing_alg,
                    token_format=api.token_format,
                    created_at=now,
                )
            )
            await self._insert_scopes(conn, api.identifier, api.scopes, descriptions)
            await self._commit_change(conn, audit)

    @staticmethod
    async def _insert_scopes(
        conn: AsyncConnection, api_id: str, names: Iterable[str], descriptions: Mapping[str, str]
    ) -> None:
        rows = [
            {"name": n, "api_identifier": api_id, "description": descriptions.get(n, "")}
            for n in sorted(names)
        ]
        if not rows:
            return
        taken = (
            await conn.execute(
                sa.select(t.scopes.c.name).where(t.scopes.c.name.in_([r["name"] for r in rows]))
            )
        ).all()
        if taken:
            names_taken = ", ".join(sorted(r.name for r in taken))
            raise ConflictError(f"scope already defined by an API: {names_taken}")
        await conn.execute(sa.insert(t.scopes), rows)

    async def update_api(
        self,
        identifier: str,
        *,
        add_scopes: Iterable[str],
        remove_scopes: Iterable[str],
        values: Mapping[str, Any],
        audit: AuditRecord,
        descriptions: Mapping[str, str] | None = None,
    ) -> None:
        descriptions = descriptions or {}
        async with self.engine.begin() as conn:
            await self._require(conn, t.apis, t.apis.c.identifier, identifier)
            if values:
                await conn.execute(
                    sa.update(t.apis).where(t.apis.c.identifier == identifier).values(**values)
                )
            removed = sorted(remove_scopes)
            if removed:
                await conn.execute(
                    sa.delete(t.scopes).where(
                        t.scopes.c.api_identifier == identifier, t.scopes.c.name.in_(removed)
                    )
                )
            added = set(add_scopes)
            await self._insert_scopes(conn, identifier, added, descriptions)
            for name, text in sorted(descriptions.items()):
                if name not in added:
                    await conn.execute(
                        sa.update(t.scopes)
                        .where(t.scopes.c.api_identifier == identifier, t.scopes.c.name == name)
                        .values(description=text)
                    )
            await self._commit_change(conn, audit)

    async def delete_api(self, identifier: str, *, audit: AuditRecord) -> None:
        async with self.engine.begin() as conn:
            result = await conn.execute(sa.delete(t.apis).where(t.apis.c.identifier == identifier))
            if result.rowcount == 0:
                raise NotFoundError(identifier)
            await self._commit_change(conn, audit)

    # -- clients ------------------------------------------------------------------------------

    async def list_clients(self) -> list[Client]:
        registry = await self.load_registry()
        return sorted(registry.clients.values(), key=lambda c: c.client_id)

    async def get_client(self, client_id: str) -> Client:
        async with self.engine.connect() as conn:
            client = await self._client_row(conn, client_id)
        if client is None:
            raise NotFoundError(client_id)
        return client

    async def create_client(
        self, client: Client, *, now: int, secret: NewSecretRow | None, audit: AuditRecord
    ) -> None:
        """The client and its first secret in one transaction: no worker can load one
        without the other."""
        async with self.engine.begin() as conn:
            c = t.clients.c
            if await conn.scalar(sa.select(sa.func.count()).where(c.client_id == client.client_id)):
                raise ConflictError(f"client {client.client_id} already exists")
            await conn.execute(
                sa.insert(t.clients).values(
                    client_id=client.client_id,
                    created_at=now,
                    updated_at=now,
                    **_client_values(client),
                )
            )
            if secret is not None:
                await self._insert_secret(conn, client.client_id, secret)
            await self._commit_change(conn, audit)

    async def save_client(self, client: Client, *, now: int, audit: AuditRecord) -> None:
        """Compare-and-set on ``revision``: the row is written only if no other change came
        since ``client`` was read (one statement, atomic on SQLite and PostgreSQL)."""
        c = t.clients.c
        async with self.engine.begin() as conn:
            result = await conn.execute(
                sa.update(t.clients)
                .where(c.client_id == client.client_id, c.revision == client.revision)
                .values(updated_at=now, revision=c.revision + 1, **_client_values(client))
            )
            if result.rowcount == 0:
                await self._require(conn, t.clients, c.client_id, client.client_id)
                raise ConcurrentChangeError(client.client_id)
            await self._commit_change(conn, audit)

    async def delete_client(self, client_id: str, *, audit: AuditRecord) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.delete(t.client_secrets).where(t.client_secrets.c.client_id == client_id)
            )
            result = await conn.execute(
                sa.delete(t.clients).where(t.clients.c.client_id == client_id)
            )
            if result.rowcount == 0:
                raise NotFoundError(client_id)
            await self._commit_change(conn, audit)

    @staticmethod
    async def _require(conn: AsyncConnection, table: sa.Table, col: Any, value: str) -> None:
        if await conn.scalar(sa.select(sa.func.count()).select_from(table).where(col == value)):
            return
        raise NotFoundError(value)

    async def _commit_change(self, conn: AsyncConnection, audit: AuditRecord) -> None:
        """The end of every registry change: its audit record and the version bump."""
        await self._insert_audit(conn, [audit])
        await self._bump(conn)

    # -- secrets ------------------------------------------------------------------------------

    @staticmethod
    async def _insert_secret(conn: AsyncConnection, client_id: str, secret: NewSecretRow) -> None:
        await conn.execute(
            sa.insert(t.client_secrets).values(
                id=secret.id,
                client_id=client_id,
                label=secret.label,
                digest=secret.digest,
                encrypted_secret=secret.encrypted_secret,
                created_at=secret.created_at,
                expires_at=secret.expires_at,
            )
        )

    async def add_secret(
        self, client_id: str, secret: NewSecretRow, *, audit: AuditRecord
    ) -> ClientSecret:
        async with self.engine.begin() as conn:
            await self._require(conn, t.clients, t.clients.c.client_id, client_id)
            await self._insert_secret(conn, client_id, secret)
            await self._commit_change(conn, audit)
        return ClientSecret(
            secret.id, secret.digest, secret.label, secret.created_at, secret.expires_at
        )

    async def revoke_secret(
        self, client_id: str, secret_id: str, *, expires_at: int | None, audit: AuditRecord
    ) -> None:
        s = t.client_secrets.c
        mine = (s.client_id == client_id, s.id == secret_id)
        async with self.engine.begin() as conn:
            if expires_at is None:
                result = await conn.execute(sa.delete(t.client_secrets).where(*mine))
            else:
                result = await conn.execute(
                    sa.update(t.client_secrets).where(*mine).values(expires_at=expires_at)
                )
            if result.rowcount == 0:
                raise NotFoundError(secret_id)
            await self._commit_change(conn, audit)

    async def touch_secrets(self, last_used: Mapping[str, int]) -> None:
        """Write-behind of "last used" stamps (no version bump: the hot path ignores them)."""
        if not last_used:
            return
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(t.client_secrets)
                .where(t.client_secrets.c.id == sa.bindparam("sid"))
                .values(last_used_at=sa.bindparam("at")),
                [{"sid": k, "at": v} for k, v in last_used.items()],
            )

    # -- signing keys -------------------------------------------------------------------------

    async def list_keys(self) -> list[KeyRow]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(t.signing_keys).order_by(
                    t.signing_keys.c.alg, t.signing_keys.c.generation
                )
            )
            return [KeyRow(**r._mapping) for r in rows.all()]

    async def insert_key(self, row: KeyRow) -> bool:
        """Insert a key; False when another instance inserted that generation first."""
        try:
            async with self.engine.begin() as conn:
                await conn.execute(sa.insert(t.signing_keys).values(**dataclasses.asdict(row)))
                await self._bump(conn)
        except sa.exc.IntegrityError:
            return False
        return True

    async def delete_keys(self, kids: Iterable[str]) -> None:
        kids = sorted(kids)
        if not kids:
            return
        async with self.engine.begin() as conn:
            await conn.execute(sa.delete(t.signing_keys).where(t.signing_keys.c.kid.in_(kids)))
            await self._bump(conn)

    async def set_key_activation(self, kid: str, activates_at: int) -> None:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                sa.update(t.signing_keys)
                .where(t.signing_keys.c.kid == kid)
                .values(activates_at=activates_at)
            )
            if result.rowcount == 0:
                raise NotFoundError(kid)
            await self._bump(conn)

    # -- token lifecycle: replay store, revocations, opaque tokens -----------------------------

    async def use_assertion(self, client_id: str, jti: str, *, expires_at: int) -> bool:
        """Record a client assertion's ``jti``; False when it was already used. Written by
        group commit (:meth:`use_assertions`); any database error propagates: the caller
        fails closed."""
        return await self._assertions.submit((client_id, jti, expires_at))

    async def use_assertions(self, rows: Sequence[AssertionRow]) -> list[bool]:
        """Record many ``jti``s in one transaction; for each row, whether it was fresh.

        The primary key (client_id, jti) with ``ON CONFLICT DO NOTHING ... RETURNING`` makes
        each row's outcome atomic across workers and instances sharing the database: of two
        transactions inserting one key, PostgreSQL lets the second wait for the first and
        skip; SQLite runs one writer at a time. Within the batch the first copy wins."""
        first: dict[tuple[str, str], int] = {}
        for index, (client_id, jti, _) in enumerate(rows):
            first.setdefault((client_id, jti), index)
        params = [value for i in first.values() for value in rows[i]]
        sql = self._use_jti_sql(len(first))

        def insert(conn: sa.Connection) -> set[tuple[str, str]]:
            # The driver's own cursor: SQLAlchemy's execution costs more than SQLite's work.
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute(sql, params)
                return {(client_id, jti) for client_id, jti in cursor.fetchall()}
            finally:
                cursor.close()

        inserted = await self._writes.transaction(insert)
        return [
            first[(client_id, jti)] == index and (client_id, jti) in inserted
            for index, (client_id, jti, _) in enumerate(rows)
        ]

    def _use_jti_sql(self, rows: int) -> str:
        """``INSERT`` of ``rows`` used ``jti``\\ s that returns the keys it inserted; the
        same statement on SQLite and PostgreSQL, one text per batch size."""
        sql = self._use_jti_sqls.get(rows)
        if sql is None:
            one = "(" + ", ".join([self._placeholder] * 3) + ")"
            # Only placeholders are joined in: every value is a bound parameter.
            sql = self._use_jti_sqls[rows] = (
                "INSERT INTO used_assertions (client_id, jti, expires_at) VALUES "  # noqa: S608
                + ", ".join([one] * rows)
                + " ON CONFLICT DO NOTHING RETURNING client_id, jti"
            )
        return sql

    async def revoke_jti(self, jti: str, *, client_id: str, expires_at: int) -> None:
        """Deny-list a JWT access token until it expires (idempotent)."""
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    sa.insert(t.revoked_tokens).values(
                        jti=jti, client_id=client_id, expires_at=expires_at
                    )
                )
        except sa.exc.IntegrityError:
            pass  # already revoked

    async def store_opaque(
        self, digest: str, *, client_id: str, claims: Mapping[str, Any], expires_at: int
    ) -> None:
        """Store an opaque token; returns once its transaction committed (group commit)."""
        await self._opaque.submit((digest, client_id, dict(claims), expires_at))

    async def store_opaque_tokens(self, rows: Sequence[OpaqueRow]) -> list[None]:
        """Store many opaque tokens in one transaction."""
        values = [
            {"digest": d, "client_id": c, "claims": claims, "expires_at": e}
            for d, c, claims, e in rows
        ]

        def insert(conn: sa.Connection) -> None:
            conn.execute(sa.insert(t.opaque_tokens), values)

        await self._writes.transaction(insert)
        return [None] * len(rows)

    async def find_opaque(self, digest: str) -> dict[str, Any] | None:
        """The claims stored for an opaque token's digest, or None."""
        async with self.engine.connect() as conn:
            claims = await conn.scalar(
                sa.select(t.opaque_tokens.c.claims).where(t.opaque_tokens.c.digest == digest)
            )
        return dict(claims) if claims is not None else None

    async def delete_opaque(self, digest: str, *, client_id: str) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                sa.delete(t.opaque_tokens).where(
                    t.opaque_tokens.c.digest == digest, t.opaque_tokens.c.client_id == client_id
                )
            )
        return bool(result.rowcount)

    async def token_facts(self, client_id: str, jti: str) -> tuple[ClientFacts | None, bool]:
        """The issuing client's current state and whether ``jti`` is revoked, read from the
        database (not the per-worker registry cache) so every change is visible at once."""
        c, r = t.clients.c, t.revoked_tokens.c
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(c.enabled, c.not_before, c.created_at).where(c.client_id == client_id)
                )
            ).first()
            revoked = await conn.scalar(
                sa.select(sa.func.count()).where(r.jti == jti, r.client_id == client_id)
            )
        facts = ClientFacts(bool(row.enabled), row.not_before, row.created_at) if row else None
        return facts, bool(revoked)

    async def purge_expired(self, now: int) -> dict[str, int]:
        """Delete replay-store rows, revocations and opaque tokens whose time has passed."""
        counts: dict[str, int] = {}
        async with self.engine.begin() as conn:
            for table in (t.used_assertions, t.revoked_tokens, t.opaque_tokens):
                result = await conn.execute(sa.delete(table).where(table.c.expires_at < now))
                counts[table.name] = result.rowcount
        return counts

    # -- shared counts (throttle, quotas) -----------------------------------------------------

    def _upsert_counts(self) -> Any:
        """``INSERT ... ON CONFLICT (key, window) DO UPDATE SET count = count + excluded``."""
        statement = self._insert(t.rate_counts)
        return statement.on_conflict_do_update(
            index_elements=[t.rate_counts.c.key, t.rate_counts.c.window],
            set_={"count": t.rate_counts.c.count + statement.excluded.count},
        )

    async def exchange_counts(
        self,
        increments: Sequence[CountIncrement],
        *,
        read: Iterable[str],
        hot: int,
        now: int,
    ) -> dict[tuple[str, int], int]:
        """One upsert for the batch, then the totals the worker needs back."""
        c = t.rate_counts.c
        keys = sorted(set(read))[:_MAX_READ_KEYS]
        wanted = sa.and_(c.count >= hot, c.expires_at > now)
        if keys:
            wanted = sa.or_(wanted, c.key.in_(keys))
        async with self.engine.begin() as conn:
            if increments:
                rows = [
                    {
                        "key": i.key,
                        "window": i.window,
                        "count": i.amount,
                        "expires_at": i.expires_at,
                    }
                    for i in increments
                ]
                await conn.execute(self._upsert_counts(), rows)
            result = await conn.execute(sa.select(c.key, c.window, c.count).where(wanted))
            return {(key, window): count for key, window, count in result.all()}

    async def purge_counts(self, now: int) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                sa.delete(t.rate_counts).where(t.rate_counts.c.expires_at <= now)
            )
        return int(result.rowcount)

    # -- audit --------------------------------------------------------------------------------

    @staticmethod
    async def _insert_audit(conn: AsyncConnection, records: Sequence[AuditRecord]) -> None:
        rows = [
            {"at": r.at, "event": r.event, "actor": r.actor, "data": dict(r.data)} for r in records
        ]
        if rows:
            await conn.execute(sa.insert(t.audit_events), rows)

    async def add_audit(self, records: Sequence[AuditRecord]) -> None:
        if not records:
            return
        async with self.engine.begin() as conn:
            await self._insert_audit(conn, records)

    async def list_audit(self, query: AuditQuery) -> list[dict[str, Any]]:
        """Newest first; every filter is optional (``client_id`` matches the event's data)."""
        a = t.audit_events.c
        conditions: list[Any] = []
        if query.before_id is not None:
            conditions.append(a.id < query.before_id)
        if query.event is not None:
            conditions.append(a.event == query.event)
        if query.actor is not None:
            conditions.append(a.actor == query.actor)
        if query.since is not None:
            conditions.append(a.at >= query.since)
        if query.until is not None:
            conditions.append(a.at < query.until)
        if query.client_id is not None:
            conditions.append(a.data["client_id"].as_string() == query.client_id)
        statement = sa.select(t.audit_events).where(*conditions).order_by(a.id.desc())
        async with self.engine.connect() as conn:
            rows = await conn.execute(statement.limit(query.limit))
            return [dict(r._mapping) for r in rows.all()]

    # -- console operators and sessions ------------------------------------------------------

    async def list_operators(self) -> list[OperatorRow]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(sa.select(t.operators).order_by(t.operators.c.name))
            return [_operator(r) for r in rows.all()]

    async def get_operator(self, name: str) -> OperatorRow:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(sa.select(t.operators).where(t.operators.c.name == name))
            ).first()
        if row is None:
            raise NotFoundError(name)
        return _operator(row)

    async def create_operator(self, row: OperatorRow, *, audit: AuditRecord) -> None:
        try:
            async with self.engine.begin() as conn:
                await conn.execute(sa.insert(t.operators).values(**dataclasses.asdict(row)))
                await self._insert_audit(conn, [audit])
        except sa.exc.IntegrityError:
            raise ConflictError(f"operator {row.name} already exists") from None

    async def update_operator(
        self, name: str, values: Mapping[str, Any], *, end_sessions: bool, audit: AuditRecord
    ) -> None:
        o = t.operators.c
        async with self.engine.begin() as conn:
            result = await conn.execute(
                sa.update(t.operators).where(o.name == name).values(**values)
            )
            if result.rowcount == 0:
                raise NotFoundError(name)
            if end_sessions:
                sessions = t.operator_sessions
                await conn.execute(sa.delete(sessions).where(sessions.c.operator == name))
            await self._insert_audit(conn, [audit])

    async def login_failed(
        self,
        name: str,
        *,
        limit: int,
        lock_until: int,
        audit: AuditRecord,
        lock_audit: AuditRecord,
    ) -> bool:
        """One failure more, counted in the database so every worker and instance agrees."""
        o = t.operators.c
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(t.operators)
                .where(o.name == name)
                .values(failed_logins=o.failed_logins + 1)
            )
            failures = await conn.scalar(sa.select(o.failed_logins).where(o.name == name))
            locks = failures is not None and failures >= limit
            if locks:
                await conn.execute(
                    sa.update(t.operators)
                    .where(o.name == name)
                    .values(failed_logins=0, locked_until=lock_until)
                )
            await self._insert_audit(conn, [audit, lock_audit] if locks else [audit])
        return locks

    async def login_succeeded(self, name: str, session: SessionRow, *, audit: AuditRecord) -> None:
        o = t.operators.c
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(t.operators)
                .where(o.name == name)
                .values(failed_logins=0, locked_until=None, last_login_at=session.created_at)
            )
            await conn.execute(sa.insert(t.operator_sessions).values(**dataclasses.asdict(session)))
            await self._insert_audit(conn, [audit])

    async def find_session(self, id_digest: str) -> tuple[SessionRow, OperatorRow] | None:
        s = t.operator_sessions
        statement = sa.select(s, t.operators).join(t.operators, t.operators.c.name == s.c.operator)
        async with self.engine.connect() as conn:
            row = (await conn.execute(statement.where(s.c.id_digest == id_digest))).first()
        if row is None:
            return None
        values = row._mapping
        session = SessionRow(**{c.name: values[s.c[c.name]] for c in s.columns})
        operator = OperatorRow(
            **{c.name: values[t.operators.c[c.name]] for c in t.operators.columns}
        )
        return session, operator

    async def touch_session(self, id_digest: str, *, seen_at: int) -> None:
        s = t.operator_sessions
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(s).where(s.c.id_digest == id_digest).values(seen_at=seen_at)
            )

    async def end_session(self, id_digest: str, *, audit: AuditRecord | None) -> None:
        s = t.operator_sessions
        async with self.engine.begin() as conn:
            await conn.execute(sa.delete(s).where(s.c.id_digest == id_digest))
            if audit is not None:
                await self._insert_audit(conn, [audit])

    async def purge_sessions(self, now: int, *, idle: int) -> int:
        s = t.operator_sessions.c
        async with self.engine.begin() as conn:
            result = await conn.execute(
                sa.delete(t.operator_sessions).where(
                    sa.or_(s.expires_at <= now, s.seen_at <= now - idle)
                )
            )
            return int(result.rowcount)

    # -- usage statistics ---------------------------------------------------------------------

    async def add_usage(self, counts: Sequence[UsageCount]) -> None:
        """One upsert per batch: a row's count grows by the batch's count (several workers
        and instances add to the same minute)."""
        if not counts:
            return
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(t.usage_minutes)
        statement = statement.on_conflict_do_update(
            index_elements=["minute", "client_id", "event"],
            set_={"count": t.usage_minutes.c.count + statement.excluded.count},
        )
        async with self.engine.begin() as conn:
            await conn.execute(statement, [dataclasses.asdict(c) for c in counts])

    async def usage_series(self, since: int, *, client_id: str | None = None) -> list[UsageCount]:
        u = t.usage_minutes.c
        statement = sa.select(u.minute, u.event, sa.func.sum(u.count)).where(u.minute >= since)
        if client_id is not None:
            statement = statement.where(u.client_id == client_id)
        statement = statement.group_by(u.minute, u.event).order_by(u.minute)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(statement)).all()
        shown = "*" if client_id is None else client_id
        return [UsageCount(int(m), shown, e, int(n)) for m, e, n in rows]

    async def top_clients(self, since: int, *, suffix: str, limit: int) -> list[tuple[str, int]]:
        u = t.usage_minutes.c
        total = sa.func.sum(u.count).label("total")
        statement = (
            sa.select(u.client_id, total)
            .where(u.minute >= since, u.event.endswith(suffix, autoescape=True))
            .group_by(u.client_id)
            .order_by(total.desc(), u.client_id)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(statement)).all()
        return [(str(c), int(n)) for c, n in rows]

    async def purge_usage(self, before: int) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                sa.delete(t.usage_minutes).where(t.usage_minutes.c.minute < before)
            )
            return int(result.rowcount)


def sql_stores(url: str, *, batch_delay: float = 0.0, batch_rows: int = 256) -> Stores:
    """Every storage port, implemented by one repository over one engine; ``batch_*``: the
    group commit of the token path's writes."""
    repository = Repository.from_url(url, batch_delay=batch_delay, batch_rows=batch_rows)
    postgres = repository.engine.dialect.name == "postgresql"
    return Stores(
        registry=repository,
        keys=repository,
        tokens=repository,
        replay=repository,
        audit=repository,
        admin=repository,
        operators=repository,
        usage=repository,
        close=repository.close,
        changes=PgRegistryChanges(url) if postgres else None,
        counters=repository,
    )
