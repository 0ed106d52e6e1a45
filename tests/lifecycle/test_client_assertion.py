"""private_key_jwt at the token endpoint: RFC 7521 §4.2, RFC 7523 §3, 7523bis, RFC 8725.

Checklist: CA-03, CA-06 ... CA-17, CA-19 ... CA-21, CA-23 (assertion side), C3/C6/C13, O5 and
§0 item 2 (one uniform ``invalid_client``). Replay (CA-14 concurrency, C4): test_replay.py;
client_secret_jwt (CA-18): test_client_secret_jwt.py; jwks_uri (CA-22): test_jwks_uri.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from joserfc.jwk import ECKey

from tests.lifecycle.harness import (
    API,
    INVALID_CLIENT,
    ISSUER,
    TOKEN_ENDPOINT,
    Harness,
    Registered,
    assertion_form,
    b64,
    claims_for,
    es256_signer,
    hs256_signer,
    mint,
    new_key,
    public_jwks,
    raw_jws,
    same_headers,
    settings_for,
    unsigned,
)
from tests.support.inprocess import ACTOR
from tokenward.protocol.client_auth import ASSERTION_TYPE
from tokenward.server.admin.schemas import ClientUpdate

pytestmark = pytest.mark.anyio

Claims = Callable[[int], dict[str, Any]]


async def _client(h: Harness, alg: str = "ES256", **kw: Any) -> Registered:
    if API not in h.registry.apis:
        await h.api(API, "read")
    return await h.jwt_client(new_key(alg), **kw)


# RFC 7523 §3 claim rules: (checklist id and case, claim changes as a function of now, status)
CLAIM_CASES: list[tuple[str, Claims, int]] = [
    ("CA-10 aud is the issuer", lambda n: {}, 200),
    ("CA-10 aud is a one-element array with the issuer", lambda n: {"aud": [ISSUER]}, 200),
    ("CA-10 aud is the token endpoint", lambda n: {"aud": TOKEN_ENDPOINT}, 401),
    ("CA-10 aud is [token endpoint]", lambda n: {"aud": [TOKEN_ENDPOINT]}, 401),
    ("CA-10 aud is [issuer, other]", lambda n: {"aud": [ISSUER, "https://other.example"]}, 401),
    ("CA-10 aud is [issuer, token endpoint]", lambda n: {"aud": [ISSUER, TOKEN_ENDPOINT]}, 401),
    ("CA-10 aud is the issuer with a slash", lambda n: {"aud": ISSUER + "/"}, 401),
    ("CA-09 aud is another server", lambda n: {"aud": "https://other-as.example/token"}, 401),
    ("CA-09 aud missing", lambda n: {"aud": None}, 401),
    ("CA-09 aud empty array", lambda n: {"aud": []}, 401),
    ("CA-09 aud not a string", lambda n: {"aud": {"iss": ISSUER}}, 401),
    ("CA-08 iss is another client", lambda n: {"iss": "someone-else"}, 401),
    ("CA-08 iss missing", lambda n: {"iss": None}, 401),
    ("CA-11 exp missing", lambda n: {"exp": None}, 401),
    ("CA-11 exp 61 s ago", lambda n: {"exp": n - 61, "iat": n - 120}, 401),
    ("CA-11 exp 30 s ago, inside the leeway", lambda n: {"exp": n - 30, "iat": n - 90}, 200),
    ("CA-11 exp a day ahead", lambda n: {"exp": n + 86400}, 401),
    ("CA-11 exp a string", lambda n: {"exp": str(n + 60)}, 401),
    ("CA-11 exp a boolean", lambda n: {"exp": True}, 401),
    ("CA-12 nbf 8 s ahead", lambda n: {"nbf": n + 8}, 200),
    ("CA-12 nbf 61 s ahead", lambda n: {"nbf": n + 61, "exp": n + 120}, 401),
    ("CA-12 iat 8 s ahead", lambda n: {"iat": n + 8}, 200),
    ("CA-12 iat 61 s ahead", lambda n: {"iat": n + 61, "exp": n + 120}, 401),
    ("CA-13 iat an hour ago", lambda n: {"iat": n - 3600, "exp": n + 60}, 401),
    ("CA-13 no iat, exp inside the maximum lifetime", lambda n: {"iat": None, "exp": n + 290}, 200),
    ("CA-13 no iat, exp beyond the maximum lifetime", lambda n: {"iat": None, "exp": n + 400}, 401),
    ("CA-14 jti missing", lambda n: {"jti": None}, 401),
    ("CA-14 jti a number", lambda n: {"jti": 12345}, 401),
    ("CA-14 jti too long", lambda n: {"jti": "j" * 256}, 401),
]


@pytest.mark.parametrize(
    ("case", "changes", "status"), CLAIM_CASES, ids=[c[0] for c in CLAIM_CASES]
)
async def test_claim_rules(harness: Harness, case: str, changes: Claims, status: int) -> None:
    client = await _client(harness)
    now = int(harness.clock.now)
    assertion = mint(client.signing_key, claims_for(client.id, now, **changes(now)))
    assert await harness.assertion_status(assertion) == status


@pytest.mark.parametrize("alg", ["ES256", "RS256", "PS256", "EdDSA"])
async def test_each_registered_algorithm_authenticates(harness: Harness, alg: str) -> None:
    client = await _client(harness, alg, assertion_alg=alg)
    assertion = mint(client.signing_key, claims_for(client.id, harness.clock.now), alg=alg)
    token = await harness.assert_token(assertion_form(assertion))
    assert (await harness.introspect_as_self(token, client))["client_id"] == client.id


TYPES = [
    ("CA-19 client-authentication+jwt", "client-authentication+jwt", 200),
    ("CA-19 with the application/ prefix", "application/client-authentication+jwt", 200),
    ("CA-19 case-insensitive", "Client-Authentication+JWT", 200),
    ("CA-19 untyped", None, 200),
    ("CA-19 generic JWT", "JWT", 200),
    ("CA-19 access token type", "at+jwt", 401),
    ("CA-19 access token type with prefix", "application/at+jwt", 401),
    ("CA-19 DPoP proof type", "dpop+jwt", 401),
    ("CA-19 unknown type", "secevent+jwt", 401),
]


@pytest.mark.parametrize(("case", "typ", "status"), TYPES, ids=[t[0] for t in TYPES])
async def test_typ(harness: Harness, case: str, typ: str | None, status: int) -> None:
    client = await _client(harness)
    assertion = mint(client.signing_key, claims_for(client.id, harness.clock.now), typ=typ)
    assert await harness.assertion_status(assertion) == status


async def test_ca15_unsigned_assertion_refused(harness: Harness) -> None:
    client = await _client(harness)
    bare = unsigned(claims_for(client.id, harness.clock.now))
    assert await harness.assertion_status(bare) == 401
    assert await harness.assertion_status(bare + "c2lnbmF0dXJl") == 401  # "none" plus a tail
    assert harness.audit_reasons() == [
        "assertion: malformed (not a compact JWS)",
        "assertion: unsigned",
    ]


async def test_ca15_tampered_payload_refused(harness: Harness) -> None:
    client = await _client(harness)
    assertion = mint(client.signing_key, claims_for(client.id, harness.clock.now))
    header, payload, signature = assertion.split(".")
    forged = claims_for(client.id, harness.clock.now)
    forged_payload = b64(__import__("json").dumps(forged).encode())
    assert forged_payload != payload
    assert await harness.assertion_status(f"{header}.{forged_payload}.{signature}") == 401
    assert await harness.assertion_status(f"{header}.{payload}.") == 401  # stripped signature
    assert await harness.assertion_status(assertion) == 200  # the genuine one still works


async def test_ca15_c6_signed_with_another_clients_key(harness: Harness) -> None:
    c1 = await _client(harness)
    c2 = await _client(harness)
    assert c2.key is not None
    stolen_kid = mint(c2.signing_key, claims_for(c1.id, harness.clock.now), kid=c1.signing_key.kid)
    own_kid = mint(c2.key, claims_for(c1.id, harness.clock.now))
    assert await harness.assertion_status(stolen_kid) == 401
    assert await harness.assertion_status(own_kid) == 401
    # C6: iss=c1, sub=c2 signed by c2, claiming to be c2 in the body.
    mixed = mint(c2.key, claims_for(c2.id, harness.clock.now, iss=c1.id))
    assert await harness.assertion_status(mixed) == 401


async def test_ca07_body_client_id_must_name_the_assertion_client(harness: Harness) -> None:
    c1 = await _client(harness)
    c2 = await _client(harness)
    assertion = mint(c1.signing_key, claims_for(c1.id, harness.clock.now))
    assert await harness.assertion_status(assertion, client_id=c2.id) == 401
    same = mint(c1.signing_key, claims_for(c1.id, harness.clock.now))
    assert await harness.assertion_status(same, client_id=c1.id) == 200


async def test_ca08_sub_missing_or_another_client(harness: Harness) -> None:
    client = await _client(harness)
    other = await _client(harness)
    no_sub = mint(client.signing_key, claims_for(client.id, harness.clock.now, sub=None))
    assert await harness.assertion_status(no_sub, client_id=client.id) == 401
    assert await harness.assertion_status(no_sub) == 401
    wrong_sub = mint(client.signing_key, claims_for(client.id, harness.clock.now, sub=other.id))
    assert await harness.assertion_status(wrong_sub, client_id=client.id) == 401


async def test_ca06_assertion_type_and_presence(harness: Harness) -> None:
    client = await _client(harness)
    assertion = mint(client.signing_key, claims_for(client.id, harness.clock.now))
    cases = [
        {"client_assertion": assertion},
        {"client_assertion": assertion, "client_assertion_type": "urn:ietf:params:oauth:jwt"},
        {"client_assertion_type": ASSERTION_TYPE},
    ]
    for form in cases:
        response = await harness.token_with(form)
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"


async def test_ca17_only_the_registered_algorithm(harness: Harness) -> None:
    ec, rsa = new_key("ES256"), new_key("RS256")
    await harness.api(API, "read")
    client = await harness.jwt_client(ec, jwks=public_jwks(ec, rsa), assertion_alg="ES256")
    with_rsa = mint(rsa, claims_for(client.id, harness.clock.now), alg="RS256")
    assert await harness.assertion_status(with_rsa) == 401
    with_ec = mint(ec, claims_for(client.id, harness.clock.now))
    assert await harness.assertion_status(with_ec) == 200


async def test_ca17_hmac_with_the_public_key_as_secret(harness: Harness) -> None:
    """Algorithm confusion (RFC 8725 §2.1): HS256 keyed with the client's public key bytes."""
    client = await _client(harness, "RS256")
    assert client.key is not None
    public_pem = client.key.as_pem(private=False)
    header = {"alg": "HS256", "typ": "client-authentication+jwt", "kid": client.key.kid}
    confused = raw_jws(header, claims_for(client.id, harness.clock.now), hs256_signer(public_pem))
    assert await harness.assertion_status(confused) == 401
    assert any("client_secret_jwt not allowed" in r for r in harness.audit_reasons())


