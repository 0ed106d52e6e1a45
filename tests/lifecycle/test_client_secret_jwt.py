"""client_secret_jwt: HS256 assertions keyed with the client secret (RFC 7523 §2.2, OIDC Core
§9, RFC 7518 §3.2, RFC 8725 §3.5).

Checklist: CA-18, CA-23 (rotation and expiry of the secret), CA-03 (method binding), C7
(offline brute force: only generated secrets), and the storage choice (the secret is kept
AES-GCM encrypted because HMAC verification needs it; docs/client-authentication.md).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from joserfc.jwk import OctKey

from tests.lifecycle.harness import (
    API,
    TOKEN_ENDPOINT,
    Harness,
    Registered,
    claims_for,
    mint,
    new_key,
)
from tests.support.inprocess import ACTOR
from tokenward.server.admin import AdminError
from tokenward.server.admin.schemas import ClientCreate, ClientUpdate, SecretCreate, SecretRevoke
from tokenward.server.storage.sql import tables as t

pytestmark = pytest.mark.anyio


async def _hs_client(h: Harness, methods: tuple[str, ...] = ("client_secret_jwt",)) -> Registered:
    if API not in h.registry.apis:
        await h.api(API, "read")
    return await h.secret_client(auth_methods=list(methods))


def _hs(secret: str, claims: dict[str, Any], **header: Any) -> str:
    return mint(OctKey.import_key(secret.encode()), claims, alg="HS256", **header)


async def test_ca18_hs256_with_the_client_secret(harness: Harness) -> None:
    client = await _hs_client(harness)
    assert client.secret is not None
    assertion = _hs(client.secret, claims_for(client.id, harness.clock.now))
    assert await harness.assertion_status(assertion) == 200
    assert await harness.assertion_status(assertion) == 401  # replay
    wrong = _hs("w" * 43, claims_for(client.id, harness.clock.now))
    assert await harness.assertion_status(wrong) == 401
    bad_aud = _hs(client.secret, claims_for(client.id, harness.clock.now, aud=TOKEN_ENDPOINT))
    assert await harness.assertion_status(bad_aud) == 401
    other_alg = mint(
        OctKey.import_key(client.secret.encode()),
        claims_for(client.id, harness.clock.now),
        alg="HS384",
    )
    assert await harness.assertion_status(other_alg) == 401


async def test_ca18_hs256_refused_for_other_methods(harness: Harness) -> None:
    await harness.api(API, "read")
    basic = await harness.secret_client()  # client_secret_basic / _post
    assert basic.secret is not None
    assertion = _hs(basic.secret, claims_for(basic.id, harness.clock.now))
    assert await harness.assertion_status(assertion) == 401
    keyed = await harness.jwt_client()
    hs = _hs("k" * 43, claims_for(keyed.id, harness.clock.now))
    assert await harness.assertion_status(hs) == 401


async def test_ca23_secret_rotation_and_expiry(harness: Harness) -> None:
    client = await _hs_client(harness)
    assert client.secret is not None
    second = await harness.admin.add_secret(client.id, SecretCreate(label="next"), actor=ACTOR)
    await harness.sync()
    for secret in (client.secret, second.client_secret):
        assert (
            await harness.assertion_status(_hs(secret, claims_for(client.id, harness.clock.now)))
            == 200
        )
    first_id = (await harness.repository.get_client(client.id)).secrets[0].id
    await harness.admin.revoke_secret(client.id, first_id, SecretRevoke(), actor=ACTOR)
    await harness.sync()
    old = _hs(client.secret, claims_for(client.id, harness.clock.now))
    assert await harness.assertion_status(old) == 401
    # A secret revoked with a grace period stops when the grace ends.
    grace = SecretRevoke(grace=5)
    await harness.admin.revoke_secret(client.id, second.secret_id, grace, actor=ACTOR)
    await harness.sync()
    works = _hs(second.client_secret, claims_for(client.id, harness.clock.now))
    assert await harness.assertion_status(works) == 200
    harness.clock.advance(5)
    late = _hs(second.client_secret, claims_for(client.id, harness.clock.now))
    assert await harness.assertion_status(late) == 401


async def test_secret_stored_encrypted_only_for_client_secret_jwt(harness: Harness) -> None:
    jwt_client = await _hs_client(harness)
    basic = await harness.secret_client()
    async with harness.repository.engine.connect() as conn:
        rows = {r.client_id: r for r in (await conn.execute(sa.select(t.client_secrets))).all()}
    sealed = rows[jwt_client.id]
    assert jwt_client.secret is not None
    assert sealed.encrypted_secret.startswith("aesgcm$")
    assert jwt_client.secret not in sealed.encrypted_secret
    assert sealed.digest.startswith("hmac-sha256$")
    assert rows[basic.id].encrypted_secret is None


async def test_c7_operator_chosen_secrets_refused(harness: Harness) -> None:
    await harness.api(API, "read")
    with pytest.raises(AdminError, match="generated secret"):
        await harness.admin.create_client(
            ClientCreate(
                name="weak", scopes=["read"], auth_methods=["client_secret_jwt"], secret="hunter2"
            ),
            actor=ACTOR,
        )
    client = await _hs_client(harness)
    with pytest.raises(AdminError, match="generated secret"):
        await harness.admin.add_secret(client.id, SecretCreate(secret="password123"), actor=ACTOR)


async def test_both_methods_on_one_client(harness: Harness) -> None:
    client = await _hs_client(harness, ("client_secret_basic", "client_secret_jwt"))
    assert client.secret is not None
    assert (
        await harness.assertion_status(_hs(client.secret, claims_for(client.id, harness.clock.now)))
        == 200
    )
    response = await harness.token_with({}, httpx.BasicAuth(client.id, client.secret))
    assert response.status_code == 200


async def test_secret_added_before_switching_to_client_secret_jwt(harness: Harness) -> None:
    await harness.api(API, "read")
    client = await harness.secret_client()
    assert client.secret is not None
    await harness.admin.update_client(
        client.id, ClientUpdate(auth_methods=["client_secret_jwt"]), actor=ACTOR
    )
    await harness.sync()
    # Only its digest was stored, so the old secret cannot key an HMAC: add a new one.
    assert (
        await harness.assertion_status(_hs(client.secret, claims_for(client.id, harness.clock.now)))
        == 401
    )
    new = await harness.admin.add_secret(client.id, SecretCreate(), actor=ACTOR)
    await harness.sync()
    assert (
        await harness.assertion_status(
            _hs(new.client_secret, claims_for(client.id, harness.clock.now))
        )
        == 200
    )


async def test_private_key_and_secret_jwt_on_one_client(harness: Harness) -> None:
    await harness.api(API, "read")
    key = new_key()
    client = await harness.jwt_client(key, auth_methods=["private_key_jwt", "client_secret_jwt"])
    secret = await harness.admin.add_secret(client.id, SecretCreate(), actor=ACTOR)
    await harness.sync()
    assert (
        await harness.assertion_status(mint(key, claims_for(client.id, harness.clock.now))) == 200
    )
    assert (
        await harness.assertion_status(
            _hs(secret.client_secret, claims_for(client.id, harness.clock.now))
        )
        == 200
    )
