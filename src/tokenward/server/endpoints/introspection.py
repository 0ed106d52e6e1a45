"""POST {issuer}/introspect: token introspection (RFC 7662 §2).

Who may see what is ``protocol.introspection.may_introspect``: the token's own client, and a
client registered to introspect the token's API. Anything else is ``{"active": false}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tokenward.protocol.introspection import (
    INACTIVE,
    introspection_response,
    may_introspect,
    parse_token_query,
)
from tokenward.server.authenticator import ClientAuthenticator
from tokenward.server.events import AuditBuffer
from tokenward.server.exchange import Exchange
from tokenward.server.reader import TokenReader

__all__ = ["IntrospectionEndpoint"]


class IntrospectionEndpoint:
    name = "introspection"

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
        visible = claims if claims is not None and may_introspect(caller, claims) else None
        active = visible is not None and await self._reader.is_active(visible, exchange.now)
        self._audit.record(
            "token.introspected",
            client_id=caller.client_id,
            token_client_id=visible["client_id"] if visible else None,
            jti=visible["jti"] if visible else None,
            active=active,
            outcome="success",
        )
        if not active or visible is None:
            return INACTIVE
        return introspection_response(visible)
