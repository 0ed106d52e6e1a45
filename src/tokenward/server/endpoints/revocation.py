"""POST {issuer}/revoke: token revocation (RFC 7009 §2).

A client revokes its own tokens; for any other token, and for an unknown one, the answer is
the same empty 200 and nothing changes (``protocol.revocation``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tokenward.protocol.introspection import parse_token_query
from tokenward.protocol.revocation import may_revoke
from tokenward.server.authenticator import ClientAuthenticator
from tokenward.server.events import AuditBuffer
from tokenward.server.exchange import Exchange
from tokenward.server.reader import TokenReader

__all__ = ["RevocationEndpoint"]


class RevocationEndpoint:
    name = "revocation"

    def __init__(
        self, *, authenticator: ClientAuthenticator, reader: TokenReader, audit: AuditBuffer
    ) -> None:
        self._authenticator = authenticator
        self._reader = reader
        self._audit = audit

    async def __call__(self, exchange: Exchange) -> Mapping[str, Any]:
        query = parse_token_query(exchange.params)
        caller = await self._authenticator.authenticate(exchange)
        claims = await self._reader.claims(query.token)
        if claims is None or not may_revoke(caller, claims):
            outcome = "unknown" if claims is None else "refused (not the caller's token)"
            self._audit.record(
                "token.revocation_ignored", client_id=caller.client_id, outcome=outcome
            )
        else:
            await self._reader.revoke(query.token, claims, caller, exchange.now)
            self._audit.record(
                "token.revoked", client_id=caller.client_id, jti=claims["jti"], outcome="success"
            )
        # RFC 7009 §2.2: "The content of the response body is ignored by the client".
        return {}
