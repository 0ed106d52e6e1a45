"""What the start-up checks read from the database, synchronously like the migrations: whether
it can be reached, its schema revision, the recorded fingerprints of the pepper and
key-encryption key, and the sealed signing keys. Nothing here creates a SQLite file unless
asked to.

Every failure is a :class:`DatabaseProblem` whose message is one line naming where the
database is (host and port, or the file), never the password.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, make_url

from tokenward.server.storage.sql import tables as t
from tokenward.server.storage.sql.migrate import (
    HEAD,
    REVISIONS,
    ensure_sqlite_dir,
    read_revision,
    sync_url,
)

__all__ = [
    "DatabaseProblem",
    "DatabaseState",
    "describe_location",
    "inspect_database",
    "record_fingerprints",
]

CONNECT_TIMEOUT = 5


class DatabaseProblem(Exception):
    """The database cannot be used as configured; the message is one safe line."""


class ConnectFailed(DatabaseProblem):
    """No connection could be made (the server is down, unreachable, or refuses us)."""


@dataclass(frozen=True)
class DatabaseState:
    """What the checks need to know about the database."""

    location: str
    exists: bool
    revision: str | None = None
    head: str | None = None
    #: The revision is not one this tokenward knows (a newer version migrated it).
    unknown_revision: bool = False
    fingerprints: Mapping[str, str] = field(default_factory=dict)
    #: kid -> the sealed private key, for checking a key-encryption key not yet recorded.
    sealed_keys: Mapping[str, str] = field(default_factory=dict)

    @property
    def current(self) -> bool:
        return self.exists and self.revision == self.head


def describe_location(url: str) -> str:
    """Where the database is, for messages: the SQLite file or ``host:port/name``."""
    parsed = make_url(sync_url(url))
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or ":memory:"
    port = parsed.port or 5432
    return f"{parsed.host or 'localhost'}:{port}/{parsed.database or ''}"


def _sqlite_file(url: str) -> Path | None:
    parsed = make_url(sync_url(url))
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _reason(exc: BaseException) -> str:
    """The driver's first line, without the "connection to server at ..." preamble."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return first.rsplit(" failed: ", 1)[-1].strip()


@contextlib.contextmanager
def _connect(url: str) -> Iterator[Connection]:
    location = describe_location(url)
    try:
        backend = make_url(sync_url(url)).get_backend_name()
    except sa.exc.ArgumentError:
        raise DatabaseProblem("TOKENWARD_DATABASE_URL is not a valid database URL") from None
    connect_args = {"connect_timeout": CONNECT_TIMEOUT} if backend == "postgresql" else {}
    try:
        engine = sa.create_engine(
            sync_url(url), poolclass=sa.pool.NullPool, connect_args=connect_args
        )
    except ModuleNotFoundError as exc:
        raise DatabaseProblem(
            f"the {backend} driver ({exc.name}) is not installed: pip install 'tokenward[postgres]'"
        ) from None
    try:
        try:
            conn = engine.connect()
        except (sa.exc.OperationalError, sa.exc.InterfaceError, OSError) as exc:
            raise ConnectFailed(
                f"cannot connect to the database at {location} (TOKENWARD_DATABASE_URL): "
                f"{_reason(exc)}"
            ) from None
        with conn:
            yield conn
    finally:
        engine.dispose()


def inspect_database(url: str, *, create: bool = False) -> DatabaseState:
    """Read the database's state. A SQLite file that does not exist is reported as such (and
    only created when ``create``)."""
    location = describe_location(url)
    path = _sqlite_file(url)
    if path is not None and not path.exists():
        if not create:
            return DatabaseState(location=location, exists=False)
        ensure_sqlite_dir(url)
    with _connect(url) as conn:
        revision = read_revision(conn)
        tables = set(sa.inspect(conn).get_table_names())
        fingerprints = _fingerprints(conn) if t.secret_fingerprints.name in tables else {}
        sealed = _sealed_keys(conn) if t.signing_keys.name in tables else {}
    return DatabaseState(
        location=location,
        exists=True,
        revision=revision,
        head=HEAD,
        unknown_revision=revision is not None and revision not in REVISIONS,
        fingerprints=fingerprints,
        sealed_keys=sealed,
    )


def _fingerprints(conn: Connection) -> dict[str, str]:
    f = t.secret_fingerprints.c
    return {name: value for name, value in conn.execute(sa.select(f.name, f.fingerprint)).all()}


def _sealed_keys(conn: Connection) -> dict[str, str]:
    k = t.signing_keys.c
    return {kid: sealed for kid, sealed in conn.execute(sa.select(k.kid, k.private_key)).all()}


def record_fingerprints(url: str, fingerprints: Mapping[str, str], *, now: int) -> dict[str, str]:
    """Record the fingerprints not recorded yet (another process may record the same ones at
    the same moment: the first wins); return every recorded fingerprint afterwards."""
    with _connect(url) as conn:
        for name, value in sorted(fingerprints.items()):
            try:
                with conn.begin():
                    conn.execute(
                        sa.insert(t.secret_fingerprints).values(
                            name=name, fingerprint=value, recorded_at=now
                        )
                    )
            except sa.exc.IntegrityError:
                pass  # recorded by another process: compared by the caller
        return _fingerprints(conn)
