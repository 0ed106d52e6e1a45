"""The ``tokenward`` command as an operator runs it: a real process on a real database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.support.tokenward_server import TokenwardEnv
from tokenward import __version__


def _tables(database: Path) -> set[str]:
    with sqlite3.connect(database) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_version() -> None:
    env = TokenwardEnv(home=Path("/tmp"))
    out = env.cli("--version").stdout
    assert out.strip() == f"tokenward, version {__version__}"


def test_read_commands_never_migrate(tw_env: TokenwardEnv) -> None:
    database = tw_env.home / "tw.db"
    for command in (("clients", "list"), ("apis", "list"), ("keys", "list"), ("audit", "list")):
        tw_env.cli(*command, check=False)
        assert "alembic_version" not in (_tables(database) if database.exists() else set())
    # A write migrates (auto_migrate, the default), then reads work on the schema.
    tw_env.cli("apis", "create", "--identifier", "https://api.example", "--name", "A")
    assert "alembic_version" in _tables(database)
    assert "https://api.example" in tw_env.cli("apis", "list").stdout
    assert "api.created" in tw_env.cli("audit", "list").stdout
    assert tw_env.cli_json("keys", "list")[0]["state"] == "active"
    assert tw_env.cli_json("clients", "list") == []


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
