"""The ``tokenward`` command as an operator runs it: a real process on a real database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic import command

from tests.support.tokenward_server import TokenwardEnv
from tokenward import __version__
from tokenward.server.storage.sql.migrate import alembic_config


def _tables(database: Path) -> set[str]:
    with sqlite3.connect(database) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_version() -> None:
    env = TokenwardEnv(home=Path("/tmp"))
    out = env.cli("--version").stdout
    assert out.strip() == f"tokenward, version {__version__}"


def test_read_commands_never_migrate(tw_env: TokenwardEnv) -> None:
    database = tw_env.home / "tw.db"
    # A database at an older schema (as an earlier tokenward left it).
    command.upgrade(alembic_config(f"sqlite:///{database}"), "0001")
    for args in (("clients", "list"), ("apis", "list"), ("keys", "list"), ("audit", "list")):
        result = tw_env.cli(*args, check=False)
        assert result.returncode == 2
        assert result.stderr.strip().endswith(": run `tokenward migrate`")
        assert _revision(database) == "0001"
    # A write migrates (auto_migrate, the default), then reads work on the schema.
    tw_env.cli("apis", "create", "--identifier", "https://api.example", "--name", "A")
    assert _revision(database) != "0001"
    assert "https://api.example" in tw_env.cli("apis", "list").stdout
    assert "api.created" in tw_env.cli("audit", "list").stdout
    assert tw_env.cli_json("keys", "list")[0]["state"] == "active"
    assert tw_env.cli_json("clients", "list") == []


def test_a_command_never_creates_a_database_silently(tw_env: TokenwardEnv) -> None:
    """A read on a missing database says where it looked and creates nothing; a write
    creates it and says so (another TOKENWARD_HOME than the server's shows at once)."""
    result = tw_env.cli("apis", "list", check=False)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: no database at {tw_env.home / 'tw.db'} ")
    assert list(tw_env.home.iterdir()) == []
    created = tw_env.cli("apis", "create", "--identifier", "https://a.example", "--name", "A")
    assert created.stderr.splitlines()[-1] == (
        f"note: created a new database at {tw_env.home / 'tw.db'} (TOKENWARD_HOME={tw_env.home})"
    )
    again = tw_env.cli("apis", "create", "--identifier", "https://b.example", "--name", "B")
    assert again.stderr == ""


def _revision(database: Path) -> str:
    with sqlite3.connect(database) as conn:
        (revision,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return str(revision)


def test_a_typed_input_error_is_one_line_naming_the_field(tw_env: TokenwardEnv) -> None:
    tw_env.cli("apis", "create", "--identifier", "https://api.example", "--name", "A")
    for args in (
        ("clients", "create", "--name", "c", "--token-format", "bogus"),
        ("apis", "update", "https://api.example", "--token-format", "bogus"),
    ):
        result = tw_env.cli(*args, check=False)
        assert result.returncode == 1
        assert result.stderr.strip().splitlines() == [
            "error: token_format: Input should be 'jwt' or 'opaque'"
        ]
