"""Shared fixtures: a tokenward environment (SQLite in a temp dir) and a running server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.logs import loggers_on_a_closed_stream
from tests.support.tokenward_server import ServerProcess, TokenwardEnv, tokenward_server

pytest_plugins = ["tests.support.pg_fixtures"]


@pytest.fixture
def tw_env(tmp_path: Path) -> TokenwardEnv:
    """A fresh tokenward home: SQLite database and dev secrets in a temp dir."""
    return TokenwardEnv(home=tmp_path)


@pytest.fixture
def tw_server(tw_env: TokenwardEnv) -> Iterator[ServerProcess]:
    """A real ``tokenward serve`` on loopback, one worker, SQLite."""
    with tokenward_server(tw_env) as server:
        yield server


@pytest.fixture(autouse=True)
def _no_log_handler_on_a_closed_stream() -> None:
    """Fails the test that follows one which left a logger writing to a stream pytest has
    closed (a command run in-process configures logging on capsys's stream): every record
    after it would be lost with "--- Logging error ---" instead of failing anything."""
    stale = loggers_on_a_closed_stream()
    assert not stale, f"an earlier test left these loggers on a closed stream: {stale}"
