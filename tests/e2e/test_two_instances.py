"""Two ``tokenward serve --workers 2`` instances on one real PostgreSQL: changes pushed by
LISTEN/NOTIFY, and the group-committed writes keeping their guarantees across instances.

The poll is set to its longest (``TOKENWARD_CACHE_REFRESH_SECONDS=60``) so that only a
notification can explain a quick change. A client disabled, or a secret revoked, by an admin
write in this process must be refused by every worker of both instances in under a second
(``PUSHED``): each instance is polled on fresh connections until a run of requests is all
refused, and the time from the commit to the first request of that run is printed
(``pytest -s``; docs/consistency.md quotes it). Then the listening connections are cut
(``pg_terminate_backend``): they reconnect, and the next change is pushed again.

Group commit (private_key_jwt's used ``jti``s, opaque tokens' rows): copies of one assertion
raced over both instances and all four workers are accepted exactly once; an opaque token
issued by one instance is active at the other's introspection the moment it is returned.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.e2e.helpers import fresh_post, until
from tests.lifecycle.harness import assertion_form, claims_for, mint, new_key, public_jwks
from tests.server.harness import KEK, PEPPER
from tests.support import postgres as pg
from tests.support.tokenward_server import ServerProcess, TokenwardEnv, tokenward_server
from tokenward.server.admin.schemas import ClientUpdate, SecretRevoke
from tokenward.server.composition import build_server
from tokenward.server.settings import Settings
from tokenward.server.storage.sql.notify import APPLICATION_NAME

API = "https://api.example.com"
OPAQUE = "https://opaque.example.com"
RUN = 12  # consecutive fresh-connection requests that must all be refused
POLL = "60"
DEADLINE = 10.0  # seconds: how long to poll before reporting what the servers still answer
#: The bound asserted for a pushed change (the issue's "well under a second"): a
#: notification's round trip measures 0.03-0.13 s on a shared 2-core machine.
PUSHED = 1.0


@dataclass
class Deployment:
    envs: list[TokenwardEnv]
    servers: list[ServerProcess]
    database_url: str

    def settings(self) -> Settings:
        return Settings(
            database_url=self.database_url,
            issuer=self.envs[0].issuer,
            pepper=PEPPER,
            key_encryption_key=KEK,
        )

    def new_client(self) -> tuple[str, str, str]:
        made = self.envs[0].cli_json("clients", "create", "--name", "n", "--scope", "read")
        return made["client_id"], made["client_secret"], made["secret_id"]

    def status(self, server: ServerProcess, auth: tuple[str, str]) -> int:
        data = {"grant_type": "client_credentials"}
        return fresh_post(f"{server.url}/token", auth=auth, data=data).status_code

    def settled(self, server: ServerProcess, auth: tuple[str, str], status: int) -> float:
        """When ``server`` started answering ``status`` on every worker: the time of the first
        request of a run of RUN answering it, polled until DEADLINE."""
        deadline = time.monotonic() + DEADLINE
        streak_start, streak = 0.0, 0
        while streak < RUN:
            if time.monotonic() > deadline:
                raise AssertionError(f"{server.url} still not answering {status}")
            at = time.monotonic()
            if self.status(server, auth) == status:
                streak_start, streak = (at, 1) if streak == 0 else (streak_start, streak + 1)
            else:
                streak = 0
        return streak_start

    def propagation(self, auth: tuple[str, str], status: int, committed: float) -> list[float]:
        with ThreadPoolExecutor(len(self.servers)) as pool:
            times = pool.map(lambda s: self.settled(s, auth, status), self.servers)
            return [round(t - committed, 3) for t in times]


@pytest.fixture(scope="module")
def deployment(
    postgres_server: pg.PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    name = pg.database_name("notify")
    url = postgres_server.create_database(name)
    shared = {
        "TOKENWARD_PEPPER": PEPPER,
        "TOKENWARD_KEY_ENCRYPTION_KEY": KEK,
        "TOKENWARD_CACHE_REFRESH_SECONDS": POLL,
        "TOKENWARD_FAILED_AUTH_LIMIT": "1000000",
        "TOKENWARD_FAILED_AUTH_LIMIT_PER_ADDRESS": "1000000",  # the replay races fail by design
    }
    home = tmp_path_factory.mktemp("notify")
    envs = [TokenwardEnv(home=home, database_url=url, extra=dict(shared)) for _ in range(2)]
    envs[1].extra["TOKENWARD_ISSUER"] = envs[0].issuer  # one deployment, one issuer
    try:
        with tokenward_server(envs[0], workers=2) as first:
            envs[0].cli("apis", "create", "--identifier", API, "--name", "A", "--scope", "read")
            envs[0].cli(
                "apis", "create", "--identifier", OPAQUE, "--name", "O", "--scope", "o:read",
                "--token-format", "opaque",
            )  # fmt: skip
            with tokenward_server(envs[1], workers=2) as second:
                yield Deployment(envs, [first, second], url)
    finally:
        postgres_server.drop_database(name)


async def admin_change(deployment: Deployment, change: str, client_id: str, sid: str) -> float:
    """Make the change through the admin layer; return the monotonic time it committed."""
    server = build_server(deployment.settings())
    try:
        if change == "disable":
            await server.admin.update_client(client_id, ClientUpdate(enabled=False), actor="t")
        else:
            await server.admin.revoke_secret(client_id, sid, SecretRevoke(), actor="t")
        return time.monotonic()
    finally:
        await server.aclose()


@pytest.mark.parametrize("change", ["disable", "revoke-secret"])
def test_a_change_reaches_every_worker_of_every_instance_at_once(
    deployment: Deployment, change: str
) -> None:
    client_id, secret, sid = deployment.new_client()
    auth = (client_id, secret)
    for server in deployment.servers:
        assert {deployment.status(server, auth) for _ in range(RUN)} == {200}
    committed = asyncio.run(admin_change(deployment, change, client_id, sid))
    seconds = deployment.propagation(auth, 401, committed)
    print(f"\n{change}: refused by every worker of each instance {seconds} s after the commit")
    assert max(seconds) < PUSHED


def test_listening_connections_come_back_after_being_cut(deployment: Deployment) -> None:
    listening = "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND datname = %s"
    dsn = deployment.database_url.replace("postgresql+psycopg://", "postgresql://")
    database = dsn.rsplit("/", 1)[1].split("?")[0]

    def backends() -> list[int]:
        with psycopg.connect(dsn, autocommit=True) as conn:
            return [row[0] for row in conn.execute(listening, (APPLICATION_NAME, database))]

    assert len(backends()) == 4  # one per worker: two instances of two workers
    with psycopg.connect(dsn, autocommit=True) as conn:
        for pid in backends():
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    until(lambda: len(backends()) == 4, timeout=DEADLINE, what="every listener reconnected")
    client_id, secret, sid = deployment.new_client()
    committed = asyncio.run(admin_change(deployment, "disable", client_id, sid))
    seconds = deployment.propagation((client_id, secret), 401, committed)
    print(f"\nafter reconnecting: refused everywhere {seconds} s after the commit")
    assert max(seconds) < PUSHED


def test_one_assertion_raced_over_every_worker_is_accepted_once(
    deployment: Deployment, tmp_path: Path
) -> None:
    key = new_key()
    (tmp_path / "keys.json").write_text(json.dumps(public_jwks(key)))
    client = deployment.envs[0].cli_json(
        "clients", "create", "--name", "signer", "--scope", "read",
        "--auth-method", "private_key_jwt", "--jwks-file", str(tmp_path / "keys.json"),
    )  # fmt: skip
    issuer = deployment.envs[0].issuer
    assertions = [
        mint(key, claims_for(client["client_id"], time.time(), aud=issuer)) for _ in range(25)
    ]
    copies = 8  # of each assertion, half to each instance, on fresh connections

    async def race() -> list[tuple[str, int]]:
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:

            async def post(assertion: str, server: ServerProcess) -> tuple[str, int]:
                form = {"grant_type": "client_credentials", **assertion_form(assertion)}
                response = await http.post(f"{server.url}/token", data=form)
                return assertion, response.status_code

            return await asyncio.gather(
                *(
                    post(assertion, deployment.servers[n % 2])
                    for n in range(copies)
                    for assertion in assertions
                )
            )

    outcomes = asyncio.run(race())
    accepted = Counter(a for a, status in outcomes if status == 200)
    assert {status for _, status in outcomes} == {200, 401}
    assert [accepted[a] for a in assertions] == [1] * len(assertions)


def test_an_opaque_token_is_active_at_the_other_instance_at_once(deployment: Deployment) -> None:
    made = deployment.envs[0].cli_json("clients", "create", "--name", "o", "--scope", "o:read")
    auth = (made["client_id"], made["client_secret"])
    first, second = deployment.servers

    async def issue_then_introspect(http: httpx.AsyncClient) -> bool:
        data = {"grant_type": "client_credentials", "scope": "o:read"}
        issued = await http.post(f"{first.url}/token", data=data, auth=auth)
        assert issued.status_code == 200, issued.text
        token = issued.json()["access_token"]
        answer = await http.post(f"{second.url}/introspect", data={"token": token}, auth=auth)
        return bool(answer.json()["active"])

    async def many() -> list[bool]:
        async with httpx.AsyncClient(timeout=30) as http:
            return await asyncio.gather(*(issue_then_introspect(http) for _ in range(40)))

    assert asyncio.run(many()) == [True] * 40
