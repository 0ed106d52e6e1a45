"""JWT access token claims (RFC 9068 §2.2).

Required claims: ``iss``, ``exp``, ``aud``, ``sub``, ``client_id``, ``iat``, ``jti``. For
grants without a resource owner "the sub claim SHOULD correspond to an identifier the
authorization server uses to indicate the client application" (RFC 9068 §2.2): tokenward uses
the client_id. The ``scope`` claim is a space-delimited string (RFC 8693 §4.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tokenward.protocol.client_credentials import Grant
from tokenward.protocol.scopes import format_scope

__all__ = ["JWT_TYP", "TokenResponse", "build_claims", "token_response"]

#: RFC 9068 §2.1: "the value of the typ header parameter SHOULD be at+jwt".
JWT_TYP = "at+jwt"


def build_claims(
    *, issuer: str, client_id: str, grant: Grant, now: int, jti: str
) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": client_id,
        "aud": grant.audience,
        "exp": now + grant.ttl,
        "iat": now,
        "jti": jti,
        "client_id": client_id,
    }
    if grant.scopes:
        claims["scope"] = format_scope(grant.scopes)
    return claims


@dataclass(frozen=True, slots=True)
class TokenResponse:
    access_token: str
    expires_in: int
    scope: str

    def body(self) -> dict[str, Any]:
        """RFC 6749 §5.1 successful response; no refresh token (§4.4.3)."""
        out: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }
        if self.scope:
            out["scope"] = self.scope
        return out

    def __repr__(self) -> str:
        return f"TokenResponse(expires_in={self.expires_in}, scope={self.scope!r})"


def token_response(access_token: str, grant: Grant) -> TokenResponse:
    return TokenResponse(access_token, grant.ttl, format_scope(grant.scopes))
