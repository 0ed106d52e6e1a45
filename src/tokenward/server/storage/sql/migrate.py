"""Schema migrations with Alembic, driven from code (``tokenward migrate``).

Alembic is imported only when a migration is due: every CLI command and every start reads the
database's revision, and importing Alembic (with its script directory, which imports every
migration file) would add about 150 ms to each. The revision chain is therefore also listed
here (:data:`REVISIONS`); tests/server/test_storage.py checks it against Alembic's.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import Connection

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "HEAD",
    "REVISIONS",
    "alembic_config",
    "current_revision",
    "ensure_sqlite_dir",
    "read_revision",
    "sync_url",
    "upgrade",
]

_HERE = Path(__file__).parent
#: Every revision of migrations/versions, oldest first (each one's ``down_revision`` is the one
#: before it).
REVISIONS = ("0001", "0002", "0007", "0003", "0005", "0004")
HEAD = REVISIONS[-1]


def sync_url(url: str) -> str:
    """The synchronous driver URL for ``url`` (Alembic runs synchronously)."""
    if url.startswith("sqlite+aiosqlite:"):
        return "sqlite:" + url.removeprefix("sqlite+aiosqlite:")
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def ensure_sqlite_dir(url: str) -> None:
    """Create the directory of a SQLite database file, so a first start just works."""
    if url.startswith("sqlite") and ":///" in url:
        path = url.split(":///", 1)[1].split("?", 1)[0]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_HERE / "migrations"))
    cfg.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    return cfg


def read_revision(conn: Connection) -> str | None:
    """The revision recorded in the database (Alembic's ``alembic_version`` table), or None
    before the first migration."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def current_revision(url: str) -> str | None:
    ensure_sqlite_dir(url)
    engine = create_engine(sync_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return read_revision(conn)
    finally:
        engine.dispose()


def upgrade(url: str) -> bool:
    """Upgrade to head; True when something was applied."""
    if current_revision(url) == HEAD:
        return False
    from alembic import command

    command.upgrade(alembic_config(url), "head")
    return True
