"""POST /introspect (RFC 7662) for JWT and opaque tokens, on SQLite and PostgreSQL.

Checklist: IN-01 ... IN-09, IN-11 (IN-10 needs DPoP, a later phase), C9 (tokens outliving a
disabled client), C15 (no scanning: 401 without credentials, ``active:false`` for everything
not the caller's), §2.5 (client assertions accepted here too). Policy under test: a client sees
its own tokens; a client registered with ``introspect_apis`` sees tokens for those APIs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.lifecycle.harness import (
    API,
    INACTIVE,
    ISSUER,
    Harness,
    assertion_form,
    claims_for,
    mint,
    new_key,
    random_opaque,
    settings_for,
)
from tests.lifecycle.world import World, make_world
from tests.support.inprocess import ACTOR
from tokenward.jose.signing import JwsSigner
from tokenward.server.admin.schemas import ClientCreate, ClientUpdate
from tokenward.server.storage.sql import tables as t

pytestmark = pytest.mark.anyio

RESPONSE_KEYS = {
    "active",
    "client_id",
    "scope",
    "aud",
    "iss",
    "exp",
    "iat",
    "jti",
    "sub",
    "token_type",
}


@pytest.fixture
async def world(db_harness: Harness) -> World:
    return await make_world(db_harness)


@pytest.fixture(params=["jwt", "opaque"])
def fmt(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


async def test_in04_active_token_seen_by_owner_and_resource_server(world: World, fmt: str) -> None:
    token = await world.token(fmt)
    assert token.startswith("tw_at_") is (fmt == "opaque")
    for caller in (world.owner, world.rs):
        body = await world.h.introspect(token, caller)
        assert set(body) == RESPONSE_KEYS
        assert body["active"] is True
        assert body["client_id"] == body["sub"] == world.owner.id
        assert body["aud"] == world.audience(fmt)
        assert body["scope"] == ("read" if fmt == "jwt" else "o:read")
        assert body["iss"] == ISSUER
        assert body["token_type"] == "Bearer"
        assert body["exp"] == body["iat"] + 900 == int(world.h.clock.now) + 900


async def test_in11_callers_who_may_not_see_the_token(world: World, fmt: str) -> None:
    token = await world.token(fmt)
    for caller in (world.other, world.rs_other):
        assert await world.h.introspect(token, caller) == INACTIVE


async def test_in07_expired(world: World, fmt: str) -> None:
    token = await world.token(fmt)
    world.h.clock.advance(899)
    assert (await world.h.introspect(token, world.rs))["active"] is True
    world.h.clock.advance(1)
    assert await world.h.introspect(token, world.rs) == INACTIVE


async def test_revoked_then_inactive(world: World, fmt: str) -> None:
    token = await world.token(fmt)
    keep = await world.token(fmt)
    response = await world.h.revoke(token, world.owner)
    assert response.status_code == 200
    assert await world.h.introspect(token, world.rs) == INACTIVE
    assert (await world.h.introspect(keep, world.rs))["active"] is True


async def test_c9_disabled_client_tokens_inactive_at_once(world: World, fmt: str) -> None:
    token = await world.token(fmt)
    await world.h.admin.update_client(world.owner.id, ClientUpdate(enabled=False), actor=ACTOR)
    # No reload of the worker's registry cache: introspection reads the database.
    assert await world.h.introspect(token, world.rs) == INACTIVE
    await world.h.admin.update_client(world.owner.id, ClientUpdate(enabled=True), actor=ACTOR)
    await world.h.sync()
    assert await world.h.introspect(token, world.rs) == INACTIVE  # revoked by the disable
    world.h.clock.advance(2)
    fresh = await world.token(fmt)
    assert (await world.h.introspect(fresh, world.rs))["active"] is True


async def test_revoke_all_tokens_of_a_client(world: World, fmt: str) -> None:
    token = await world.token(fmt)
    mine = await world.h.issue(world.other, scope="read")
    await world.h.admin.revoke_tokens(world.owner.id, actor=ACTOR)
    assert await world.h.introspect(token, world.rs) == INACTIVE
    assert (await world.h.introspect(mine, world.rs))["active"] is True
    world.h.clock.advance(2)
    fresh = await world.token(fmt)
    assert (await world.h.introspect(fresh, world.rs))["active"] is True


async def test_deleted_and_recreated_client(world: World, fmt: str) -> None:
    token = await world.token(fmt)
    await world.h.admin.delete_client(world.owner.id, actor=ACTOR)
    assert await world.h.introspect(token, world.rs) == INACTIVE
    world.h.clock.advance(5)
    await world.h.admin.create_client(
        ClientCreate(name="again", client_id=world.owner.id, scopes=["read", "o:read"]), actor=ACTOR
    )
    # A new client with the same id does not inherit the old one's tokens.
    assert await world.h.introspect(token, world.rs) == INACTIVE


@pytest.mark.parametrize(
    "token",
    ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "tw_at_short", "x" * 5000],
)
async def test_in05_malformed_tokens(world: World, token: str) -> None:
    response = await world.h.http.post("/introspect", data={"token": token}, auth=world.rs.basic())
    assert response.status_code == 200
    assert response.content == b'{"active":false}'


async def test_in05_unknown_opaque_token(world: World) -> None:
    assert await world.h.introspect(random_opaque(), world.rs) == INACTIVE


async def test_in07_foreign_or_tampered_jwt(world: World) -> None:
    token = await world.token("jwt")
    header, payload, _signature = token.split(".")
    other_signature = (await world.token("jwt")).split(".")[2]
    assert await world.h.introspect(f"{header}.{payload}.{other_signature}", world.rs) == INACTIVE
    foreign = mint(
        new_key(), {"iss": ISSUER, "aud": API, "client_id": world.owner.id}, typ="at+jwt"
    )
    assert await world.h.introspect(foreign, world.rs) == INACTIVE


async def test_our_key_but_not_an_access_token(world: World) -> None:
    material = next(iter(world.h.server.keyring.verification_keys().values()))
    now = int(world.h.clock.now)
    claims = {
        "iss": ISSUER,
        "sub": world.owner.id,
        "client_id": world.owner.id,
        "aud": API,
        "iat": now,
        "exp": now + 60,
        "jti": "j1",
    }
    assert (await world.h.introspect(JwsSigner(material, typ="at+jwt").sign(claims), world.rs))[
        "active"
    ] is True
    assert (
        await world.h.introspect(JwsSigner(material, typ="JWT").sign(claims), world.rs) == INACTIVE
    )
    wrong_issuer = {**claims, "iss": "https://evil.example"}
    signed = JwsSigner(material, typ="at+jwt").sign(wrong_issuer)
    assert await world.h.introspect(signed, world.rs) == INACTIVE


@pytest.mark.parametrize("hint", ["refresh_token", "access_token", "unknown_hint"])
async def test_in06_hint_never_hides_a_token(world: World, fmt: str, hint: str) -> None:
    token = await world.token(fmt)
    body = await world.h.introspect(token, world.rs, token_type_hint=hint)
    assert body["active"] is True


async def test_in01_token_required(world: World) -> None:
    response = await world.h.http.post(
        "/introspect", data={"token_type_hint": "access_token"}, auth=world.rs.basic()
    )
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request", "error_description": "token is required"}
    assert response.headers["cache-control"] == "no-store"


async def test_in02_in03_caller_must_authenticate(world: World) -> None:
    token = await world.token("jwt")
    anonymous = await world.h.http.post("/introspect", data={"token": token})
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "invalid_client"
    assert anonymous.headers["www-authenticate"] == 'Basic realm="tokenward"'
    wrong = await world.h.http.post(
        "/introspect", data={"token": token}, auth=httpx.BasicAuth(world.rs.id, "wrong")
    )
    assert wrong.status_code == 401
    assert wrong.json() == {
        "error": "invalid_client",
        "error_description": "client authentication failed",
    }
    assert wrong.headers["www-authenticate"] == 'Basic realm="tokenward"'
    assert wrong.headers["cache-control"] == "no-store"
    post = await world.h.http.post(
        "/introspect", data={"token": token, "client_id": world.rs.id, "client_secret": "nope"}
    )
    assert post.status_code == 401
    assert "www-authenticate" not in post.headers


async def test_in08_get_not_allowed(world: World) -> None:
    token = await world.token("jwt")
    response = await world.h.http.get("/introspect", params={"token": token})
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.headers["cache-control"] == "no-store"


async def test_private_key_jwt_resource_server(world: World) -> None:
    key = new_key()
    rs = await world.h.jwt_client(key, scopes=(), introspect_apis=[API])
    token = await world.token("jwt")
    assertion = mint(key, claims_for(rs.id, world.h.clock.now))
    response = await world.h.http.post(
        "/introspect", data={"token": token, **assertion_form(assertion)}
    )
    assert response.json()["active"] is True
    replay = await world.h.http.post(
        "/introspect", data={"token": token, **assertion_form(assertion)}
    )
    assert replay.status_code == 401


async def test_client_assertions_are_not_access_tokens(world: World) -> None:
    key = new_key()
    client = await world.h.jwt_client(key, introspect_apis=[API])
    assertion = mint(key, claims_for(client.id, world.h.clock.now))
    assert await world.h.introspect(assertion, world.rs) == INACTIVE


async def test_store_down_is_503_never_a_guess(harness: Harness) -> None:
    w = await make_world(harness)
    token = await w.token("jwt")
    async with harness.repository.engine.begin() as conn:
        await conn.run_sync(lambda sync: t.revoked_tokens.drop(sync))
    response = await harness.http.post("/introspect", data={"token": token}, auth=w.rs.basic())
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"


@pytest.fixture
async def two_issuers(sqlite_url: str, tmp_path: Any) -> AsyncIterator[tuple[Harness, Harness]]:
    a = await Harness.start(settings_for(sqlite_url))
    b = await Harness.start(settings_for(f"sqlite:///{tmp_path}/other.db"))
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def test_tokens_of_another_server_with_the_same_issuer_name(
    two_issuers: tuple[Harness, Harness],
) -> None:
    """Signed with keys this server does not have: inactive, even with a matching ``iss``."""
    a, b = two_issuers
    wa, wb = await make_world(a), await make_world(b)
    token_b = await wb.token("jwt")
    assert await a.introspect(token_b, wa.rs) == INACTIVE


async def test_audit_records_no_token(world: World, fmt: str) -> None:
    token = await world.token(fmt)
    await world.h.introspect(token, world.rs)
    events = world.h.server.audit.drain()
    assert any(e["event"] == "token.introspected" and e["active"] for e in events)
    assert token not in repr(events)
    async with world.h.repository.engine.connect() as conn:
        rows = (await conn.execute(sa.select(t.opaque_tokens))).all()
    assert token not in repr(rows)
