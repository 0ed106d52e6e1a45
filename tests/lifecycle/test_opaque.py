"""Opaque access tokens: format, storage, per-API and per-client choice, and use by a resource
server through introspection (tokenward.resource), on SQLite and PostgreSQL.

Checklist: TE/RFC 6749 §10.10 (at least 2^-128 guessing probability: 256 random bits), §0
item 5 (opaque revocation is immediate), IN-04/IN-05 through the resource library.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
import sqlalchemy as sa

from tests.lifecycle.harness import API, OPAQUE_API, Harness
from tests.lifecycle.world import World, make_world
from tokenward.resource import Introspection, InvalidToken, TokenVerifier
from tokenward.server.storage.sql import tables as t

pytestmark = pytest.mark.anyio


@pytest.fixture
async def world(db_harness: Harness) -> World:
    return await make_world(db_harness)


async def _opaque_rows(h: Harness) -> list[sa.Row[object]]:
    async with h.repository.engine.connect() as conn:
        return list((await conn.execute(sa.select(t.opaque_tokens))).all())


async def test_opaque_token_shape_and_response(world: World) -> None:
    response = await world.h.token_with({"scope": "o:read"}, world.owner.basic())
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["scope"] == "o:read"
    token = body["access_token"]
    assert token.startswith("tw_at_")
    assert "." not in token  # never mistaken for a JWT by a resource server
    random_part = base64.urlsafe_b64decode(token.removeprefix("tw_at_") + "=")
    assert len(random_part) == 32  # 256 bits


async def test_only_the_digest_is_stored(world: World) -> None:
    tokens = {await world.token("opaque") for _ in range(5)}
    assert len(tokens) == 5
    rows = await _opaque_rows(world.h)
    assert len(rows) == 5  # one database write per opaque token
    digests = {r.digest for r in rows}
    assert digests == {hashlib.sha256(tok.encode()).hexdigest() for tok in tokens}
    for row in rows:
        assert not any(tok in repr(tuple(row)) for tok in tokens)
        claims = row.claims
        assert claims["client_id"] == row.client_id == world.owner.id
        assert claims["aud"] == OPAQUE_API
        assert row.expires_at == claims["exp"]


async def test_per_client_override(world: World) -> None:
    h = world.h
    opaque_client = await h.secret_client(("read",), token_format="opaque")
    token = await h.issue(opaque_client, scope="read")
    assert token.startswith("tw_at_")
    body = await h.introspect(token, world.rs)
    assert body["aud"] == API
    jwt_client = await h.secret_client(("o:read",), token_format="jwt")
    assert (await h.issue(jwt_client, scope="o:read")).count(".") == 2


async def test_issuance_fails_closed_when_the_store_is_down(harness: Harness) -> None:
    w = await make_world(harness)
    async with harness.repository.engine.begin() as conn:
        await conn.run_sync(lambda sync: t.opaque_tokens.drop(sync))
    response = await harness.token_with({"scope": "o:read"}, w.owner.basic())
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert (await harness.token_with({"scope": "read"}, w.owner.basic())).status_code == 200


async def test_resource_server_verifies_opaque_tokens_by_introspection(world: World) -> None:
    h = world.h
    assert world.rs.secret is not None
    verifier = TokenVerifier(
        "https://as.example.com",
        audience=OPAQUE_API,
        introspection=Introspection(
            client_id=world.rs.id, client_secret=world.rs.secret, cache_ttl=0.0
        ),
        async_http_client=h.http,
        clock=h.clock,
    )
    token = await world.token("opaque")
    verified = await verifier.verify(token)
    assert verified.client_id == world.owner.id
    assert "o:read" in verified.scopes
    assert (await h.revoke(token, world.owner)).status_code == 200
    with pytest.raises(InvalidToken):
        await verifier.verify(token)
