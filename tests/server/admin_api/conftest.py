"""Fixtures of the admin API tests: ``site`` (package), a real ``tokenward serve`` on SQLite whose
admin API was set up by ``tokenward init``, shared by the modules (each test makes its own APIs
and clients); ``any_site`` (module), the same on SQLite and then on PostgreSQL; and ``admin``,
an httpx client of the admin API holding a fresh token of the admin client."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from tests.server.admin_api.support import AdminSite, admin_site
from tests.support.tokenward_server import TokenwardEnv


@pytest.fixture(scope="package")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminSite]:
    with admin_site(TokenwardEnv(home=tmp_path_factory.mktemp("admin-api"))) as running:
        yield running


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def any_site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AdminSite]:
    if request.param == "sqlite":
        yield request.getfixturevalue("site")
        return
    env = TokenwardEnv(home=tmp_path_factory.mktemp("admin-api-pg"))
    postgres = request.getfixturevalue("postgres_server")
    name = f"admin_api_{request.module.__name__.rsplit('.', 1)[-1]}"
    env.database_url = postgres.create_database(name)
    env.extra["TOKENWARD_PEPPER"] = secrets.token_hex(32)  # required beyond SQLite
    env.extra["TOKENWARD_KEY_ENCRYPTION_KEY"] = secrets.token_hex(32)
    try:
        with admin_site(env) as running:
            yield running
    finally:
        postgres.drop_database(name)


@pytest.fixture
def admin(site: AdminSite) -> Iterator[httpx.Client]:
    with site.api() as client:
        yield client
