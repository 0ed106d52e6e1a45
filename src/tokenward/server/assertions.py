"""JWT client authentication (RFC 7523 §2.2, §3; OIDC Core §9): the rules of
``tokenward.protocol.client_assertion`` wired to client keys, secrets and the replay store.

Steps, cheapest first: parse the assertion without trusting it and learn the client it names
(:meth:`ClientAssertions.identify`); check that client exists, is enabled and is registered
for the method the header's ``alg`` implies (the service does that, as for secrets); verify the
signature with that client's registered keys or secrets only; check the claims; record the
``jti`` once in the database (atomic across workers and instances, fail closed).

An assertion that names no usable client still costs one verification of its algorithm
(:meth:`ClientAssertions.decoy`, ``jose/decoy.py``), so an unknown ``sub`` answers as slowly
as a bad signature: no existence oracle.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass

from tokenward.jose.assertion import peek_jws, verify_hmac_jws
from tokenward.jose.decoy import DecoyVerifier
from tokenward.jose.verification import JoseError, PublicKeySet, UnknownKeyError, verify_jws
from tokenward.protocol.client_assertion import (
    AcceptedAssertion,
    AssertionPolicy,
    assertion_subject,
    check_assertion_claims,
    check_assertion_header,
)
from tokenward.protocol.client_auth import PresentedCredentials
from tokenward.protocol.errors import InvalidClient
from tokenward.protocol.model import Client
from tokenward.server.client_keys import ClientKeys
from tokenward.server.secrets import KeyEncryptor
from tokenward.server.settings import Settings
from tokenward.server.stores import ReplayStore, or_unavailable

__all__ = ["ASSERTION_METHODS", "DEFAULT_ASSERTION_ALGS", "ClientAssertions", "Proof"]

log = logging.getLogger("tokenward.assertions")
ASSERTION_METHODS = frozenset({"private_key_jwt", "client_secret_jwt"})
#: Algorithms a private_key_jwt client registered without ``assertion_alg`` may use: each is
#: the only one its key type allows, so no key is used with two algorithms (RFC 8725 §3.1).
DEFAULT_ASSERTION_ALGS = ("ES256", "EdDSA", "RS256")


def _fail(reason: str) -> InvalidClient:
    return InvalidClient(reason=f"assertion: {reason}")


@dataclass(frozen=True, slots=True)
class Proof:
    """What authenticated a client, for the audit events: a secret (its id) or an assertion
    key (its ``kid``, None when the registered key has none)."""

    secret_id: str | None = None
    kid: str | None = None


class ClientAssertions:
    def __init__(
        self,
        settings: Settings,
        replay: ReplayStore,
        encryptor: KeyEncryptor,
        *,
        clock: Callable[[], float],
    ) -> None:
        self.replay = replay
        self.encryptor = encryptor
        self.policy = AssertionPolicy(
            issuer=settings.issuer,
            token_endpoint=settings.issuer.rstrip("/") + "/token",
            allow_token_endpoint_audience=settings.assertion_allow_token_endpoint_audience,
            max_lifetime=settings.assertion_max_lifetime,
        )
        self.keys = ClientKeys(settings, clock=clock)
        self._hmac_keys: dict[str, bytes] = {}
        self._decoy = DecoyVerifier()

    async def aclose(self) -> None:
        await self.keys.aclose()

    def identify(self, creds: PresentedCredentials) -> PresentedCredentials:
        """For an assertion: name the client (body ``client_id`` or the unverified ``sub``) and
        the method (``client_secret_jwt`` for HS256, else ``private_key_jwt``), so the usual
        client checks, throttling and audit apply. Other credentials pass through."""
        if creds.method != "jwt_assertion" or creds.assertion is None:
            return creds
        try:
            jws = peek_jws(creds.assertion, max_length=self.policy.max_length)
        except JoseError as exc:
            raise _fail(f"malformed ({exc.reason})") from None
        alg = check_assertion_header(jws.header)
        method = "client_secret_jwt" if alg == "HS256" else "private_key_jwt"
        client_id = assertion_subject(jws.claims, creds.client_id)
        return dataclasses.replace(creds, method=method, client_id=client_id)

    def decoy(self, creds: PresentedCredentials) -> None:
        """The verification work of an assertion, for one that names no usable client."""
        if creds.assertion is None:
            return
        try:
            alg = peek_jws(creds.assertion, max_length=self.policy.max_length).header.get("alg")
        except JoseError:
            alg = None
        self._decoy.spend(creds.assertion, alg if isinstance(alg, str) else None)

    async def authenticate(self, client: Client, creds: PresentedCredentials, now: int) -> Proof:
        """Verify the assertion of an enabled client registered for ``creds.method``; return
        the secret (client_secret_jwt) or key (private_key_jwt) that verified it."""
        assert creds.assertion is not None
        if creds.method == "client_secret_jwt":
            secret_id, claims = self._verify_hmac(client, creds.assertion, now)
            proof = Proof(secret_id=secret_id)
        else:
            kid, claims = await self._verify_signature(client, creds.assertion)
            proof = Proof(kid=kid)
        accepted = check_assertion_claims(
            claims, client_id=client.client_id, policy=self.policy, now=now
        )
        if accepted.legacy_audience:
            log.warning(
                "client assertion used the token endpoint as audience (legacy switch on)",
                extra={"client_id": client.client_id},
            )
        await self._consume(client.client_id, accepted)
        return proof

    def _verify_hmac(
        self, client: Client, assertion: str, now: int
    ) -> tuple[str, dict[str, object]]:
        usable = [s for s in client.secrets if s.encrypted is not None and s.usable_at(now)]
        keys = [self._hmac_key(client.client_id, s.id, s.encrypted or "") for s in usable]
        try:
            index, jws = verify_hmac_jws(assertion, keys, max_length=self.policy.max_length)
        except JoseError as exc:
            raise _fail(exc.reason) from None
        return usable[index].id, dict(jws.claims)

    def _hmac_key(self, client_id: str, secret_id: str, sealed: str) -> bytes:
        key = self._hmac_keys.get(secret_id)
        if key is None:
            try:
                key = self.encryptor.decrypt(sealed, context=client_id.encode())
            except Exception:
                log.error("a client_secret_jwt secret cannot be decrypted (key-encryption key?)")
                raise _fail("secret cannot be decrypted") from None
            self._hmac_keys[secret_id] = key
        return key

    def _algorithms(self, client: Client) -> tuple[str, ...]:
        # RFC 8725 §3.1: only the algorithm the client registered.
        return (client.assertion_alg,) if client.assertion_alg else DEFAULT_ASSERTION_ALGS

    async def _verify_signature(
        self, client: Client, assertion: str
    ) -> tuple[str | None, dict[str, object]]:
        keys = await self.keys.keys_for(client)
        try:
            return self._verified(assertion, keys, client)
        except UnknownKeyError:
            if client.jwks_uri is None:
                raise _fail("unknown kid") from None
        # The client may have rotated its keys: refetch once (rate-limited) and retry.
        refreshed = await self.keys.keys_for(client, refresh=True)
        try:
            return self._verified(assertion, refreshed, client)
        except UnknownKeyError:
            raise _fail("unknown kid") from None

    def _verified(
        self, assertion: str, keys: PublicKeySet | None, client: Client
    ) -> tuple[str | None, dict[str, object]]:
        """Verify with the client's keys only; ``jku``, ``x5u``, ``jwk`` and ``x5c`` headers
        are never read (RFC 8725 §3.10). UnknownKeyError propagates for a refetch."""
        if keys is None:
            raise _fail("client keys unavailable")
        try:
            verified = verify_jws(
                assertion,
                keys,
                algorithms=self._algorithms(client),
                max_length=self.policy.max_length,
            )
        except UnknownKeyError:
            raise
        except JoseError as exc:
            raise _fail(exc.reason) from None
        return verified.key.kid, dict(verified.claims)

    async def _consume(self, client_id: str, accepted: AcceptedAssertion) -> None:
        """OIDC Core §9: "The JWT MUST only be used once". Fail closed if the store is down."""
        fresh = await or_unavailable(
            self.replay.use_assertion(client_id, accepted.jti, expires_at=accepted.expires_at),
            "replay store",
        )
        if not fresh:
            raise _fail("jti already used (replay)")
