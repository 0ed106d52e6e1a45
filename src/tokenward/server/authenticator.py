"""Client authentication, shared by the token, introspection and revocation endpoints
(RFC 6749 §2.3, RFC 7662 §2.1, RFC 7009 §2.1).

Steps: extract the one method the request uses (``protocol.client_auth``); for a JWT
assertion, learn the client it names; throttle; find the client in the registry snapshot and
check it may authenticate this way; check the secret or the assertion; remember which secret
was used (written behind). Every failure is the same ``invalid_client`` and counts against the
client id in the throttle.
"""

from __future__ import annotations

from tokenward.protocol.client_auth import (
    PresentedCredentials,
    check_client_state,
    check_secret,
    extract_credentials,
)
from tokenward.protocol.errors import InvalidClient
from tokenward.protocol.model import Client
from tokenward.server.assertions import ASSERTION_METHODS, ClientAssertions
from tokenward.server.exchange import Exchange
from tokenward.server.registry_cache import RegistryCache
from tokenward.server.secrets import SecretHasher
from tokenward.server.throttle import FailureThrottle

__all__ = ["REALM", "ClientAuthenticator"]

#: The ``realm`` of the Basic challenge (RFC 7617 §2) on a 401.
REALM = "tokenward"


class ClientAuthenticator:
    def __init__(
        self,
        *,
        registry: RegistryCache,
        assertions: ClientAssertions,
        hasher: SecretHasher,
        throttle: FailureThrottle,
    ) -> None:
        self._registry = registry
        self._assertions = assertions
        self._hasher = hasher
        self._throttle = throttle
        self._last_used: dict[str, int] = {}

    async def authenticate(self, exchange: Exchange) -> Client:
        """The authenticated client of ``exchange``, or ``InvalidClient``."""
        exchange.credentials = extract_credentials(
            exchange.authorization, exchange.params, realm=REALM
        )
        try:
            exchange.credentials = self._assertions.identify(exchange.credentials)
            client = await self._verify(exchange.credentials, exchange.now)
        except InvalidClient:
            self._throttle.fail(exchange.client_id, exchange.now)
            raise
        exchange.authenticated = True
        return client

    async def _verify(self, creds: PresentedCredentials, now: int) -> Client:
        self._throttle.check(creds.client_id, now)
        client = check_client_state(await self._registry.lookup(creds.client_id), creds, REALM)
        if creds.method in ASSERTION_METHODS:
            secret_id = await self._assertions.authenticate(client, creds, now)
        else:
            secret_id = check_secret(
                client, creds, digest=self._hasher.digest_like, now=now, realm=REALM
            )
        if secret_id is not None:
            self._last_used[secret_id] = now
        return client

    def drain_last_used(self) -> dict[str, int]:
        """The "last used" stamps of secrets since the previous call (written behind)."""
        stamps, self._last_used = self._last_used, {}
        return stamps
