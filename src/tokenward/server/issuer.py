"""Issuing access tokens: RFC 9068 JWTs signed by the key ring, or opaque handles.

A JWT costs no database write: the claims are built, signed with the algorithm's active key,
and the issuance is appended to the audit buffer. An opaque token is 256 random bits whose
digest and claims are stored (one write, the only one on the token path) before it is returned,
so it is introspectable the moment the client holds it.
"""

from __future__ import annotations

import secrets

from tokenward.protocol.access_token import TokenResponse, build_claims, token_response
from tokenward.protocol.client_credentials import Grant
from tokenward.protocol.errors import TemporarilyUnavailable
from tokenward.protocol.model import Client
from tokenward.protocol.opaque_token import opaque_digest, opaque_token
from tokenward.server.events import AuditBuffer
from tokenward.server.keys import KeyRing
from tokenward.server.stores import TokenStore, or_unavailable

__all__ = ["TokenIssuer"]


class TokenIssuer:
    def __init__(
        self, *, issuer: str, keyring: KeyRing, tokens: TokenStore, audit: AuditBuffer
    ) -> None:
        self._issuer = issuer
        self._keyring = keyring
        self._tokens = tokens
        self._audit = audit

    def jwt(self, client: Client, grant: Grant, now: int, method: str) -> TokenResponse:
        signer = self._keyring.signer(grant.signing_alg, now)
        if signer is None:
            raise TemporarilyUnavailable(reason=f"no active {grant.signing_alg} key")
        jti = secrets.token_urlsafe(16)
        claims = build_claims(
            issuer=self._issuer, client_id=client.client_id, grant=grant, now=now, jti=jti
        )
        token = signer.sign(claims)
        return self._issued(token, client, grant, jti, method)

    async def opaque(self, client: Client, grant: Grant, now: int, method: str) -> TokenResponse:
        token = opaque_token(secrets.token_urlsafe(32))
        jti = secrets.token_urlsafe(16)
        claims = build_claims(
            issuer=self._issuer, client_id=client.client_id, grant=grant, now=now, jti=jti
        )
        await or_unavailable(
            self._tokens.store_opaque(
                opaque_digest(token),
                client_id=client.client_id,
                claims=claims,
                expires_at=claims["exp"],
            )
        )
        return self._issued(token, client, grant, jti, method)

    def _issued(
        self, token: str, client: Client, grant: Grant, jti: str, method: str
    ) -> TokenResponse:
        self._audit.issued(
            client_id=client.client_id,
            scopes=grant.scopes,
            audience=grant.audience,
            jti=jti,
            method=method,
        )
        return token_response(token, grant)
