"""Shared fixtures: a tokenward environment (SQLite in a temp dir) and a running server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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