async def test_ca21_key_headers_are_never_used(harness: Harness, jwks_server: Any) -> None:
    client = await _client(harness)
    attacker = new_key()
    jwks_server.document = public_jwks(attacker)
    now = harness.clock.now
    headers: list[dict[str, Any]] = [
        {"jku": f"{jwks_server.url}/attacker-keys"},
        {"x5u": f"{jwks_server.url}/attacker-keys"},
        {"jwk": dict(attacker.as_dict(private=False))},
        {"x5c": ["MIIBszCCAVmgAwIBAgIUQ"]},
    ]
    for header in headers:
        assertion = mint(attacker, claims_for(client.id, now), **header)
        assert await harness.assertion_status(assertion) == 401
    assert jwks_server.hits == []  # no outbound fetch made


async def test_unknown_kid_and_crit_refused(harness: Harness) -> None:
    client = await _client(harness)
    assert client.key is not None
    unknown = mint(client.key, claims_for(client.id, harness.clock.now), kid="not-registered")
    assert await harness.assertion_status(unknown) == 401
    assert isinstance(client.key, ECKey)
    header = {"alg": "ES256", "kid": client.key.kid, "crit": ["urn:x"], "urn:x": 1}
    crit = raw_jws(header, claims_for(client.id, harness.clock.now), es256_signer(client.key))
    assert await harness.assertion_status(crit) == 401
    fine = raw_jws(
        {"alg": "ES256", "kid": client.key.kid},
        claims_for(client.id, harness.clock.now),
        es256_signer(client.key),
    )
    assert await harness.assertion_status(fine) == 200  # the hand-built JWS is otherwise valid


