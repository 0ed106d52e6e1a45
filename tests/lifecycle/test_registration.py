"""Registering keys, algorithms and introspection rights; revoking all tokens; discovery.

Checklist: CA-17 (one registered algorithm per client), CA-21/CA-22 (what a client may register:
public keys only, RSA 2048-4096, EC P-256, Ed25519, at most 20 keys, a safe jwks_uri), O5 (no
huge RSA keys), CA-23 (inline key rotation), MD-07 and MD-08 (metadata).
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tests.lifecycle.harness import (
    API,
    ISSUER,
    Harness,
    claims_for,
    mint,
    new_key,
    public_jwks,
    rsa_jwk_of_size,
)
from tests.support.inprocess import ACTOR
from tokenward.server.admin import AdminError
from tokenward.server.admin.schemas import ClientCreate, ClientUpdate
from tokenward.server.stores import AuditQuery

pytestmark = pytest.mark.anyio


async def _create(h: Harness, **kw: Any) -> Any:
    if API not in h.registry.apis:
        await h.api(API, "read")
    kw.setdefault("auth_methods", ["private_key_jwt"])
    created = await h.admin.create_client(
        ClientCreate(name="x", scopes=["read"], **kw), actor=ACTOR
    )
    return created.client


def _ec() -> dict[str, Any]:
    return public_jwks(new_key())


BAD_JWKS: list[tuple[str, Any, str]] = [
    ("private key", lambda: {"keys": [dict(new_key().as_dict(private=True))]}, "private"),
    ("symmetric key", lambda: {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}, "private or symmetric"),
    ("RSA 1024", lambda: {"keys": [rsa_jwk_of_size(1024)]}, "2048 to 4096"),
    ("RSA 8192", lambda: {"keys": [rsa_jwk_of_size(8192)]}, "2048 to 4096"),
    (
        "EC P-384",
        lambda: {"keys": [{**public_jwks(new_key())["keys"][0], "crv": "P-384"}]},
        "EC P-256",
    ),
    ("21 keys", lambda: public_jwks(*(new_key() for _ in range(21))), "at most 20 keys"),
    ("no keys", lambda: {"keys": []}, "non-empty"),
    ("not a JWKS", lambda: {"kty": "EC"}, "non-empty"),
    ("encryption key", lambda: {"keys": [{**_ec()["keys"][0], "use": "enc"}]}, "use=sig"),
    ("malformed EC", lambda: {"keys": [{**_ec()["keys"][0], "x": "AAAA"}]}, "imported"),
]


@pytest.mark.parametrize(("case", "make", "message"), BAD_JWKS, ids=[c[0] for c in BAD_JWKS])
async def test_ca22_jwks_refused_at_registration(
    harness: Harness, case: str, make: Any, message: str
) -> None:
    with pytest.raises(AdminError, match=message):
        await _create(harness, jwks=make())


@pytest.mark.parametrize(
    ("keys", "alg", "expected"),
    [
        ("ES256", None, "ES256"),
        ("RS256", None, "RS256"),
        ("EdDSA", None, "EdDSA"),
        ("EdDSA", "Ed25519", "Ed25519"),
        ("RS256", "PS256", "PS256"),
    ],
)
async def test_assertion_alg_inferred_or_chosen(
    harness: Harness, keys: str, alg: str | None, expected: str
) -> None:
    client = await _create(harness, jwks=public_jwks(new_key(keys)), assertion_alg=alg)
    assert client.assertion_alg == expected


async def test_rsa_key_pinned_to_ps256_by_its_jwk(harness: Harness) -> None:
    client = await _create(harness, jwks=public_jwks(new_key("RS256"), alg="PS256"))
    assert client.assertion_alg == "PS256"


@pytest.mark.parametrize(
    ("jwks", "alg", "message"),
    [
        ("ec", "RS256", "no key in the JWKS can be used with RS256"),
        ("mixed", None, "several types"),
    ],
)
async def test_ca17_algorithm_must_fit_the_keys(
    harness: Harness, jwks: str, alg: str | None, message: str
) -> None:
    document = _ec() if jwks == "ec" else public_jwks(new_key(), new_key("RS256"))
    with pytest.raises(AdminError, match=message):
        await _create(harness, jwks=document, assertion_alg=alg)


@pytest.mark.parametrize("alg", ["HS256", "none", "ES384"])
async def test_ca17_only_asymmetric_assertion_algorithms_can_be_registered(
    harness: Harness, alg: str
) -> None:
    with pytest.raises(ValidationError, match="assertion_alg"):
        await _create(harness, jwks=_ec(), assertion_alg=alg)


async def test_keys_and_methods_must_agree(harness: Harness) -> None:
    with pytest.raises(AdminError, match="exactly one"):
        await _create(harness)
    with pytest.raises(AdminError, match="exactly one"):
        await _create(harness, jwks=_ec(), jwks_uri="https://keys.example.com/jwks")
    with pytest.raises(AdminError, match="for private_key_jwt clients"):
        await _create(harness, auth_methods=["client_secret_basic"], jwks=_ec())


async def test_ca22_jwks_uri_checked_at_registration(sqlite_url: str) -> None:
    from tests.lifecycle.harness import settings_for

    h = await Harness.start(settings_for(sqlite_url, jwks_uri_allow_private=False))
    try:
        for uri in (
            "http://keys.example.com/jwks",
            "https://127.0.0.1/jwks",
            "https://169.254.169.254/jwks",
        ):
            with pytest.raises(AdminError, match="jwks_uri"):
                await _create(h, jwks_uri=uri)
        client = await _create(h, jwks_uri="https://keys.example.com/jwks")
        assert (client.jwks_uri, client.assertion_alg) == ("https://keys.example.com/jwks", "ES256")
    finally:
        await h.close()


async def test_introspect_apis_must_exist(harness: Harness) -> None:
    with pytest.raises(AdminError, match="unknown API"):
        await _create(harness, jwks=_ec(), introspect_apis=["https://nope.example"])
    client = await _create(harness, jwks=_ec(), introspect_apis=[API])
    assert client.introspect_apis == [API]
    updated = await harness.admin.update_client(
        client.client_id, ClientUpdate(introspect_apis=[]), actor=ACTOR
    )
    assert updated.introspect_apis == []


async def test_ca23_inline_key_rotation(harness: Harness) -> None:
    old, new = new_key(), new_key()
    client = await _create(harness, jwks=public_jwks(old))
    await harness.sync()
    cid = client.client_id
    assert await harness.assertion_status(mint(old, claims_for(cid, harness.clock.now))) == 200
    await harness.admin.update_client(
        cid, ClientUpdate(jwks=public_jwks(old, new)), actor=ACTOR
    )  # overlap
    await harness.sync()
    assert await harness.assertion_status(mint(new, claims_for(cid, harness.clock.now))) == 200
    assert await harness.assertion_status(mint(old, claims_for(cid, harness.clock.now))) == 200
    await harness.admin.update_client(cid, ClientUpdate(jwks=public_jwks(new)), actor=ACTOR)
    await harness.sync()
    assert await harness.assertion_status(mint(old, claims_for(cid, harness.clock.now))) == 401
    assert await harness.assertion_status(mint(new, claims_for(cid, harness.clock.now))) == 200


async def test_switching_methods_keeps_or_drops_keys(harness: Harness) -> None:
    client = await _create(harness, jwks=_ec())
    cid = client.client_id
    registered = (await harness.repository.get_client(cid)).jwks
    await harness.admin.update_client(
        cid, ClientUpdate(auth_methods=["private_key_jwt", "client_secret_basic"]), actor=ACTOR
    )
    kept = await harness.repository.get_client(cid)
    assert kept.jwks == registered
    assert kept.assertion_alg == "ES256"
    await harness.admin.update_client(
        cid, ClientUpdate(auth_methods=["client_secret_basic"]), actor=ACTOR
    )
    dropped = await harness.repository.get_client(cid)
    assert (dropped.jwks, dropped.jwks_uri, dropped.assertion_alg) == (None, None, None)
    await harness.admin.update_client(
        cid,
        ClientUpdate(auth_methods=["private_key_jwt"], jwks_uri="https://keys.example.com/jwks"),
        actor=ACTOR,
    )
    moved = await harness.repository.get_client(cid)
    assert (moved.jwks, moved.jwks_uri) == (None, "https://keys.example.com/jwks")


async def test_revoke_tokens_and_disable_set_not_before(harness: Harness) -> None:
    client = await _create(harness, jwks=_ec())
    not_before = await harness.admin.revoke_tokens(client.client_id, actor=ACTOR)
    assert not_before == int(harness.clock.now) + 1
    stored = await harness.repository.get_client(client.client_id)
    assert stored.not_before == not_before
    harness.clock.advance(10)
    await harness.admin.update_client(client.client_id, ClientUpdate(enabled=False), actor=ACTOR)
    disabled = await harness.repository.get_client(client.client_id)
    assert disabled.not_before == int(harness.clock.now) + 1
    events = [e.event for e in await harness.admin.list_audit(AuditQuery())]
    assert "client.tokens_revoked" in events


async def test_md07_md08_metadata(harness: Harness) -> None:
    response = await harness.http.get("/.well-known/oauth-authorization-server")
    doc = response.json()
    methods = ["client_secret_basic", "client_secret_jwt", "client_secret_post", "private_key_jwt"]
    assert doc["token_endpoint_auth_methods_supported"] == methods
    algs = doc["token_endpoint_auth_signing_alg_values_supported"]
    assert set(algs) == {"ES256", "RS256", "PS256", "EdDSA", "Ed25519", "HS256"}
    assert "none" not in algs
    assert doc["introspection_endpoint"] == f"{ISSUER}/introspect"
    assert doc["revocation_endpoint"] == f"{ISSUER}/revoke"
    assert doc["introspection_endpoint_auth_methods_supported"] == methods
    assert doc["revocation_endpoint_auth_methods_supported"] == methods
