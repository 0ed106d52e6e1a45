"""The client-assertion replay store, on SQLite and PostgreSQL.

Checklist: CA-14 (one use per ``jti``; 20 concurrent copies -> exactly one success), C4 (replay
on the same instance and on another one), §0 item 10 and O6 (atomic insert keyed by
(client_id, jti), bounded by the maximum assertion lifetime, fail closed with 503 when the
database is unreachable, recovery without restart), purge of expired rows. The same scenario
against a real ``tokenward serve --workers 2``: test_e2e.py.
"""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from tests.lifecycle.harness import (
    API,
    INVALID_CLIENT,
    Harness,
    Registered,
    assertion_form,
    claims_for,
    mint,
)
from tokenward.server.storage.sql import tables as t
from tokenward.server.storage.sql.migrate import upgrade

pytestmark = pytest.mark.anyio


async def _client(h: Harness) -> Registered:
    await h.api(API, "read")
    return await h.jwt_client()


async def _rows(h: Harness, table: sa.Table) -> int:
    async with h.repository.engine.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


async def test_ca14_second_use_refused(db_harness: Harness) -> None:
    client = await _client(db_harness)
    assertion = mint(client.signing_key, claims_for(client.id, db_harness.clock.now))
    assert await db_harness.assertion_status(assertion) == 200
    assert await db_harness.assertion_status(assertion) == 401
    assert db_harness.audit_reasons() == ["assertion: jti already used (replay)"]


async def test_jti_is_scoped_to_the_client(db_harness: Harness) -> None:
    c1 = await _client(db_harness)
    c2 = await db_harness.jwt_client()
    now = db_harness.clock.now
    assert c1.key is not None
    assert c2.key is not None
    a1 = mint(c1.key, claims_for(c1.id, now, jti="shared-jti"))
    a2 = mint(c2.key, claims_for(c2.id, now, jti="shared-jti"))
    assert await db_harness.assertion_status(a1) == 200
    assert await db_harness.assertion_status(a2) == 200


async def test_ca14_twenty_concurrent_copies_one_success(db_harness: Harness) -> None:
    client = await _client(db_harness)
    assertion = mint(client.signing_key, claims_for(client.id, db_harness.clock.now))
    responses = await asyncio.gather(
        *(db_harness.token_with(assertion_form(assertion)) for _ in range(20))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [401] * 19
    assert all(r.json() == INVALID_CLIENT for r in responses if r.status_code == 401)


async def test_c4_replay_on_another_instance(db_harness: Harness) -> None:
    client = await _client(db_harness)
    _, other = await db_harness.sibling()
    assertion = mint(client.signing_key, claims_for(client.id, db_harness.clock.now))
    assert await db_harness.assertion_status(assertion) == 200
    response = await other.post(
        "/token", data={"grant_type": "client_credentials", **assertion_form(assertion)}
    )
    await other.aclose()
    assert response.status_code == 401
    assert response.json() == INVALID_CLIENT


async def test_replay_store_rows_are_purged_after_expiry(db_harness: Harness) -> None:
    client = await _client(db_harness)
    now = db_harness.clock.now
    old = mint(client.signing_key, claims_for(client.id, now, exp=int(now) + 30))
    assert await db_harness.assertion_status(old) == 200
    db_harness.clock.advance(120)  # past exp + the 60 s leeway: the replay window is over
    young = mint(client.signing_key, claims_for(client.id, db_harness.clock.now))
    assert await db_harness.assertion_status(young) == 200
    assert await _rows(db_harness, t.used_assertions) == 2
    counts = await db_harness.server.runtime.purge()
    assert counts["used_assertions"] == 1
    assert await _rows(db_harness, t.used_assertions) == 1
    assert await db_harness.assertion_status(young) == 401  # the live one still blocks replay


async def test_o6_replay_store_down_fails_closed_then_recovers(
    db_harness: Harness, request: pytest.FixtureRequest
) -> None:
    client = await _client(db_harness)
    url = db_harness.settings.database_url
    if url.startswith("sqlite"):
        async with db_harness.repository.engine.begin() as conn:
            await conn.run_sync(lambda sync: t.used_assertions.drop(sync))
    else:
        server = request.getfixturevalue("postgres_server")
        name = sa.make_url(url).database
        server.drop_database(name)  # connections cut: the database is gone

    assertion = mint(client.signing_key, claims_for(client.id, db_harness.clock.now))
    response = await db_harness.token_with(assertion_form(assertion))
    assert response.status_code == 503
    assert response.json() == {
        "error": "temporarily_unavailable",
        "error_description": "the service is temporarily unavailable",
    }
    assert response.headers["cache-control"] == "no-store"
    assert "replay store unavailable" in db_harness.audit_reasons()

    if url.startswith("sqlite"):
        async with db_harness.repository.engine.begin() as conn:
            await conn.run_sync(lambda sync: t.used_assertions.create(sync))
    else:
        server.create_database(name)
        upgrade(url)
    fresh = mint(client.signing_key, claims_for(client.id, db_harness.clock.now))
    assert await db_harness.assertion_status(fresh) == 200  # no restart needed
    assert await db_harness.assertion_status(fresh) == 401