async def test_ca03_method_binding(harness: Harness) -> None:
    await harness.api(API, "read")
    secret_only = await harness.secret_client()
    key = new_key()
    assertion = mint(key, claims_for(secret_only.id, harness.clock.now))
    assert await harness.assertion_status(assertion) == 401
    jwt_only = await _client(harness)
    response = await harness.token_with({}, httpx.BasicAuth(jwt_only.id, "a" * 43))
    assert response.status_code == 401
    assert response.json() == INVALID_CLIENT


async def test_ca20_no_credentials(harness: Harness) -> None:
    await _client(harness)
    response = await harness.token_with({})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Basic realm="tokenward"'


async def test_ca23_disabled_and_deleted_clients(harness: Harness) -> None:
    client = await _client(harness)
    await harness.admin.update_client(client.id, ClientUpdate(enabled=False), actor=ACTOR)
    await harness.sync()
    assertion = mint(client.signing_key, claims_for(client.id, harness.clock.now))
    assert await harness.assertion_status(assertion) == 401
    await harness.admin.delete_client(client.id, actor=ACTOR)
    await harness.sync()
    again = mint(client.signing_key, claims_for(client.id, harness.clock.now))
    assert await harness.assertion_status(again) == 401
    assert await harness.assertion_status(mint(new_key(), claims_for("nobody", 0))) == 401


