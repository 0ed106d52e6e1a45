"""Client authentication, shared by the token, introspection and revocation endpoints
(RFC 6749 §2.3, RFC 7662 §2.1, RFC 7009 §2.1).

Steps: extract the one method the request uses (``protocol.client_auth``); for a JWT
assertion, learn the client it names; throttle (per client id and source address, and per
source address: ``throttle.py``); check the client in the registry snapshot and its secret or
assertion; remember which secret was used (written behind) and what authenticated the client
(audit). Every failure is the same ``invalid_client`` and counts in the throttle.

No existence oracle (docs/security.md): every failure - unknown id, wrong secret, disabled
client, wrong method, bad assertion signature, unknown assertion ``sub`` - does the same work:

1. the cryptography of the method, real or a decoy: one HMAC of the presented secret, or one
   verification of the assertion's algorithm (``ClientAssertions.decoy``);
2. one bounded single-row read of the presented client id (``RegistryCache.fresh_client``).
   If the registry changed since this worker's snapshot and the stored client now
   authenticates (created or given a secret a moment ago on another instance), the request
   succeeds and the worker reloads; otherwise the first failure stands.

A success pays for neither.
"""

from __future__ import annotations

from tokenward.protocol.client_auth import (
    PresentedCredentials,
    check_client_state,
    check_secret,
    extract_credentials,
)
from tokenward.protocol.errors import InvalidClient, TemporarilyUnavailable
from tokenward.protocol.model import Client
from tokenward.server.assertions import ASSERTION_METHODS, ClientAssertions, Proof
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
        self._decoy_digest = hasher.digest("decoy: no client has this secret")

    async def authenticate(self, exchange: Exchange) -> Client:
        """The authenticated client of ``exchange``, or ``InvalidClient`` (or ``SlowDown``, or
        ``TemporarilyUnavailable`` while the registry was never loaded: a worker that started
        while the database was away knows no client yet, and must not call every one unknown).
        """
        if not self._registry.loaded:
            raise TemporarilyUnavailable(reason="registry not loaded yet")
        creds = extract_credentials(exchange.authorization, exchange.params, realm=REALM)
        exchange.credentials = creds
        source, now = exchange.source, exchange.now
        try:
            exchange.credentials = creds = self._assertions.identify(creds)
        except InvalidClient:
            self._throttle.check(None, source, now)
            self._throttle.fail(None, source, now)
            raise
        self._throttle.check(creds.client_id, source, now)
        try:
            client, proof = await self._verify(creds, now)
        except InvalidClient:
            self._throttle.fail(creds.client_id, source, now)
            raise
        self._record(exchange, proof, now)
        exchange.authenticated = True
        return client

    async def _verify(self, creds: PresentedCredentials, now: int) -> tuple[Client, Proof]:
        try:
            return await self._attempt(self._registry.get(creds.client_id), creds, now)
        except InvalidClient as failure:
            fresh = await self._registry.fresh_client(creds.client_id)
            if fresh is None:
                raise
            try:
                client, proof = await self._attempt(fresh, creds, now)
            except InvalidClient:
                raise failure from None
        # Created or changed a moment ago elsewhere: see the whole registry as it is now.
        await self._registry.refresh_if_changed()
        return self._registry.get(client.client_id) or client, proof

    async def _attempt(
        self, found: Client | None, creds: PresentedCredentials, now: int
    ) -> tuple[Client, Proof]:
        try:
            client = check_client_state(found, creds, REALM)
        except InvalidClient:
            self._decoy(creds)
            raise
        if creds.method in ASSERTION_METHODS:
            return client, await self._assertions.authenticate(client, creds, now)
        digest = self._hasher.digest_like
        secret_id = check_secret(client, creds, digest=digest, now=now, realm=REALM)
        return client, Proof(secret_id=secret_id)

    def _decoy(self, creds: PresentedCredentials) -> None:
        """The cryptography a real check of ``creds`` would do, for no client."""
        if creds.method in ASSERTION_METHODS:
            self._assertions.decoy(creds)
        elif creds.secret is not None:
            self._hasher.digest_like(creds.secret, self._decoy_digest)

    def _record(self, exchange: Exchange, proof: Proof, now: int) -> None:
        if proof.secret_id is not None:
            self._last_used[proof.secret_id] = now
            exchange.audit["secret_id"] = proof.secret_id
        elif exchange.method in ASSERTION_METHODS:
            exchange.audit["kid"] = proof.kid

    def drain_last_used(self) -> dict[str, int]:
        """The "last used" stamps of secrets since the previous call (written behind)."""
        stamps, self._last_used = self._last_used, {}
        return stamps
