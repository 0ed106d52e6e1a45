"""POST /revoke (RFC 7009) for JWT and opaque tokens, on SQLite and PostgreSQL.

Checklist: RV-01 ... RV-07, RV-09, C14 (no revocation oracle), C9, and purging of expired
revocations and opaque tokens. Choices under test (docs/revocation.md): another client's token
is answered 200 and left alone, exactly like an unknown token; JWTs are revoked through a
``jti`` deny-list that introspection reads.
"""

from __future__ import annotations

import json

import httpx
import pytest
import sqlalchemy as sa

from tests.lifecycle.harness import (
    INACTIVE,
    Harness,
    b64,
    random_opaque,
    same_headers,
    settings_for,
)
from tests.lifecycle.world import World, make_world
from tokenward.protocol.opaque_token import opaque_digest
from tokenward.server.storage.sql import tables as t

pytestmark = pytest.mark.anyio


@pytest.fixture
async def world(db_harness: Harness) -> World:
    return await make_world(db_harness)


@pytest.fixture(params=["jwt", "opaque"])
def fmt(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


async def _rows(h: Harness, table: sa.Table) -> list[sa.Row[object]]:
    async with h.repository.engine.connect() as conn:
        return list((await conn.execute(sa.select(table))).all())


async def test_rv03_revoke_own_token(world: World, fmt: str) -> None:
    token = await world.token(fmt)
    response = await world.h.revoke(token, world.owner)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert await world.h.introspect(token, world.owner) == INACTIVE
    again = await world.h.revoke(token, world.owner)
    assert again.status_code == 200


async def test_rv07_jwt_denylisted_until_expiry_opaque_deleted(world: World, fmt: str) -> None:
    token = await world.token(fmt)
    await world.h.revoke(token, world.owner)
    revoked = await _rows(world.h, t.revoked_tokens)
    opaque = await _rows(world.h, t.opaque_tokens)
    if fmt == "jwt":
        claims = json.loads(
            __import__("base64").urlsafe_b64decode(token.split(".")[1] + "==").decode()
        )
        assert [(r.jti, r.client_id, r.expires_at) for r in revoked] == [
            (claims["jti"], world.owner.id, claims["exp"] + 60)
        ]
    else:
        assert revoked == []
        assert opaque == []


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "tw_at_" + "A" * 43])
async def test_rv03_invalid_tokens_answer_200(world: World, token: str) -> None:
    response = await world.h.revoke(token, world.owner)
    assert response.status_code == 200


@pytest.mark.parametrize("hint", ["foo", "refresh_token", "access_token"])
async def test_rv04_any_hint_still_revokes(world: World, fmt: str, hint: str) -> None:
    token = await world.token(fmt)
    response = await world.h.revoke(token, world.owner, token_type_hint=hint)
    assert response.status_code == 200
    assert await world.h.introspect(token, world.owner) == INACTIVE


async def test_rv05_c14_other_clients_token_untouched_and_indistinguishable(
    world: World, fmt: str
) -> None:
    token = await world.token(fmt)
    theirs = await world.h.revoke(token, world.other)
    unknown = await world.h.revoke(random_opaque(), world.other)
    garbage = await world.h.revoke("garbage", world.other)
    for response in (theirs, unknown, garbage):
        assert response.status_code == 200
        assert response.content == theirs.content
        assert same_headers(response, theirs)
    # A resource server allowed to introspect the API is not allowed to revoke either.
    assert (await world.h.revoke(token, world.rs)).status_code == 200
    assert (await world.h.introspect(token, world.owner))["active"] is True
    events = [e for e in world.h.server.audit.drain() if e["event"] == "token.revocation_ignored"]
    assert [e["outcome"] for e in events[:1]] == ["refused (not the caller's token)"]


async def test_forged_jwt_cannot_revoke_someone_elses_jti(world: World) -> None:
    token = await world.token("jwt")
    header, payload, signature = token.split(".")
    claims = json.loads(__import__("base64").urlsafe_b64decode(payload + "==").decode())
    claims["client_id"] = claims["sub"] = world.other.id
    forged = f"{header}.{b64(json.dumps(claims).encode())}.{signature}"
    assert (await world.h.revoke(forged, world.other)).status_code == 200
    assert await _rows(world.h, t.revoked_tokens) == []
    assert (await world.h.introspect(token, world.owner))["active"] is True


async def test_rv06_revocation_visible_on_another_instance(world: World, fmt: str) -> None:
    token = await world.token(fmt)
    _, other = await world.h.sibling()
    before = await other.post("/introspect", data={"token": token}, auth=world.rs.basic())
    assert before.json()["active"] is True
    await world.h.revoke(token, world.owner)
    after = await other.post("/introspect", data={"token": token}, auth=world.rs.basic())
    await other.aclose()
    assert after.json() == INACTIVE


async def test_revoking_an_expired_token_is_a_no_op(world: World) -> None:
    token = await world.token("jwt")
    world.h.clock.advance(1000)
    assert (await world.h.revoke(token, world.owner)).status_code == 200
    assert await _rows(world.h, t.revoked_tokens) == []


async def test_rv01_rv02_request_and_authentication_errors(world: World) -> None:
    missing = await world.h.http.post(
        "/revoke", data={"token_type_hint": "access_token"}, auth=world.owner.basic()
    )
    assert missing.status_code == 400
    assert missing.json() == {"error": "invalid_request", "error_description": "token is required"}
    token = await world.token("jwt")
    wrong = await world.h.http.post(
        "/revoke", data={"token": token}, auth=httpx.BasicAuth(world.owner.id, "wrong")
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    assert wrong.headers["www-authenticate"] == 'Basic realm="tokenward"'
    anonymous = await world.h.http.post("/revoke", data={"token": token})
    assert anonymous.status_code == 401
    get = await world.h.http.get("/revoke", params={"token": token})
    assert get.status_code == 405
    assert (await world.h.introspect(token, world.owner))["active"] is True


async def test_rv09_failures_are_throttled(sqlite_url: str) -> None:
    h = await Harness.start(settings_for(sqlite_url, failed_auth_limit=2))
    try:
        w = await make_world(h)
        token = await w.token("jwt")
        for _ in range(2):
            bad = await h.http.post(
                "/revoke", data={"token": token}, auth=httpx.BasicAuth(w.owner.id, "wrong")
            )
            assert bad.status_code == 401
        throttled = await h.revoke(token, w.owner)
        assert throttled.status_code == 429
        assert (await h.introspect(token, w.rs))["active"] is True
    finally:
        await h.close()


async def test_expired_rows_are_purged(world: World) -> None:
    h = world.h
    jwt_token = await world.token("jwt")
    opaque_token = await world.token("opaque")
    await h.revoke(jwt_token, world.owner)
    h.clock.advance(901)  # both expired (900 s); the revocation stays 60 s more
    fresh_opaque = await world.token("opaque")
    fresh_jwt = await world.token("jwt")
    await h.revoke(fresh_jwt, world.owner)
    counts = await h.server.runtime.purge()
    assert counts == {"used_assertions": 0, "revoked_tokens": 0, "opaque_tokens": 1}
    h.clock.advance(60)
    counts = await h.server.runtime.purge()
    assert counts == {"used_assertions": 0, "revoked_tokens": 1, "opaque_tokens": 0}
    remaining = await _rows(h, t.opaque_tokens)
    assert [r.digest for r in remaining] == [opaque_digest(fresh_opaque)]
    assert opaque_digest(opaque_token) != opaque_digest(fresh_opaque)
    assert len(await _rows(h, t.revoked_tokens)) == 1
