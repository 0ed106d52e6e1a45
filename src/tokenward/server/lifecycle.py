"""Token lifecycle: opaque tokens, introspection (RFC 7662), revocation (RFC 7009), purging.

The token service issues JWTs without touching the database; everything here reads or writes
it, because that is what makes a revocation, a disabled client or a ``revoke-tokens`` visible
to every worker and instance at once:

* opaque tokens: one row per token (SHA-256 digest, claims, expiry);
* revoked JWTs: their ``jti`` until ``exp`` (``revoked_tokens``);
* the issuing client's ``enabled``, ``not_before`` and ``created_at``, read from the database
  on each introspection rather than from the per-worker registry cache.

Expired rows (opaque tokens, revocations, used client-assertion ``jti`` values) are deleted
every ``opaque_token_purge_seconds``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from tokenward.jose.keys import SIGNING_ALGORITHMS
from tokenward.jose.verification import JoseError, PublicKeySet, verify_jws
from tokenward.protocol.access_token import TokenResponse, build_claims, token_response
from tokenward.protocol.client_auth import PresentedCredentials, extract_credentials
from tokenward.protocol.client_credentials import Grant
from tokenward.protocol.errors import InvalidClient, OAuthError, TemporarilyUnavailable
from tokenward.protocol.introspection import (
    INACTIVE,
    TokenQuery,
    access_token_claims,
    introspection_response,
    is_active,
    may_introspect,
    parse_token_query,
)
from tokenward.protocol.model import Client
from tokenward.protocol.opaque_token import is_opaque_token, opaque_digest, opaque_token
from tokenward.protocol.revocation import may_revoke

if TYPE_CHECKING:
    from tokenward.server.service import TokenService

__all__ = ["REVOCATION_SKEW", "TokenLifecycle"]

log = logging.getLogger("tokenward.lifecycle")
T = TypeVar("T")
#: Revoked JWTs stay deny-listed this long past ``exp``, covering verifiers' clock leeway.
REVOCATION_SKEW = 60


class TokenLifecycle:
    def __init__(self, service: TokenService) -> None:
        self.service = service
        self.repository = service.repository
        self._our_keys: tuple[frozenset[str], PublicKeySet] | None = None

    # -- opaque tokens ------------------------------------------------------------------------

    async def issue_opaque(
        self, client: Client, grant: Grant, now: int, method: str
    ) -> TokenResponse:
        """An opaque token: 256 random bits; the database keeps its digest and claims."""
        token = opaque_token(secrets.token_urlsafe(32))
        jti = secrets.token_urlsafe(16)
        claims = build_claims(
            issuer=self.service.settings.issuer,
            client_id=client.client_id,
            grant=grant,
            now=now,
            jti=jti,
        )
        await self._store(
            self.repository.store_opaque(
                opaque_digest(token),
                client_id=client.client_id,
                claims=claims,
                expires_at=claims["exp"],
            )
        )
        self.service.audit.issued(
            client_id=client.client_id,
            scopes=grant.scopes,
            audience=grant.audience,
            jti=jti,
            method=method,
        )
        return token_response(token, grant)

    @staticmethod
    async def _store(operation: Awaitable[T]) -> T:
        """Run a database operation; an outage is a 503, never a guess."""
        try:
            return await operation
        except Exception:
            log.exception("token store unavailable")
            raise TemporarilyUnavailable(reason="token store unavailable") from None

    # -- reading a token ----------------------------------------------------------------------

    def _verification_keys(self) -> PublicKeySet:
        materials = self.service.keys.verification_keys()
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
        return access_token_claims(
            verified.header, verified.claims, issuer=self.service.settings.issuer
        )

    async def _claims(self, token: str) -> Mapping[str, Any] | None:
        """The claims of one of our tokens (signature or digest checked), else None. Whatever
        the hint says, both formats are tried (RFC 7662 §2.1, RFC 7009 §2.1): the token's
        shape tells them apart."""
        if is_opaque_token(token):
            found: Mapping[str, Any] | None = await self._store(
                self.repository.find_opaque(opaque_digest(token))
            )
            return found
        return self._jwt_claims(token)

    async def _active(self, claims: Mapping[str, Any], now: int) -> bool:
        facts, revoked = await self._store(
            self.repository.token_facts(claims["client_id"], claims["jti"])
        )
        return is_active(claims, facts, revoked=revoked, now=now)

    # -- the endpoints ------------------------------------------------------------------------

    async def _caller(
        self, authorization: bytes | None, params: Mapping[str, str], now: int, endpoint: str
    ) -> tuple[Client, TokenQuery]:
        """Parse, then authenticate the caller as the token endpoint does (RFC 7662 §2.1,
        RFC 7009 §2.1), with the same throttling and audit."""
        service = self.service
        creds: PresentedCredentials | None = None
        try:
            query = parse_token_query(params)
            creds = extract_credentials(authorization, params, realm=service.realm)
            creds = service.assertions.identify(creds)
            return await service.authenticate(creds, now), query
        except OAuthError as error:
            client_id = creds.client_id if creds is not None else None
            if isinstance(error, InvalidClient):
                service.throttle.fail(client_id, now)
            service.audit.failed(
                endpoint=endpoint,
                client_id=client_id,
                error=error.error,
                reason=error.reason,
                method=creds.method if creds is not None else None,
            )
            raise

    async def introspect(
        self, authorization: bytes | None, params: Mapping[str, str]
    ) -> Mapping[str, Any]:
        """RFC 7662 §2: the token's state as this caller may see it."""
        now = int(self.service.clock())
        caller, query = await self._caller(authorization, params, now, "introspection")
        claims = await self._claims(query.token)
        visible = claims is not None and may_introspect(caller, claims)
        active = visible and claims is not None and await self._active(claims, now)
        self.service.audit.record(
            "token.introspected",
            client_id=caller.client_id,
            token_client_id=claims["client_id"] if visible and claims else None,
            jti=claims["jti"] if visible and claims else None,
            active=active,
            outcome="success",
        )
        if not active or claims is None:
            return INACTIVE
        return introspection_response(claims)

    async def revoke(self, authorization: bytes | None, params: Mapping[str, str]) -> None:
        """RFC 7009 §2: revoke the caller's own token; anything else changes nothing."""
        now = int(self.service.clock())
        caller, query = await self._caller(authorization, params, now, "revocation")
        claims = await self._claims(query.token)
        if claims is None or not may_revoke(caller, claims):
            outcome = "unknown" if claims is None else "refused (not the caller's token)"
            self.service.audit.record(
                "token.revocation_ignored", client_id=caller.client_id, outcome=outcome
            )
            return
        if is_opaque_token(query.token):
            digest = opaque_digest(query.token)
            await self._store(self.repository.delete_opaque(digest, client_id=caller.client_id))
        elif claims["exp"] > now:
            await self._store(
                self.repository.revoke_jti(
                    claims["jti"],
                    client_id=caller.client_id,
                    expires_at=int(claims["exp"]) + REVOCATION_SKEW,
                )
            )
        self.service.audit.record(
            "token.revoked", client_id=caller.client_id, jti=claims["jti"], outcome="success"
        )

    # -- housekeeping -------------------------------------------------------------------------

    async def purge(self) -> dict[str, int]:
        """Delete every expired opaque token, revocation and used assertion ``jti``."""
        counts = await self.repository.purge_expired(int(self.service.clock()))
        if any(counts.values()):
            log.info("purged expired rows", extra={"purged": counts})
        return counts

    async def purge_loop(self) -> None:
        while True:
            await asyncio.sleep(self.service.settings.opaque_token_purge_seconds)
            try:
                await self.purge()
            except Exception:
                log.exception("purge of expired tokens failed")
