"""Issued JWT access tokens, verified against the published JWKS (RFC 9068, RFC 8725, RFC 8414).

In-process against the real app. Checklist IDs: AT-01 (signed, never ``none``, RS256
available and verifiable), AT-02, AT-03 (claims, types, ``jti`` unique), AT-04, AT-06, AT-07
(default audience), AT-08 (distinct audiences), AT-09 (``iss`` == metadata issuer, ``kid`` in
``jwks_uri``, both discovery documents consistent), AT-11, AT-12, TE-19, TE-30 (tampering
breaks the signature).

Not here: AT-05 (tokenward has no user subjects, so no collision is possible; every token
has ``sub == client_id``, asserted below) and AT-13 (the client library, tests/client); AT-14
(opaque tokens) belongs to the introspection work and is not covered by this suite; AT-10 is
sans-IO in tests/protocol/test_access_token.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from joserfc.errors import BadSignatureError
from joserfc.jwk import KeySet

from tests.server.harness import (
    ACTOR,
    API,
    API2,
    C1,
    ISSUER,
    MULTI,
    RS,
    InProcess,
    b64decode,
    in_process,
    jwt_parts,
    make_settings,
    verify,
)
from tokenward.jose.keys import SIGNING_ALGORITHMS
from tokenward.jose.signing import b64url
from tokenward.server.admin.schemas import ApiCreate, ClientCreate
from tokenward.server.exchange import Exchange

pytestmark = pytest.mark.anyio

STRING_CLAIMS = ("iss", "sub", "aud", "client_id", "jti", "scope")
NUMBER_CLAIMS = ("exp", "iat")


async def discovery(tw: InProcess) -> tuple[dict[str, Any], KeySet]:
    """Follow RFC 8414 like a resource server would: metadata, then ``jwks_uri``."""
    meta = await tw.http.get("/.well-known/oauth-authorization-server")
    assert meta.status_code == 200
    doc = meta.json()
    oidc = (await tw.http.get("/.well-known/openid-configuration")).json()
    # AT-09: "if OIDC discovery also exists, values MUST be consistent".
    assert oidc == doc
    assert doc["jwks_uri"].startswith(ISSUER + "/")
    jwks = await tw.http.get(doc["jwks_uri"].removeprefix(ISSUER))
    assert jwks.status_code == 200
    assert jwks.headers["content-type"].startswith("application/jwk-set+json")
    return doc, KeySet.import_key_set(jwks.json())


async def issue(tw: InProcess, auth: tuple[str, str], **data: str) -> dict[str, Any]:
    response = await tw.token(data, auth=auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize(
    ("auth", "data", "alg", "aud", "scope", "ttl"),
    [
        pytest.param(
            (C1.client_id, C1.secret), {}, "ES256", API, "read write", 900, id="ES256 default"
        ),
        pytest.param(
            (C1.client_id, C1.secret),
            {"scope": "read"},
            "ES256",
            API,
            "read",
            900,
            id="ES256 scoped",
        ),
        pytest.param(
            (RS.client_id, RS.secret), {}, "RS256", API2, "api2:read", 600, id="RS256 API"
        ),
    ],
)
async def test_issued_token_verifies_against_discovered_jwks(
    tw: InProcess,
    auth: tuple[str, str],
    data: dict[str, str],
    alg: str,
    aud: str,
    scope: str,
    ttl: int,
) -> None:
    doc, keys = await discovery(tw)
    body = await issue(tw, auth, **data)
    token = body["access_token"]
    header, _ = jwt_parts(token)
    # AT-01 / AT-02: asymmetric, the API's algorithm, typed at+jwt, kid published (AT-09).
    assert header == {"alg": alg, "kid": header["kid"], "typ": "at+jwt"}
    assert header["alg"] in SIGNING_ALGORITHMS
    assert header["alg"] in doc["access_token_signing_alg_values_supported"]
    assert header["kid"] in {k.kid for k in keys}
    claims = verify(token, keys, [alg])
    # AT-03: every required claim, with RFC 7519 types.
    for name in STRING_CLAIMS:
        assert isinstance(claims[name], str), name
    for name in NUMBER_CLAIMS:
        assert isinstance(claims[name], int), name
    assert claims["iss"] == doc["issuer"] == ISSUER  # AT-09
    assert claims["sub"] == claims["client_id"] == auth[0]  # AT-04 / AT-05
    assert claims["aud"] == aud  # AT-07 default resource, never a wildcard (AT-12)
    assert claims["scope"] == body["scope"] == scope  # AT-06
    assert claims["exp"] - claims["iat"] == body["expires_in"] == ttl
    assert claims["exp"] - claims["iat"] <= 900  # AT-12: short-lived by default


async def test_audiences_differ_per_api(tw: InProcess) -> None:
    """AT-08: a token for one API never carries the other's audience."""
    first = await issue(tw, (MULTI.client_id, MULTI.secret), resource=API)
    second = await issue(tw, (MULTI.client_id, MULTI.secret), resource=API2)
    assert jwt_parts(first["access_token"])[1]["aud"] == API
    assert jwt_parts(second["access_token"])[1]["aud"] == API2
    assert jwt_parts(first["access_token"])[0]["alg"] == "ES256"
    assert jwt_parts(second["access_token"])[0]["alg"] == "RS256"


