"""POST {issuer}/token: the client credentials grant (RFC 6749 §4.4.2-§4.4.3).

The hot path: everything it reads is in memory (registry snapshot, key ring) and a JWT costs
no database write. Steps: grant type, client authentication, grant type for that client,
audience/scopes/lifetime, the client's issuance quota (``quotas.py``, 429 past it), issue.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tokenward.protocol.access_token import TokenResponse
from tokenward.protocol.client_credentials import (
    Grant,
    TokenPolicy,
    check_grant_type,
    resolve_grant,
)
from tokenward.protocol.model import Client
from tokenward.server.authenticator import ClientAuthenticator
from tokenward.server.exchange import Exchange
from tokenward.server.issuer import TokenIssuer
from tokenward.server.quotas import IssuanceQuota
from tokenward.server.registry_cache import RegistryCache

__all__ = ["TokenEndpoint"]


class TokenEndpoint:
    name = "token"

    def __init__(
        self,
        *,
        authenticator: ClientAuthenticator,
        registry: RegistryCache,
        issuer: TokenIssuer,
        policy: TokenPolicy,
        quota: IssuanceQuota,
    ) -> None:
        self._authenticator = authenticator
        self._registry = registry
        self._issuer = issuer
        self._policy = policy
        self._quota = quota

    async def __call__(self, exchange: Exchange) -> Mapping[str, Any]:
        # RFC 6749 §4.4.2: "grant_type REQUIRED. Value MUST be set to client_credentials".
        check_grant_type(exchange.params)
        client = await self._authenticator.authenticate(exchange)
        check_grant_type(exchange.params, client)
        grant = resolve_grant(client, exchange.params, self._registry.registry, self._policy)
        self._quota.take(client, exchange.now)
        return (await self._issue(client, grant, exchange)).body()

    async def _issue(self, client: Client, grant: Grant, exchange: Exchange) -> TokenResponse:
        method = exchange.method or ""
        if grant.token_format == "opaque":
            return await self._issuer.opaque(client, grant, exchange.now, method)
        return self._issuer.jwt(client, grant, exchange.now, method)
