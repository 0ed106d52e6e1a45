"""A database outage, in process (tests/support/outage.py fails every store call while it lasts).

* known clients keep getting JWTs from the cache;
* what needs the database (an unknown client id, an opaque token, introspection's revocation
  lookup) answers 503 ``temporarily_unavailable`` with ``Retry-After``, never 500;
* the outage is logged in one line when it starts and one when it ends, without tracebacks;
* ``/readyz`` stays 200 (tokens are being issued) and reports the database beside it;
* a server that starts while the database is away starts anyway, answers 503 where it needs
  keys or registry, and serves as soon as the database returns, without a restart.

The same against real processes and a real PostgreSQL that is stopped and started:
tests/e2e/test_fault.py.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.server.harness import (
    ACTOR,
    C1,
    InProcess,
    eventually,
    in_process,
    make_settings,
    seed_registry,
)
from tests.support.outage import Outage
from tokenward.server.admin.schemas import ClientCreate
from tokenward.server.settings import Settings
from tokenward.server.storage.sql.repository import sql_stores
from tokenward.server.stores import StoreHealth, store_health

pytestmark = pytest.mark.anyio

UNAVAILABLE = {
    "error": "temporarily_unavailable",
    "error_description": "the service is temporarily unavailable",
}
OPAQUE = ("c-opaque", "s-opaque")


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, text: str) -> list[logging.LogRecord]:
        return [r for r in self.records if text in r.getMessage()]


@pytest.fixture
def logs() -> Iterator[Records]:
    """Every record of the ``tokenward`` loggers at WARNING and above."""
    handler = Records()
    handler.setLevel(logging.WARNING)
    logger = logging.getLogger("tokenward")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(tmp_path_factory.mktemp("outage"))


@pytest.fixture(scope="module")
async def running(settings: Settings) -> AsyncIterator[tuple[InProcess, Outage]]:
    outage = Outage()
    async with in_process(settings, stores=outage.wrap(sql_stores(settings.database_url))) as tw:
        await seed_registry(tw)
        client = ClientCreate(
            name="opaque",
            client_id=OPAQUE[0],
            secret=OPAQUE[1],
            scopes=["read"],
            token_format="opaque",
        )
        await tw.admin.create_client(client, actor=ACTOR)
        await tw.sync()
        yield tw, outage


@pytest.fixture
async def tw(running: tuple[InProcess, Outage]) -> AsyncIterator[tuple[InProcess, Outage]]:
    """The module's server, its database up and seen up (by ``store_health``) at the start."""
    server, outage = running
    outage.down = False
    await store_health.observe(server.server.stores.registry.version(), "test")
    yield running
    outage.down = False


