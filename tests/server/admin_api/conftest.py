"""Fixtures of the admin API tests: ``site`` (module), a real ``tokenward serve`` on SQLite whose
admin API was set up by ``tokenward init``, and ``admin``, an httpx client of the admin API
holding a fresh token of the admin client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.server.admin_api.support import AdminSite, admin_site
from tests.support.tokenward_server import TokenwardEnv


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminSite]:
    with admin_site(TokenwardEnv(home=tmp_path_factory.mktemp("admin-api"))) as running:
        yield running


@pytest.fixture
def admin(site: AdminSite) -> Iterator[httpx.Client]:
    with site.api() as client:
        yield client
