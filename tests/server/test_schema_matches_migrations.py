"""The SQLAlchemy tables and the Alembic migrations describe the same schema.

``tokenward migrate`` builds the database from ``storage/sql/migrations/versions``; the code
reads and writes it through ``storage/sql/tables.py``. A column, type, index, constraint or
server default added to one and not the other would only show up as a failure in production.
So: upgrade an empty database (SQLite, and PostgreSQL when available) with the real
``migrate.upgrade`` and let Alembic's autogenerate compare it with ``tables.metadata``; the
difference must be empty. Types and server defaults are compared too.

Noise filtered, and only this: on SQLite, Alembic's default comparison reports the reflected
``DEFAULT ''`` (passed on as ``('')``) as differing from ``server_default=""``:
alembic/ddl/sqlite.py unquotes with ``'(.+)'``, which needs at least one character, so an empty
string literal is never unquoted. Both are the empty string, so that one pair compares equal;
every other default, on every dialect, goes through Alembic's own comparison.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import pool

from tokenward.server.storage.sql import tables
from tokenward.server.storage.sql.migrate import sync_url, upgrade


def _empty_string_default_on_sqlite(
    context: MigrationContext,
    inspected_column: sa.Column[Any],
    metadata_column: sa.Column[Any],
    inspected_default: str | None,
    metadata_default: Any,
    rendered_metadata_default: str | None,
) -> bool | None:
    """False ("same") for the SQLite empty-string quirk above; None: Alembic decides."""
    if (
        context.dialect.name == "sqlite"
        and inspected_default in ("''", "('')")  # as reflected, parenthesised by Alembic
        and isinstance(metadata_default, sa.DefaultClause)
        and metadata_default.arg == ""
    ):
        return False
    return None


def schema_diff(url: str, target: sa.MetaData) -> list[Any]:
    """Alembic's autogenerate operations that would turn the migrated database into ``target``."""
    upgrade(url)
    engine = sa.create_engine(sync_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "compare_server_default": _empty_string_default_on_sqlite,
                },
            )
            return list(compare_metadata(context, target))
    finally:
        engine.dispose()


def operations(diff: list[Any]) -> list[tuple[str, str, str]]:
    """(operation, table, column) of each difference; column changes come as nested lists."""
    flat = [op for item in diff for op in (item if isinstance(item, list) else [item])]
    out = []
    for op in flat:
        if op[0] == "add_column":
            out.append((op[0], op[2], op[3].name))
        elif op[0] in ("modify_type", "modify_default", "modify_nullable"):
            out.append((op[0], op[2], op[3]))
        else:
            out.append((op[0], "", ""))
    return out


def test_tables_and_migrations_describe_the_same_schema(db_url: str) -> None:
    assert schema_diff(db_url, tables.metadata) == []


def _copy() -> sa.MetaData:
    copy = sa.MetaData()
    for table in tables.metadata.sorted_tables:
        table.to_metadata(copy)
    return copy


def _add_column(metadata: sa.MetaData) -> None:
    metadata.tables["clients"].append_column(sa.Column("drift", sa.String(10), nullable=True))


def _change_type(metadata: sa.MetaData) -> None:
    metadata.tables["apis"].c.name.type = sa.String(100)


def _change_default(metadata: sa.MetaData) -> None:
    column = metadata.tables["scopes"].c.description
    column.server_default = sa.DefaultClause("none")


def _make_nullable(metadata: sa.MetaData) -> None:
    metadata.tables["apis"].c.signing_alg.nullable = True


DRIFTS: list[tuple[str, Callable[[sa.MetaData], None], tuple[str, str, str]]] = [
    ("a column only the tables have", _add_column, ("add_column", "clients", "drift")),
    ("a type changed", _change_type, ("modify_type", "apis", "name")),
    ("a server default changed", _change_default, ("modify_default", "scopes", "description")),
    ("a NOT NULL dropped", _make_nullable, ("modify_nullable", "apis", "signing_alg")),
]


@pytest.mark.parametrize(("case", "drift", "expected"), DRIFTS, ids=[d[0] for d in DRIFTS])
def test_a_drift_is_reported(
    db_url: str,
    case: str,
    drift: Callable[[sa.MetaData], None],
    expected: tuple[str, str, str],
) -> None:
    """The comparison above can fail: each kind of difference it must catch, it does."""
    drifted = _copy()
    drift(drifted)
    assert operations(schema_diff(db_url, drifted)) == [expected]
