"""Reading our own tokens back: the lookups behind introspection (RFC 7662) and revocation
(RFC 7009).

A JWT is ours when one of the key ring's published keys verifies it and its claims are an
RFC 9068 access token from this issuer; an opaque token is ours when its digest is stored.
Whether a token is *active* is decided against the database (the issuing client's current
``enabled``, ``not_before`` and ``created_at``, and the ``jti`` deny-list), not the per-worker
registry cache, so a revocation or a disabled client is visible to every worker at once.
A store failure is a 503, never a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tokenward.jose.keys import SIGNING_ALGORITHMS
from tokenward.jose.verification import JoseError, PublicKeySet, verify_jws
from tokenward.protocol.introspection import access_token_claims, is_active
from tokenward.protocol.model import Client
from tokenward.protocol.opaque_token import is_opaque_token, opaque_digest
from tokenward.server.keys import KeyRing
from tokenward.server.stores import TokenStore, or_unavailable

__all__ = ["REVOCATION_SKEW", "TokenReader"]

#: Revoked JWTs stay deny-listed this long past ``exp``, covering verifiers' clock leeway.
REVOCATION_SKEW = 60


class TokenReader:
    def __init__(self, *, issuer: str, keyring: KeyRing, tokens: TokenStore) -> None:
        self._issuer = issuer
        self._keyring = keyring
        self._tokens = tokens
        self._our_keys: tuple[frozenset[str], PublicKeySet] | None = None

    def _verification_keys(self) -> PublicKeySet:
        materials = self._keyring.verification_keys()
        kids = frozenset(materials)
        if self._our_keys is None or self._our_keys[0] != kids:
            jwks = {"keys": [m.public_jwk for m in materials.values()]}
            self._our_keys = (kids, PublicKeySet.from_jwks(jwks))
        return self._our_keys[1]

    def _jwt_claims(self, token: str) -> Mapping[str, Any] | None:
        try:
            verified = verify_jws(token, self._verification_keys(), algorithms=SIGNING_ALGORITHMS)
        except JoseError:
            return None
        return access_token_claims(verified.header, verified.claims, issuer=self._issuer)

    async def claims(self, token: str) -> Mapping[str, Any] | None:
        """The claims of one of our tokens (signature or digest checked), else None. Whatever
        the hint says, both formats are tried (RFC 7662 §2.1, RFC 7009 §2.1): the token's
        shape tells them apart."""
        if is_opaque_token(token):
            found: Mapping[str, Any] | None = await or_unavailable(
                self._tokens.find_opaque(opaque_digest(token))
            )
            return found
        return self._jwt_claims(token)

    async def is_active(self, claims: Mapping[str, Any], now: int) -> bool:
        facts, revoked = await or_unavailable(
            self._tokens.token_facts(claims["client_id"], claims["jti"])
        )
        return is_active(claims, facts, revoked=revoked, now=now)

    async def revoke(self, token: str, claims: Mapping[str, Any], caller: Client, now: int) -> None:
        """Make one of the caller's tokens inactive everywhere: delete an opaque token's row,
        deny-list a JWT's ``jti`` until it expires."""
        if is_opaque_token(token):
            await or_unavailable(
                self._tokens.delete_opaque(opaque_digest(token), client_id=caller.client_id)
            )
        elif claims["exp"] > now:
            await or_unavailable(
                self._tokens.revoke_jti(
                    claims["jti"],
                    client_id=caller.client_id,
                    expires_at=int(claims["exp"]) + REVOCATION_SKEW,
                )
            )