def assert_clean_503(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json() == UNAVAILABLE
    assert response.headers["retry-after"] == "1"
    assert response.headers["cache-control"] == "no-store"


async def test_known_clients_get_tokens_from_the_cache(tw: tuple[InProcess, Outage]) -> None:
    server, outage = tw
    outage.down = True
    response = await server.token({"scope": "read"}, auth=(C1.client_id, C1.secret))
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "Bearer"


async def test_an_unknown_client_id_is_refused_as_a_wrong_secret_is(
    tw: tuple[InProcess, Outage],
) -> None:
    """During an outage an unknown id is decided from the cache, with the answer a known id
    with a wrong secret gets: never a 500, and no existence oracle (docs/security.md)."""
    server, outage = tw
    outage.down = True
    wrong = await server.token(auth=(C1.client_id, "wrong"))
    assert wrong.status_code == 401
    for answer in (
        await server.token(auth=("nosuch", "x")),
        await server.token({"client_id": "nosuch-post", "client_secret": "x"}),
        await server.http.post("/introspect", data={"token": "x"}, auth=("nosuch-i", "x")),
    ):
        assert (answer.status_code, answer.json()) == (401, wrong.json())
    outage.down = False
    refused = await server.token(auth=("nosuch", "x"))
    assert (refused.status_code, refused.json()) == (401, wrong.json())


async def test_what_needs_the_database_is_a_clean_503(tw: tuple[InProcess, Outage]) -> None:
    server, outage = tw
    jwt = (await server.token(auth=(C1.client_id, C1.secret))).json()["access_token"]
    outage.down = True
    assert_clean_503(await server.token(auth=OPAQUE))  # the opaque token's row
    introspect = await server.http.post(
        "/introspect", data={"token": jwt}, auth=(C1.client_id, C1.secret)
    )
    assert_clean_503(introspect)  # the revocation lookup
    outage.down = False
    assert (await server.token(auth=OPAQUE)).status_code == 200


async def test_an_outage_is_one_log_line_each_way(
    tw: tuple[InProcess, Outage], logs: Records
) -> None:
    server, outage = tw
    outage.down = True
    for index in range(10):
        assert (await server.token(auth=(f"nosuch-{index}", "x"))).status_code == 401
        assert (await server.token(auth=OPAQUE)).status_code == 503
    await eventually(
        lambda: _refresh_ran(outage, 30), what="the refresh loop failing during the outage"
    )
    down = logs.messages("database unreachable")
    assert len(down) == 1, [r.getMessage() for r in logs.records]
    assert all(r.exc_info is None for r in logs.records)  # no traceback at all
    outage.down = False

    async def returned() -> bool:
        return bool(logs.messages("database reachable again"))

    await eventually(returned, what="the return being logged")
    assert len(logs.messages("database reachable again")) == 1
    assert len(logs.messages("database unreachable")) == 1


async def _refresh_ran(outage: Outage, calls: int) -> bool:
    return outage.calls >= calls


async def test_readyz_reports_the_database_beside_readiness(
    tw: tuple[InProcess, Outage],
) -> None:
    server, outage = tw
    ready = await server.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["database"] == {"reachable": True}
    assert ready.json()["keys"]["signing"] == ["ES256", "RS256"]
    outage.down = True
    assert (await server.token(auth=OPAQUE)).status_code == 503  # its row needs the database
    for path in ("/readyz", "/healthz"):
        response = await server.http.get(path)
        assert response.status_code == 200  # tokens are issued from the cache
        body = response.json()
        assert body["status"] == "ready"
        assert body["registry"]["loaded"] is True
        assert body["database"]["reachable"] is False
        assert body["database"]["unreachable_for_seconds"] >= 0
        assert response.headers["cache-control"] == "no-store"
    assert (await server.http.get("/livez")).json() == {"status": "ok"}


async def test_a_server_started_during_an_outage_serves_when_it_returns(
    settings: Settings, tw: tuple[InProcess, Outage]
) -> None:
    outage = Outage(down=True)
    stores = outage.wrap(sql_stores(settings.database_url))
    async with in_process(settings, stores=stores) as fresh:
        assert (await fresh.http.get("/livez")).status_code == 200
        ready = await fresh.http.get("/readyz")
        assert ready.status_code == 503
        assert ready.headers["retry-after"] == "1"
        assert ready.json()["status"] == "unavailable"
        assert ready.json()["registry"]["loaded"] is False
        for path in ("/jwks.json", "/.well-known/oauth-authorization-server"):
            # Not an empty document that verifiers would cache for max-age.
            assert_clean_503(await fresh.http.get(path))
        assert_clean_503(await fresh.token(auth=(C1.client_id, C1.secret)))

        outage.down = False

        async def serving() -> bool:
            return (await fresh.token(auth=(C1.client_id, C1.secret))).status_code == 200

        await eventually(serving, timeout=10, what="tokens once the database is back")
        assert (await fresh.http.get("/readyz")).status_code == 200
        jwks = await fresh.http.get("/jwks.json")
        assert jwks.status_code == 200
        assert jwks.json()["keys"]
        metadata = await fresh.http.get("/.well-known/oauth-authorization-server")
        assert "read" in metadata.json()["scopes_supported"]


def test_store_health_logs_changes_only(logs: Records) -> None:
    now = [100.0]
    health = StoreHealth(monotonic=lambda: now[0])
    health.failed("refresh", ConnectionRefusedError("refused\nsecond line"))
    now[0] += 2.5
    health.failed("token store", OSError("again"))
    assert not health.reachable
    assert health.seconds_in_state() == 2.5
    health.succeeded()
    health.succeeded()
    warnings = [r.getMessage() for r in logs.records]
    assert len(warnings) == 2, warnings
    assert "refresh failed: ConnectionRefusedError: refused)" in warnings[0]
    assert "second line" not in warnings[0]
    assert "after 2.5 s (2 operations failed meanwhile)" in warnings[1]
    assert health.reachable
