"""JWT client authentication rules, sans-IO: RFC 7523 §3 with draft-ietf-oauth-rfc7523bis.

Every refusal is ``invalid_client`` (RFC 7523 §3.2) whose ``reason`` names the check; the
tables below give the claims or header and the reason (or the accepted result). Over HTTP, with
real signatures and the replay store: tests/lifecycle/test_client_assertion.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from tokenward.protocol.client_assertion import (
    ACCEPTED_TYPES,
    AcceptedAssertion,
    AssertionPolicy,
    assertion_subject,
    check_assertion_claims,
    check_assertion_header,
)
from tokenward.protocol.errors import InvalidClient

ISSUER = "https://as.example"
TOKEN_ENDPOINT = "https://as.example/token"
POLICY = AssertionPolicy(issuer=ISSUER, token_endpoint=TOKEN_ENDPOINT)
LEGACY = AssertionPolicy(
    issuer=ISSUER, token_endpoint=TOKEN_ENDPOINT, allow_token_endpoint_audience=True
)
NOW = 1_000_000
DROP = object()


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": "c1",
        "sub": "c1",
        "aud": ISSUER,
        "exp": NOW + 60,
        "iat": NOW,
        "jti": "j1",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not DROP}


def refusal(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(InvalidClient) as caught:
        call(*args, **kwargs)
    # RFC 7523 §3.2: "the value of the error parameter MUST be the invalid_client error code"
    assert caught.value.body() == {
        "error": "invalid_client",
        "error_description": "client authentication failed",
    }
    return caught.value.reason.removeprefix("assertion: ")


# -- which client the assertion speaks for (RFC 7521 §4.2) -----------------------------------


@pytest.mark.parametrize(
    ("case", "unverified", "body_client_id", "expected"),
    [
        ("sub names the client", {"sub": "c1"}, None, "c1"),
        ("the body client_id wins (checked after the signature)", {"sub": "c2"}, "c1", "c1"),
        ("body client_id, no sub", {}, "c1", "c1"),
        ("sub of 255 characters", {"sub": "s" * 255}, None, "s" * 255),
    ],
)
def test_assertion_subject(
    case: str, unverified: dict[str, Any], body_client_id: str | None, expected: str
) -> None:
    assert assertion_subject(unverified, body_client_id) == expected


@pytest.mark.parametrize(
    "unverified", [{}, {"sub": ""}, {"sub": 1}, {"sub": ["c1"]}, {"sub": "s" * 256}]
)
def test_assertion_subject_needs_a_usable_sub(unverified: dict[str, Any]) -> None:
    assert refusal(assertion_subject, unverified, None) == "no usable sub"


# -- the header: typ (7523bis, RFC 8725 §3.11) and alg (RFC 7523 §3 item 9) ------------------


@pytest.mark.parametrize(
    ("header", "alg"),
    [
        ({"alg": "ES256"}, "ES256"),  # untyped: "NOT RECOMMENDED" to reject
        ({"alg": "ES256", "typ": "client-authentication+jwt"}, "ES256"),
        ({"alg": "HS256", "typ": "application/client-authentication+jwt"}, "HS256"),
        ({"alg": "RS256", "typ": "JWT"}, "RS256"),
        ({"alg": "PS256", "typ": "Application/JWT"}, "PS256"),
    ],
)
def test_accepted_headers(header: dict[str, Any], alg: str) -> None:
    assert check_assertion_header(header) == alg
    assert {"client-authentication+jwt", "jwt"} == ACCEPTED_TYPES


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ({"alg": "ES256", "typ": 1}, "typ is not a string"),
        ({"alg": "ES256", "typ": "at+jwt"}, "typ 'at+jwt' is not a client assertion type"),
        ({"alg": "ES256", "typ": "dpop+jwt"}, "typ 'dpop+jwt' is not a client assertion type"),
        ({"alg": "ES256", "typ": "x" * 60}, f"typ {'x' * 40!r} is not a client assertion type"),
        # "The JWT MUST be digitally signed or have a Message Authentication Code (MAC) applied"
        ({"alg": "none"}, "unsigned"),
        ({"alg": "NONE", "typ": "JWT"}, "unsigned"),
        ({}, "unsigned"),
        ({"alg": 1}, "unsigned"),
    ],
)
def test_refused_headers(header: dict[str, Any], reason: str) -> None:
    assert refusal(check_assertion_header, header) == reason


# -- the claims: RFC 7523 §3 items 1-7 --------------------------------------------------------

ACCEPTED: list[tuple[str, dict[str, Any], AssertionPolicy, AcceptedAssertion]] = [
    ("all claims", claims(), POLICY, AcceptedAssertion("j1", NOW + 120, False)),
    (
        "aud as a one-element array",
        claims(aud=[ISSUER]),
        POLICY,
        AcceptedAssertion("j1", NOW + 120, False),
    ),
    ("no iat", claims(iat=DROP), POLICY, AcceptedAssertion("j1", NOW + 120, False)),
    ("float exp", claims(exp=NOW + 60.9), POLICY, AcceptedAssertion("j1", NOW + 120, False)),
    (
        "exp passed, within the leeway",
        claims(exp=NOW - 59, iat=NOW - 100),
        POLICY,
        AcceptedAssertion("j1", NOW + 1, False),
    ),
    (
        "iat within the leeway ahead",
        claims(iat=NOW + 60),
        POLICY,
        AcceptedAssertion("j1", NOW + 120, False),
    ),
    (
        "nbf within the leeway ahead",
        claims(nbf=NOW + 60),
        POLICY,
        AcceptedAssertion("j1", NOW + 120, False),
    ),
    (
        "lifetime exactly the maximum",
        claims(exp=NOW + 300),
        POLICY,
        AcceptedAssertion("j1", NOW + 360, False),
    ),
    (
        "legacy token endpoint audience, switched on",
        claims(aud=TOKEN_ENDPOINT),
        LEGACY,
        AcceptedAssertion("j1", NOW + 120, True),
    ),
    (
        "issuer audience with the switch on",
        claims(),
        LEGACY,
        AcceptedAssertion("j1", NOW + 120, False),
    ),
    (
        "jti of 255 characters",
        claims(jti="j" * 255),
        POLICY,
        AcceptedAssertion("j" * 255, NOW + 120, False),
    ),
]


@pytest.mark.parametrize(
    ("case", "presented", "policy", "expected"), ACCEPTED, ids=[c[0] for c in ACCEPTED]
)
def test_accepted_claims(
    case: str, presented: dict[str, Any], policy: AssertionPolicy, expected: AcceptedAssertion
) -> None:
    assert check_assertion_claims(presented, client_id="c1", policy=policy, now=NOW) == expected


REFUSED: list[tuple[str, dict[str, Any], AssertionPolicy, str]] = [
    # Items 1-2 with OIDC Core §9: iss and sub are both the client_id
    ("item 1: iss missing", claims(iss=DROP), POLICY, "iss is not the client_id"),
    ("item 1: iss another client", claims(iss="c2"), POLICY, "iss is not the client_id"),
    ("item 2: sub another client", claims(sub="c2"), POLICY, "sub is not the client_id"),
    # Item 3 with 7523bis: the issuer "as its sole value"
    (
        "item 3: aud missing",
        claims(aud=DROP),
        POLICY,
        "aud must be the issuer as a string or a one-element array",
    ),
    (
        "item 3: two audiences",
        claims(aud=[ISSUER, ISSUER]),
        POLICY,
        "aud must be the issuer as a string or a one-element array",
    ),
    (
        "item 3: empty array",
        claims(aud=[]),
        POLICY,
        "aud must be the issuer as a string or a one-element array",
    ),
    (
        "item 3: not a string",
        claims(aud=[1]),
        POLICY,
        "aud must be the issuer as a string or a one-element array",
    ),
    (
        "item 3: another server",
        claims(aud="https://other.example"),
        POLICY,
        "aud is not this server's issuer",
    ),
    (
        "item 3: issuer with a slash",
        claims(aud=ISSUER + "/"),
        POLICY,
        "aud is not this server's issuer",
    ),
    (
        "7523bis: token endpoint MUST NOT be used",
        claims(aud=TOKEN_ENDPOINT),
        POLICY,
        "aud is not this server's issuer",
    ),
    # Item 4: exp required, not passed (with leeway)
    ("item 4: exp missing", claims(exp=DROP), POLICY, "exp missing or not a NumericDate"),
    ("item 4: exp a string", claims(exp=str(NOW + 60)), POLICY, "exp missing or not a NumericDate"),
    ("item 4: exp true", claims(exp=True), POLICY, "exp missing or not a NumericDate"),
    ("item 4: exp infinite", claims(exp=float("inf")), POLICY, "exp missing or not a NumericDate"),
    ("item 4: exp NaN", claims(exp=float("nan")), POLICY, "exp missing or not a NumericDate"),
    ("item 4: expired beyond the leeway", claims(exp=NOW - 60, iat=NOW - 100), POLICY, "expired"),
    # Item 6 (iat) and the lifetime bound
    (
        "item 6: iat not a NumericDate",
        claims(iat="now"),
        POLICY,
        "iat missing or not a NumericDate",
    ),
    ("item 6: iat in the future", claims(iat=NOW + 61), POLICY, "iat in the future"),
    ("lifetime over the maximum", claims(exp=NOW + 301), POLICY, "lifetime over the maximum"),
    (
        "lifetime counted from an old iat",
        claims(iat=NOW - 250, exp=NOW + 60),
        POLICY,
        "lifetime over the maximum",
    ),
    # Item 5: "The authorization server MUST reject any JWT that is not yet valid."
    ("item 5: nbf in the future", claims(nbf=NOW + 61), POLICY, "not yet valid"),
    (
        "item 5: nbf not a NumericDate",
        claims(nbf=[NOW]),
        POLICY,
        "nbf missing or not a NumericDate",
    ),
    # RFC 7519 §4.1.5: "Its value MUST be a number containing a NumericDate value."
    ("item 5: nbf null", claims(nbf=None), POLICY, "nbf missing or not a NumericDate"),
    ("item 6: iat null", claims(iat=None), POLICY, "iat missing or not a NumericDate"),
    # Item 7 with OIDC Core §9: "jti REQUIRED"
    ("item 7: jti missing", claims(jti=DROP), POLICY, "jti missing or malformed"),
    ("item 7: jti empty", claims(jti=""), POLICY, "jti missing or malformed"),
    ("item 7: jti a number", claims(jti=1), POLICY, "jti missing or malformed"),
    ("item 7: jti too long", claims(jti="j" * 256), POLICY, "jti missing or malformed"),
]


@pytest.mark.parametrize(
    ("case", "presented", "policy", "reason"), REFUSED, ids=[c[0] for c in REFUSED]
)
def test_refused_claims(
    case: str, presented: dict[str, Any], policy: AssertionPolicy, reason: str
) -> None:
    assert (
        refusal(check_assertion_claims, presented, client_id="c1", policy=policy, now=NOW) == reason
    )
