"""One NumericDate rule (RFC 7519 §2) for every JWT tokenward reads.

"NumericDate: A JSON numeric value representing the number of seconds from
1970-01-01T00:00:00Z UTC until the specified UTC date/time". ``tokenward.jose.verification.
is_numeric_date`` is the rule: a JSON number (``true`` is not one) that is finite (``1e400``
parses to infinity). Client assertions (RFC 7523 §3), this server's own access tokens at
introspection (RFC 9068 §2.2) and access tokens at a resource server (RFC 9068 §4) must agree
with it value for value.
"""

from __future__ import annotations

import pytest

from tokenward.jose.verification import is_numeric_date
from tokenward.protocol.client_assertion import AssertionPolicy, check_assertion_claims
from tokenward.protocol.errors import InvalidClient
from tokenward.protocol.introspection import access_token_claims
from tokenward.resource.claims import VerificationPolicy, access_token_from_jwt
from tokenward.resource.errors import InvalidToken

NOW = 1_700_000_000
ISSUER, API = "https://as.example", "https://api.example"

# (value, is it a NumericDate?) - every value is a time that is no later than NOW.
VALUES: list[tuple[object, bool]] = [
    (0, True),
    (NOW, True),
    (NOW - 0.5, True),
    (-1, True),
    (float(NOW), True),
    (True, False),
    (False, False),
    (None, False),
    (str(NOW), False),
    ([NOW], False),
    ({"t": NOW}, False),
    (float("inf"), False),
    (float("-inf"), False),
    (float("nan"), False),
]


@pytest.mark.parametrize(("value", "numeric"), VALUES, ids=[repr(v) for v, _ in VALUES])
def test_the_rule(value: object, numeric: bool) -> None:
    assert is_numeric_date(value) is numeric


def _client_assertion_refusal(nbf: object) -> str | None:
    claims = {"iss": "c1", "sub": "c1", "aud": ISSUER, "exp": NOW + 60, "iat": NOW, "jti": "j"}
    policy = AssertionPolicy(issuer=ISSUER, token_endpoint=ISSUER + "/token")
    try:
        check_assertion_claims({**claims, "nbf": nbf}, client_id="c1", policy=policy, now=NOW)
    except InvalidClient as exc:
        return exc.reason
    return None


def _introspection_accepts(iat: object) -> bool:
    claims = {"iss": ISSUER, "exp": NOW + 60, "iat": iat}
    claims.update(sub="c1", aud=API, client_id="c1", jti="j")
    return access_token_claims({"typ": "at+jwt"}, claims, issuer=ISSUER) is not None


def _resource_refusal(nbf: object) -> str | None:
    claims = {"iss": ISSUER, "exp": NOW + 60, "iat": NOW, "nbf": nbf}
    claims.update(sub="c1", aud=API, client_id="c1", jti="j")
    policy = VerificationPolicy(issuer=ISSUER, audience=API)
    try:
        access_token_from_jwt({"typ": "at+jwt"}, claims, policy=policy, now=NOW)
    except InvalidToken as exc:
        return exc.reason
    return None


@pytest.mark.parametrize(("value", "numeric"), VALUES, ids=[repr(v) for v, _ in VALUES])
def test_every_reader_applies_the_rule(value: object, numeric: bool) -> None:
    refused = not numeric
    assert _client_assertion_refusal(value) == (
        "assertion: nbf missing or not a NumericDate" if refused else None
    )
    assert _introspection_accepts(value) is numeric
    assert _resource_refusal(value) == ("exp, nbf or iat is not a NumericDate" if refused else None)
