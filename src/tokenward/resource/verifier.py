"""Verifying bearer access tokens — RFC 9068 §4 (JWT), RFC 7662 (opaque, by introspection).

:class:`TokenVerifier` is configured with the issuer's identifier and finds the rest by RFC 8414
discovery. A JWT is checked locally against the issuer's cached JWKS; an opaque token (or every
token, with ``Introspection(always=True)``) is sent to the issuer's introspection endpoint and
the answer cached for a short time, never beyond the token's ``exp`` (RFC 7662 §4).

Both paths give the same :class:`AccessToken`. ``await verify(token)`` serves asyncio and trio
apps; ``verify_sync(token)`` serves WSGI apps and threads.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from tokenward.jose.verification import (
    JoseError,
    PublicKeySet,
    UnknownKeyError,
    VerifiedJWS,
    verify_jws,
)
from tokenward.protocol.transport import is_loopback_host
from tokenward.resource._http import (
    FetchError,
    HttpLimits,
    Response,
    ServerMetadata,
    aget_json,
    apost_form,
    basic_auth,
    discovery_urls,
    get_json,
    max_age,
    parse_metadata,
    post_form,
)
from tokenward.resource.claims import (
    DEFAULT_ALGORITHMS,
    AccessToken,
    VerificationPolicy,
    access_token_from_introspection,
    access_token_from_jwt,
)
from tokenward.resource.errors import InvalidToken, VerifierUnavailable
from tokenward.resource.jwks_cache import JwksCache, JwksCachePolicy

__all__ = ["Introspection", "TokenVerifier"]

logger = logging.getLogger("tokenward.resource")


@dataclass(frozen=True, slots=True, kw_only=True)
class Introspection:
    """Credentials and policy for RFC 7662 introspection (client_secret_basic).

    Opaque tokens (anything that is not a three-part JWT) are introspected whenever this is
    configured; with ``always=True`` JWTs are too, so revocation takes effect within
    ``cache_ttl`` seconds instead of at ``exp``.
    """

    client_id: str
    client_secret: str = field(repr=False)
    endpoint: str | None = None  # default: introspection_endpoint from discovery
    always: bool = False
    cache_ttl: float = 30.0  # RFC 7662 §4: how stale a "yes" may be; never beyond exp
    max_entries: int = 10_000


class _IntrospectionCache:
    """Active tokens by SHA-256 of the token (the token itself is never kept), with expiry."""

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._entries: dict[bytes, tuple[float, AccessToken]] = {}

    def get(self, key: bytes, now: float) -> AccessToken | None:
        entry = self._entries.get(key)
        if entry is None or now >= entry[0]:
            return None
        return entry[1]

    def put(self, key: bytes, token: AccessToken, until: float, now: float) -> None:
        if until <= now:
            return
        if len(self._entries) >= self._max:
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            while len(self._entries) >= self._max:  # still full: drop the oldest
                del self._entries[next(iter(self._entries))]
        self._entries[key] = (until, token)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class TokenVerifier:
    """Verifies access tokens issued by one authorization server for one API.

    ``issuer`` is the authorization server's issuer identifier (exact match on ``iss``);
    ``audience`` is this API's identifier, which every token's ``aud`` must contain. Several
    issuers mean several verifiers: keys are never shared between issuers (RFC 8725 §3.8).
    """

    def __init__(
        self,
        issuer: str,
        *,
        audience: str,
        algorithms: Iterable[str] = DEFAULT_ALGORITHMS,
        leeway: float = 30.0,
        clock: Callable[[], float] = time.time,
        jwks_uri: str | None = None,
        cache: JwksCachePolicy | None = None,
        introspection: Introspection | None = None,
        max_token_length: int = 16384,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.policy = VerificationPolicy(
            issuer=issuer,
            audience=audience,
            algorithms=tuple(algorithms),
            leeway=leeway,
            max_token_length=max_token_length,
        )
        self._clock = clock
        cache = cache or JwksCachePolicy()
        self._limits = HttpLimits(timeout=cache.timeout, max_bytes=cache.max_bytes)
        self._client, self._aclient = http_client, async_http_client
        self._introspection = introspection
        self._introspected = _IntrospectionCache(introspection.max_entries if introspection else 0)
        self._metadata: ServerMetadata | None = None
        if jwks_uri is not None:  # no discovery: every endpoint must be given
            endpoint = introspection.endpoint if introspection else None
            if introspection is not None and endpoint is None:
                raise ValueError("with jwks_uri, Introspection(endpoint=...) is required too")
            self._metadata = ServerMetadata(issuer, jwks_uri, endpoint)
        self._discovery_retry_at = 0.0
        self._cooldown = cache.refetch_cooldown
        self.keys = JwksCache(self._fetch_keys, self._afetch_keys, policy=cache, clock=clock)
        _warn_if_insecure(issuer)

    @property
    def issuer(self) -> str:
        return self.policy.issuer

    @property
    def audience(self) -> str:
        return self.policy.audience

    # -- verification ------------------------------------------------------------------------

    async def verify(self, token: str) -> AccessToken:
        """The token's :class:`AccessToken`.

        Raises :class:`InvalidToken` (401) or :class:`VerifierUnavailable` (503).
        """
        try:
            if self._introspects(token):
                return await self._aintrospect(token)
            keys = await self.keys.get()
            jws = self._signature(token, keys)
            if jws is None:  # unknown kid: the issuer may have rotated its keys
                jws = self._signature(token, await self.keys.refresh(keys)) or _unknown_key()
            return self._claims(jws)
        except InvalidToken as exc:
            logger.info("access token rejected: %s", exc.reason)
            raise

    def verify_sync(self, token: str) -> AccessToken:
        """Blocking :meth:`verify`, for WSGI frameworks and worker threads."""
        try:
            if self._introspects(token):
                return self._introspect_sync(token)
            keys = self.keys.get_sync()
            jws = self._signature(token, keys)
            if jws is None:  # unknown kid: the issuer may have rotated its keys
                jws = self._signature(token, self.keys.refresh_sync(keys)) or _unknown_key()
            return self._claims(jws)
        except InvalidToken as exc:
            logger.info("access token rejected: %s", exc.reason)
            raise

    def _signature(self, token: str, keys: PublicKeySet) -> VerifiedJWS | None:
        """The verified JWS; None when no key matches its kid."""
        policy = self.policy
        try:
            return verify_jws(
                token, keys, algorithms=policy.algorithms, max_length=policy.max_token_length
            )
        except UnknownKeyError:
            return None
        except JoseError as exc:
            raise InvalidToken(exc.reason) from None

    def _claims(self, jws: VerifiedJWS) -> AccessToken:
        return access_token_from_jwt(jws.header, jws.claims, policy=self.policy, now=self._clock())

    # -- discovery and keys ------------------------------------------------------------------

    def _discovered(self, response: Response) -> ServerMetadata | None:
        if response.status != 200:
            return None
        self._metadata = parse_metadata(response.document, self.policy.issuer)
        return self._metadata

    def _discovery_failed(self, reason: str = "no metadata document found") -> FetchError:
        self._discovery_retry_at = self._clock() + self._cooldown
        return FetchError(f"discovery: {reason}")

    async def _ametadata(self) -> ServerMetadata:
        if self._metadata is not None:
            return self._metadata
        if self._clock() < self._discovery_retry_at:
            raise FetchError("discovery failed less than a cooldown ago")
        try:
            for url in discovery_urls(self.policy.issuer):
                found = self._discovered(await aget_json(self._aclient, url, self._limits))
                if found is not None:
                    return found
        except FetchError as exc:
            raise self._discovery_failed(exc.reason) from None
        raise self._discovery_failed()

    def _metadata_sync(self) -> ServerMetadata:
        if self._metadata is not None:
            return self._metadata
        if self._clock() < self._discovery_retry_at:
            raise FetchError("discovery failed less than a cooldown ago")
        try:
            for url in discovery_urls(self.policy.issuer):
                found = self._discovered(get_json(self._client, url, self._limits))
                if found is not None:
                    return found
        except FetchError as exc:
            raise self._discovery_failed(exc.reason) from None
        raise self._discovery_failed()

    @staticmethod
    def _key_set(response: Response) -> tuple[PublicKeySet, float | None]:
        if response.status != 200:
            raise FetchError(f"JWKS answered HTTP {response.status}")
        return PublicKeySet.from_jwks(response.document), max_age(response.headers)

    @staticmethod
    def _jwks_uri(metadata: ServerMetadata) -> str:
        if metadata.jwks_uri is None:
            raise FetchError("metadata has no jwks_uri")
        return metadata.jwks_uri

    async def _afetch_keys(self) -> tuple[PublicKeySet, float | None]:
        uri = self._jwks_uri(await self._ametadata())
        return self._key_set(await aget_json(self._aclient, uri, self._limits))

    def _fetch_keys(self) -> tuple[PublicKeySet, float | None]:
        uri = self._jwks_uri(self._metadata_sync())
        return self._key_set(get_json(self._client, uri, self._limits))

    # -- introspection -----------------------------------------------------------------------

    def _introspects(self, token: str) -> bool:
        settings = self._introspection
        return settings is not None and (settings.always or token.count(".") != 2)

    def _introspection_request(self, token: str) -> tuple[dict[str, str], str]:
        if len(token) > self.policy.max_token_length:
            raise InvalidToken("token too long")
        assert self._introspection is not None
        auth = basic_auth(self._introspection.client_id, self._introspection.client_secret)
        return {"token": token, "token_type_hint": "access_token"}, auth

    def _configured_endpoint(self) -> str | None:
        return self._introspection.endpoint if self._introspection else None

    @staticmethod
    def _introspection_endpoint(metadata: ServerMetadata) -> str:
        if metadata.introspection_endpoint is None:
            raise FetchError("metadata has no introspection_endpoint")
        return metadata.introspection_endpoint

    def _introspection_result(self, key: bytes, response: Response) -> AccessToken:
        if response.status != 200 or not isinstance(response.document, dict):
            # Our own credentials or the server are at fault, not the token.
            raise VerifierUnavailable(f"introspection answered HTTP {response.status}")
        now = self._clock()
        token = access_token_from_introspection(response.document, policy=self.policy, now=now)
        assert self._introspection is not None
        # RFC 7662 §4: a cached response must not outlive the token's expiry.
        until = min(now + self._introspection.cache_ttl, token.expires_at.timestamp())
        self._introspected.put(key, token, until, now)
        return token

    async def _aintrospect(self, token: str) -> AccessToken:
        key = _digest(token)
        cached = self._introspected.get(key, self._clock())
        if cached is not None:
            return cached
        form, auth = self._introspection_request(token)
        try:
            endpoint = self._configured_endpoint() or self._introspection_endpoint(
                await self._ametadata()
            )
            response = await apost_form(self._aclient, endpoint, form, auth, self._limits)
        except FetchError as exc:
            raise VerifierUnavailable(exc.reason) from None
        return self._introspection_result(key, response)

    def _introspect_sync(self, token: str) -> AccessToken:
        key = _digest(token)
        cached = self._introspected.get(key, self._clock())
        if cached is not None:
            return cached
        form, auth = self._introspection_request(token)
        try:
            endpoint = self._configured_endpoint() or self._introspection_endpoint(
                self._metadata_sync()
            )
            response = post_form(self._client, endpoint, form, auth, self._limits)
        except FetchError as exc:
            raise VerifierUnavailable(exc.reason) from None
        return self._introspection_result(key, response)


def _unknown_key() -> VerifiedJWS:
    raise InvalidToken("no key matches the token's kid, even after a refetch")


def _warn_if_insecure(issuer: str) -> None:
    parts = urlsplit(issuer)
    if parts.scheme == "https":
        return
    if parts.scheme != "http":
        raise ValueError("issuer must be an https URL")
    if not is_loopback_host(parts.hostname or ""):
        logger.warning(
            "issuer %s is plain http: keys and introspection answers can be forged in transit; "
            "use https outside development",
            issuer,
        )