async def test_c3_every_failure_is_the_same_response(harness: Harness) -> None:
    """§0 item 2: same status, body and headers for every cause; the cause is audited only."""
    await harness.api(API, "read")
    secret_client = await harness.secret_client()
    reference = await harness.token_with({"client_id": secret_client.id, "client_secret": "no"})
    client = await _client(harness)
    now = harness.clock.now
    failures = [
        mint(client.signing_key, claims_for(client.id, now, aud=TOKEN_ENDPOINT)),
        mint(client.signing_key, claims_for(client.id, now, exp=int(now) - 120)),
        mint(new_key(), claims_for(client.id, now)),
        mint(new_key(), claims_for("unknown-client", now)),
        unsigned(claims_for(client.id, now)),
        "not-a-jwt",
    ]
    for assertion in failures:
        response = await harness.token_with(assertion_form(assertion))
        assert response.status_code == reference.status_code == 401
        assert response.content == reference.content
        assert same_headers(response, reference)
    reasons = harness.audit_reasons()
    assert "assertion: aud is not this server's issuer" in reasons
    assert "assertion: expired" in reasons
    assert "unknown client" in reasons
    assert all("client authentication failed" not in r for r in reasons)


async def test_legacy_token_endpoint_audience_switch(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    h = await Harness.start(settings_for(sqlite_url, assertion_allow_token_endpoint_audience=True))
    try:
        client = await _client(h)
        now = h.clock.now
        with caplog.at_level(logging.WARNING, logger="tokenward.assertions"):
            legacy = mint(client.signing_key, claims_for(client.id, now, aud=TOKEN_ENDPOINT))
            assert await h.assertion_status(legacy) == 200
        assert any("token endpoint as audience" in r.getMessage() for r in caplog.records)
        array = mint(client.signing_key, claims_for(client.id, now, aud=[TOKEN_ENDPOINT]))
        assert await h.assertion_status(array) == 200
        both = mint(client.signing_key, claims_for(client.id, now, aud=[ISSUER, TOKEN_ENDPOINT]))
        assert await h.assertion_status(both) == 401
        issuer = mint(client.signing_key, claims_for(client.id, now))
        assert await h.assertion_status(issuer) == 200
    finally:
        await h.close()


async def test_failed_assertions_count_towards_throttling(sqlite_url: str) -> None:
    h = await Harness.start(settings_for(sqlite_url, failed_auth_limit=3))
    try:
        client = await _client(h)
        for _ in range(3):
            bad = mint(new_key(), claims_for(client.id, h.clock.now))
            assert await h.assertion_status(bad) == 401
        good = mint(client.signing_key, claims_for(client.id, h.clock.now))
        response = await h.token_with(assertion_form(good))
        assert response.status_code == 429
        assert response.json()["error"] == "slow_down"
    finally:
        await h.close()


async def test_o1_assertions_never_reach_logs_or_audit(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = await _client(harness)
    now = harness.clock.now
    good = mint(client.signing_key, claims_for(client.id, now))
    bad = mint(client.signing_key, claims_for(client.id, now, aud=TOKEN_ENDPOINT))
    for assertion in (good, good, bad, "x" + good):
        await harness.token_with(assertion_form(assertion))
    events = harness.server.audit.drain()
    assert [e.get("auth_method") for e in events] == ["private_key_jwt"] * 3 + ["jwt_assertion"]
    text = repr(events) + caplog.text
    for assertion in (good, bad):
        assert assertion not in text
        assert assertion.split(".")[2][:12] not in text
