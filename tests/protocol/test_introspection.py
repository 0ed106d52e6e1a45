"""Token introspection (RFC 7662) and revocation (RFC 7009) rules, sans-IO.

Over HTTP, with the database: tests/lifecycle/test_introspection.py and test_revocation.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from tokenward.protocol.errors import InvalidRequest
from tokenward.protocol.introspection import (
    INACTIVE,
    TOKEN_TYPE_HINTS,
    ClientFacts,
    TokenQuery,
    access_token_claims,
    introspection_response,
    is_active,
    may_introspect,
    parse_token_query,
)
from tokenward.protocol.model import Client
from tokenward.protocol.revocation import may_revoke

ISSUER = "https://as.example"
HEADER = {"alg": "ES256", "kid": "k", "typ": "at+jwt"}
NOW = 10_000
DROP = object()


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "c1",
        "aud": "https://api.example",
        "exp": NOW + 60,
        "iat": NOW - 10,
        "jti": "j1",
        "client_id": "c1",
        "scope": "read",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not DROP}


# -- RFC 7662 §2.1 / RFC 7009 §2.1: the request ----------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"token": "t"}, TokenQuery("t", None)),
        ({"token": "t", "token_type_hint": "access_token"}, TokenQuery("t", "access_token")),
        ({"token": "t", "token_type_hint": "refresh_token"}, TokenQuery("t", "refresh_token")),
        # RFC 7009 §2.2.1 lets the server refuse unknown hints; tokenward searches everything.
        ({"token": "t", "token_type_hint": "id_token"}, TokenQuery("t", None)),
        ({"token": "x" * 9000}, TokenQuery("x" * 8192, None)),
    ],
)
def test_token_query(params: dict[str, str], expected: TokenQuery) -> None:
    assert parse_token_query(params) == expected
    assert "x" * 20 not in repr(parse_token_query(params))  # the token never reaches a log
    assert {"access_token", "refresh_token"} == TOKEN_TYPE_HINTS


def test_token_is_required() -> None:
    """RFC 7662 §2.1: "token REQUIRED"."""
    with pytest.raises(InvalidRequest) as caught:
        parse_token_query({"token_type_hint": "access_token"})
    assert caught.value.body() == {
        "error": "invalid_request",
        "error_description": "token is required",
    }


# -- RFC 9068 §2: is a verified JWT one of this server's access tokens? ------------------------


@pytest.mark.parametrize(
    ("case", "header", "presented"),
    [
        ("typ at+jwt, every claim", HEADER, claims()),
        ("float times", HEADER, claims(exp=NOW + 60.5, iat=NOW - 0.5)),
        ("no scope", HEADER, claims(scope=DROP)),
    ],
)
def test_our_access_tokens(case: str, header: dict[str, Any], presented: dict[str, Any]) -> None:
    assert access_token_claims(header, presented, issuer=ISSUER) == presented


@pytest.mark.parametrize(
    ("case", "header", "presented"),
    [
        ("RFC 9068 §2.1: typ", {"alg": "ES256", "typ": "JWT"}, claims()),
        ("typ with prefix is not what this server writes", {"typ": "application/at+jwt"}, claims()),
        ("another issuer", HEADER, claims(iss="https://other.example")),
        ("exp missing", HEADER, claims(exp=DROP)),
        ("exp a string", HEADER, claims(exp=str(NOW))),
        ("exp true", HEADER, claims(exp=True)),
        ("exp infinite", HEADER, claims(exp=float("inf"))),
        ("iat NaN", HEADER, claims(iat=float("nan"))),
        ("iat missing", HEADER, claims(iat=DROP)),
        ("client_id missing", HEADER, claims(client_id=DROP)),
        ("jti a number", HEADER, claims(jti=1)),
        ("sub missing", HEADER, claims(sub=DROP)),
        ("aud an array (never issued here)", HEADER, claims(aud=["https://api.example"])),
    ],
)
def test_not_our_access_tokens(
    case: str, header: dict[str, Any], presented: dict[str, Any]
) -> None:
    assert access_token_claims(header, presented, issuer=ISSUER) is None


# -- RFC 7662 §4: "all applicable checks against a token's state" ------------------------------

FACTS = ClientFacts(enabled=True, not_before=None, created_at=0)


@pytest.mark.parametrize(
    ("case", "presented", "facts", "revoked", "active"),
    [
        ("live token", claims(), FACTS, False, True),
        ("revoked", claims(), FACTS, True, False),
        ("client deleted", claims(), None, False, False),
        ("client disabled", claims(), ClientFacts(False, None, 0), False, False),
        ("expired now", claims(exp=NOW), FACTS, False, False),
        ("expires in a second", claims(exp=NOW + 1), FACTS, False, True),
        (
            "older than its client (a deleted namesake's)",
            claims(iat=5),
            ClientFacts(True, None, 6),
            False,
            False,
        ),
        ("issued with its client", claims(iat=6), ClientFacts(True, None, 6), False, True),
        ("before the client's not_before", claims(iat=99), ClientFacts(True, 100, 0), False, False),
        ("at the client's not_before", claims(iat=100), ClientFacts(True, 100, 0), False, True),
    ],
)
def test_is_active(
    case: str, presented: dict[str, Any], facts: ClientFacts | None, revoked: bool, active: bool
) -> None:
    assert is_active(presented, facts, revoked=revoked, now=NOW) is active


# -- who may see a token (RFC 7662 §4) and revoke it (RFC 7009 §2.1) ---------------------------

OWNER = Client("c1", "owner")
RESOURCE_SERVER = Client("rs", "api", introspect_apis=frozenset({"https://api.example"}))
STRANGER = Client("c2", "stranger", introspect_apis=frozenset({"https://other.example"}))


@pytest.mark.parametrize(
    ("caller", "introspect", "revoke"),
    [(OWNER, True, True), (RESOURCE_SERVER, True, False), (STRANGER, False, False)],
    ids=["the client it was issued to", "a resource server of its API", "any other client"],
)
def test_who_may_introspect_and_revoke(caller: Client, introspect: bool, revoke: bool) -> None:
    assert may_introspect(caller, claims()) is introspect
    assert may_revoke(caller, claims()) is revoke


def test_introspection_response() -> None:
    """RFC 7662 §2.2: "active" REQUIRED; the claims of the token; token_type per RFC 6749."""
    presented = claims(extra="never shown", nbf=1)
    assert introspection_response(presented) == {
        "active": True,
        "client_id": "c1",
        "scope": "read",
        "aud": "https://api.example",
        "iss": ISSUER,
        "exp": NOW + 60,
        "iat": NOW - 10,
        "jti": "j1",
        "sub": "c1",
        "token_type": "Bearer",
    }
    assert introspection_response(claims(scope=DROP)).keys() == {
        "active",
        "client_id",
        "aud",
        "iss",
        "exp",
        "iat",
        "jti",
        "sub",
        "token_type",
    }
    # §2.2: for an inactive token "SHOULD NOT include any additional information".
    assert dict(INACTIVE) == {"active": False}
