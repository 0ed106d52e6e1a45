"""Token introspection (RFC 7662) and the token-state rules revocation shares with it.

A token is *active* when it was issued by this server, its signature (JWT) or its digest
(opaque) is known, it has not expired, it was not revoked, its client still exists and is
enabled, and it was issued at or after the client's ``not_before`` (set by
``tokenward clients revoke-tokens`` and by disabling the client).

Who may see a token (RFC 7662 §4: the server "SHOULD require specific authorization"; §2.2 the
answer "MAY be different ... based on the particular protected resource making the request"):

* the client the token was issued to, and
* a client registered to introspect the token's API (``introspect_apis``, ``tokenward
  clients create --introspect API``): a resource server checking tokens presented to it.

Everything else - including tokens the caller may not see - is ``{"active": false}``, with
nothing added (§2.2: "the authorization server SHOULD NOT include any additional information").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from tokenward.jose.verification import is_numeric_date
from tokenward.protocol.access_token import JWT_TYP
from tokenward.protocol.errors import InvalidRequest
from tokenward.protocol.model import Client

__all__ = [
    "INACTIVE",
    "TOKEN_TYPE_HINTS",
    "ClientFacts",
    "TokenQuery",
    "access_token_claims",
    "introspection_response",
    "is_active",
    "may_introspect",
    "parse_token_query",
]

#: RFC 7662 §2.2 / RFC 7009 §2.1 hints tokenward knows. It issues access tokens only, so a
#: hint never changes the outcome: "If the server is unable to locate the token using the given
#: hint, it MUST extend its search across all of its supported token types."
TOKEN_TYPE_HINTS: Final = frozenset({"access_token", "refresh_token"})
INACTIVE: Final[Mapping[str, bool]] = {"active": False}
_MAX_TOKEN = 8192
_RESPONSE_CLAIMS: Final = ("client_id", "scope", "aud", "iss", "exp", "iat", "jti", "sub")


@dataclass(frozen=True, slots=True)
class TokenQuery:
    """The ``token`` and ``token_type_hint`` of an introspection or revocation request."""

    token: str
    hint: str | None

    def __repr__(self) -> str:
        return f"TokenQuery(hint={self.hint!r})"


@dataclass(frozen=True, slots=True)
class ClientFacts:
    """The issuing client as the database knows it right now (not the cached registry)."""

    enabled: bool
    not_before: int | None
    created_at: int


def parse_token_query(params: Mapping[str, str]) -> TokenQuery:
    """RFC 7662 §2.1 / RFC 7009 §2.1: ``token`` REQUIRED, ``token_type_hint`` OPTIONAL. An
    unknown hint is ignored (RFC 7009 §2.2.1 lets the server answer ``unsupported_token_type``;
    searching everything is simpler and reveals nothing)."""
    token = params.get("token")
    if token is None:
        raise InvalidRequest("token is required", reason="no token")
    hint = params.get("token_type_hint")
    return TokenQuery(token[:_MAX_TOKEN], hint if hint in TOKEN_TYPE_HINTS else None)


def access_token_claims(
    header: Mapping[str, Any], claims: Mapping[str, Any], *, issuer: str
) -> Mapping[str, Any] | None:
    """The claims of a verified JWT if it is one of our access tokens (RFC 9068 §2), else None."""
    if header.get("typ") != JWT_TYP or claims.get("iss") != issuer:
        return None
    # RFC 9068 §2.2: "exp" and "iat" are NumericDates (RFC 7519 §2), one rule for every JWT.
    if not (is_numeric_date(claims.get("exp")) and is_numeric_date(claims.get("iat"))):
        return None
    if not all(type(claims.get(name)) is str for name in ("client_id", "jti", "sub", "aud")):
        return None
    return claims


def is_active(
    claims: Mapping[str, Any], facts: ClientFacts | None, *, revoked: bool, now: int
) -> bool:
    """RFC 7662 §4: the server "MUST perform all applicable checks against a token's state"."""
    if revoked or facts is None or not facts.enabled:
        return False
    iat, exp = claims["iat"], claims["exp"]
    if exp <= now or iat < facts.created_at:
        # A token older than its client belongs to a deleted client of the same id.
        return False
    return facts.not_before is None or iat >= facts.not_before


def may_introspect(caller: Client, claims: Mapping[str, Any]) -> bool:
    """The introspection policy of this module's docstring."""
    return claims["client_id"] == caller.client_id or claims["aud"] in caller.introspect_apis


def introspection_response(claims: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7662 §2.2 for an active bearer token."""
    body: dict[str, Any] = {"active": True}
    body.update((name, claims[name]) for name in _RESPONSE_CLAIMS if name in claims)
    # "token_type: Type of the token as defined in Section 5.1 of OAuth 2.0".
    body["token_type"] = "Bearer"
    return body
