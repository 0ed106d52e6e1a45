"""The hot-path cache bound against a real ``tokenward serve --workers 2``, on SQLite and on
PostgreSQL.

Every worker keeps the registry in memory and re-reads it when the registry version moves,
checking every ``TOKENWARD_CACHE_REFRESH_SECONDS`` (0.5 s here). So, through the real CLI:

* a client created while the server runs works at once (workers reload on an unknown id);
* disabling a client, revoking a secret (CA-23) or rotating a key reaches every worker within
  the bound: the tests poll, with a generous deadline, until a run of requests on fresh TCP
  connections (spread over both workers by the kernel) all see the change. No timing is
  asserted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import discover, fresh_post, until, verify_access_token
from tests.server.harness import KEK, PEPPER, jwt_parts
from tests.support import postgres as pg
from tests.support.tokenward_server import ServerProcess, TokenwardEnv, tokenward_server

API = "https://api.example.com"
RUN = 16  # consecutive fresh-connection requests that must all agree


@dataclass
class Cluster:
    env: TokenwardEnv
    server: ServerProcess
    client: dict[str, Any] | None = None

    def new_client(self, name: str) -> dict[str, Any]:
        client: dict[str, Any] = self.env.cli_json(
            "clients", "create", "--name", name, "--scope", "countries:read"
        )
        return client

    def the_client(self) -> dict[str, Any]:
        """One client per server, shared by the tests below (each CLI call costs a second)."""
        if self.client is None:
            self.client = self.new_client("shared")
        return self.client

    def request(self, client_id: str, secret: str) -> httpx.Response:
        return fresh_post(
            f"{self.server.url}/token",
            auth=(client_id, secret),
            data={"grant_type": "client_credentials", "scope": "countries:read"},
        )

    def statuses(self, client_id: str, secret: str, n: int = RUN) -> set[int]:
        return {self.request(client_id, secret).status_code for _ in range(n)}

    def settles_on(self, client_id: str, secret: str, status: int, what: str) -> None:
        until(lambda: self.statuses(client_id, secret) == {status}, what=what)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    home = tmp_path_factory.mktemp(f"workers-{request.param}")
    # Refused requests are polled for below; brute-force throttling (TE-26, tested in
    # tests/server/test_throttle.py) would turn those 401s into 429s.
    env = TokenwardEnv(home=home, extra={"TOKENWARD_FAILED_AUTH_LIMIT": "1000000"})
    server: pg.PostgresServer | None = None
    name = pg.database_name("workers")
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres_server")
        env.database_url = server.create_database(name)
        # Every instance of a PostgreSQL deployment shares these; no dev secrets file.
        env.extra.update({"TOKENWARD_PEPPER": PEPPER, "TOKENWARD_KEY_ENCRYPTION_KEY": KEK})
    try:
        with tokenward_server(env, workers=2) as process:
            env.cli(
                "apis", "create", "--identifier", API, "--name", "Example API",
                "--scope", "countries:read", "--scope", "shipments:write",
            )  # fmt: skip
            yield Cluster(env, process)
    finally:
        if server is not None:
            server.drop_database(name)


def test_a_client_created_by_the_cli_works_at_once(cluster: Cluster) -> None:
    client = cluster.new_client("fresh")
    # No polling: the very first requests, on every worker, must succeed.
    assert cluster.statuses(client["client_id"], client["client_secret"]) == {200}
    cluster.client = client


def test_key_rotation_reaches_every_worker(cluster: Cluster) -> None:
    """``keys rotate --activate-in 0 --force``: every worker signs with the new key, the old one
    stays in the JWKS (retired) so tokens it signed still verify."""
    client = cluster.the_client()
    cid, secret = client["client_id"], client["client_secret"]
    old_token = cluster.request(cid, secret).json()["access_token"]
    old = jwt_parts(old_token)[0]["kid"]
    out = cluster.env.cli("keys", "rotate", "--activate-in", "0", "--force").stdout
    new = out.split(" key ", 1)[1].split(":", 1)[0]

    def kids() -> set[str]:
        tokens = [cluster.request(cid, secret).json()["access_token"] for _ in range(RUN)]
        return {jwt_parts(token)[0]["kid"] for token in tokens}

    until(lambda: kids() == {new}, what="every worker signing with the new key")
    found = discover(cluster.server.url)
    assert {k.kid for k in found.keys} >= {old, new}
    verify_access_token(old_token, found)


def test_secret_rotation_reaches_every_worker(cluster: Cluster) -> None:
    """CA-23: add s2 (both work), revoke s1 with a grace period (still works), revoke s1 now
    (refused everywhere within the bound); s2 keeps working."""
    client = cluster.the_client()
    cid, s1, s1_id = client["client_id"], client["client_secret"], client["secret_id"]
    added = cluster.env.cli_json("clients", "secrets", "add", cid, "--label", "next")
    s2 = added["client_secret"]
    cluster.settles_on(cid, s2, 200, "the new secret working on every worker")
    assert cluster.statuses(cid, s1) == {200}

    cluster.env.cli("clients", "secrets", "revoke", cid, s1_id, "--grace", "3600")
    assert cluster.statuses(cid, s1) == {200}

    cluster.env.cli("clients", "secrets", "revoke", cid, s1_id)
    cluster.settles_on(cid, s1, 401, "the revoked secret being refused by every worker")
    assert cluster.statuses(cid, s2) == {200}
    client.update(client_secret=s2, secret_id=added["secret_id"])


def test_disabling_a_client_reaches_every_worker(cluster: Cluster) -> None:
    client = cluster.the_client()
    cid, secret = client["client_id"], client["client_secret"]
    assert cluster.statuses(cid, secret) == {200}
    cluster.env.cli("clients", "disable", cid)
    cluster.settles_on(cid, secret, 401, "the disabled client being refused by every worker")
    refused = cluster.request(cid, secret)
    assert refused.json() == {
        "error": "invalid_client",
        "error_description": "client authentication failed",
    }
    cluster.env.cli("clients", "enable", cid)
    cluster.settles_on(cid, secret, 200, "the re-enabled client working on every worker")