async def test_jti_is_unique(tw: InProcess) -> None:
    """AT-03: ``jti`` unique (2 000 tokens from the token endpoint's steps, 100 over HTTP)."""
    jtis = []
    for _ in range(2000):
        exchange = Exchange("token", b"Basic YzE6czE=", {"grant_type": "client_credentials"}, 0)
        exchange.now = int(tw.clock())
        jtis.append(jwt_parts((await tw.server.token(exchange))["access_token"])[1]["jti"])
    for _ in range(100):
        jtis.append(
            jwt_parts((await issue(tw, (C1.client_id, C1.secret)))["access_token"])[1]["jti"]
        )
    assert len(set(jtis)) == len(jtis)
    assert all(len(b64decode(j)) >= 16 for j in jtis[:50])


async def test_header_and_claims_are_utf8_json_without_bom(tw: InProcess) -> None:
    """AT-11."""
    token = (await issue(tw, (C1.client_id, C1.secret)))["access_token"]
    for segment in token.split(".")[:2]:
        raw = b64decode(segment)
        assert not raw.startswith(b"\xef\xbb\xbf")
        json.loads(raw.decode("utf-8"))


@pytest.mark.parametrize("part", [0, 1, 2])
async def test_a_modified_token_does_not_verify(tw: InProcess, part: int) -> None:
    """TE-30: tokens cannot be modified; flipping any segment breaks the signature."""
    _, keys = await discovery(tw)
    token = (await issue(tw, (C1.client_id, C1.secret)))["access_token"]
    segments = token.split(".")
    if part == 1:
        claims = json.loads(b64decode(segments[1]))
        claims["scope"] = "read write admin"
        segments[1] = b64url(json.dumps(claims).encode()).decode()
    else:
        index = len(segments[part]) // 2
        flipped = "A" if segments[part][index] != "A" else "B"
        segments[part] = segments[part][:index] + flipped + segments[part][index + 1 :]
    with pytest.raises(Exception) as info:  # noqa: PT011 - any joserfc rejection will do
        verify(".".join(segments), keys, ["ES256"])
    if part == 1:
        assert isinstance(info.value, BadSignatureError)


async def test_alg_none_is_never_published_or_accepted(tw: InProcess) -> None:
    """AT-01: an unsigned copy of a real token does not verify against the JWKS."""
    doc, keys = await discovery(tw)
    assert "none" not in doc["access_token_signing_alg_values_supported"]
    token = (await issue(tw, (C1.client_id, C1.secret)))["access_token"]
    unsigned = b64url(b'{"alg":"none","typ":"at+jwt"}').decode() + "." + token.split(".")[1] + "."
    with pytest.raises(Exception):  # noqa: PT011,B017 - joserfc refuses "none" one way or another
        verify(unsigned, keys, ["ES256", "RS256"])


async def test_jwks_publishes_public_keys_only(tw: InProcess) -> None:
    response = await tw.http.get("/jwks.json")
    assert response.headers["cache-control"].startswith("public, max-age=")
    for key in response.json()["keys"]:
        assert key["use"] == "sig"
        assert key["alg"] in SIGNING_ALGORITHMS
        assert not {"d", "p", "q", "dp", "dq", "qi"} & key.keys()


async def test_metadata_describes_this_server(tw: InProcess) -> None:
    doc, _ = await discovery(tw)
    assert doc["issuer"] == ISSUER
    assert doc["token_endpoint"] == f"{ISSUER}/token"
    assert doc["grant_types_supported"] == ["client_credentials"]
    assert {"client_secret_basic", "client_secret_post"} <= set(
        doc["token_endpoint_auth_methods_supported"]
    )
    assert {"read", "write", "api2:read"} <= set(doc["scopes_supported"])
    assert "response_types_supported" not in doc  # RFC 8414 §3.2, checklist section 0 item 6


async def test_an_issuer_with_a_path(tmp_path: Path) -> None:
    """RFC 8414 §3: metadata for ``https://as.example/tenant`` lives at
    ``/.well-known/oauth-authorization-server/tenant``; every endpoint is under the issuer."""
    issuer = f"{ISSUER}/tenant"
    async with in_process(make_settings(tmp_path, issuer=issuer)) as tenant:
        await tenant.admin.create_api(
            ApiCreate(identifier=API, name="Example", scopes=["read"]), actor=ACTOR
        )
        await tenant.admin.create_client(
            ClientCreate(name="c1", client_id="c1", scopes=["read"], secret="s1"), actor=ACTOR
        )
        await tenant.sync()
        documents = [
            (await tenant.http.get(path)).json()
            for path in (
                "/.well-known/oauth-authorization-server/tenant",
                "/.well-known/openid-configuration/tenant",
                "/tenant/.well-known/openid-configuration",
            )
        ]
        assert all(doc == documents[0] for doc in documents)
        doc = documents[0]
        assert doc["issuer"] == issuer
        assert doc["token_endpoint"] == f"{issuer}/token"
        assert doc["jwks_uri"] == f"{issuer}/jwks.json"
        response = await tenant.http.post(
            "/tenant/token",
            data={"grant_type": "client_credentials"},
            headers={"authorization": "Basic YzE6czE="},
        )
        assert response.status_code == 200, response.text
        jwks = KeySet.import_key_set((await tenant.http.get("/tenant/jwks.json")).json())
        assert verify(response.json()["access_token"], jwks, ["ES256"])["iss"] == issuer
        assert (await tenant.http.post("/token", data={})).status_code == 404
