"""The issuer's signing keys, cached — RFC 7517 §5, OpenID Connect Core §10.1.1 (rotation).

Rules, so that key rotation at the authorization server never fails a valid token and a flood
of forged tokens never turns into a flood of requests to it:

* Keys are fresh for ``Cache-Control: max-age`` (clamped to ``[min_ttl, max_ttl]``), or for
  ``ttl`` when the server sends none. A request that finds them expired refetches.
* A token whose ``kid`` is unknown triggers one refetch ("the verifier re-fetches jwks_uri on
  an unfamiliar kid"), at most once per ``refetch_cooldown``, and single-flight: concurrent
  misses wait for the one fetch in progress instead of starting their own.
* A failed fetch is not retried before ``refetch_cooldown``; meanwhile, and for up to
  ``max_stale`` after they expired, the last keys keep being used. Only with no usable keys at
  all does verification fail, with :class:`VerifierUnavailable` (503), not ``invalid_token``.

The cache does no HTTP itself: it calls the ``fetch`` / ``afetch`` functions it was given.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio

from tokenward.jose.verification import JoseError, PublicKeySet
from tokenward.resource._http import FetchError
from tokenward.resource.errors import VerifierUnavailable

__all__ = ["AsyncKeyFetcher", "JwksCache", "JwksCachePolicy", "KeyFetcher"]

logger = logging.getLogger("tokenward.resource")

#: Returns the key set and the response's max-age in seconds (None when absent).
KeyFetcher = Callable[[], tuple[PublicKeySet, float | None]]
AsyncKeyFetcher = Callable[[], Awaitable[tuple[PublicKeySet, float | None]]]


@dataclass(frozen=True, slots=True, kw_only=True)
class JwksCachePolicy:
    """How long keys live and how often the key server may be asked (seconds)."""

    ttl: float = 300.0  # without Cache-Control: max-age
    min_ttl: float = 30.0  # a max-age of 0 or no-store still caches this long
    max_ttl: float = 3600.0  # bounds how long a key removed from the JWKS stays trusted
    refetch_cooldown: float = 10.0  # between unknown-kid refetches, and after a failure
    max_stale: float = 86400.0  # keep using expired keys this long while fetches fail
    timeout: float = 5.0  # per HTTP phase (connect, read, ...)
    max_bytes: int = 256 * 1024  # largest discovery or JWKS document read

    def __post_init__(self) -> None:
        if not 0 < self.min_ttl <= self.ttl <= self.max_ttl or self.refetch_cooldown <= 0:
            raise ValueError("need 0 < min_ttl <= ttl <= max_ttl and refetch_cooldown > 0")


class JwksCache:
    """One issuer's key set with TTL, stale-if-error and rate-limited, single-flight refetch."""

    def __init__(
        self,
        fetch: KeyFetcher,
        afetch: AsyncKeyFetcher,
        *,
        policy: JwksCachePolicy,
        clock: Callable[[], float],
    ) -> None:
        self._fetch_keys, self._afetch = fetch, afetch
        self._policy, self._clock = policy, clock
        self._keys: PublicKeySet | None = None
        self._fresh_until = -math.inf
        self._next_attempt = -math.inf
        self._lock = threading.Lock()  # single flight for sync callers (threads)
        # Single flight for async callers: the fetch in progress, which others wait for. Made
        # per fetch inside the running loop, so one cache serves asyncio and trio alike.
        self._in_flight: anyio.Event | None = None
        self.fetches = 0  # attempts so far, for metrics and tests

    # -- decisions (no I/O) --------------------------------------------------------------------

    def _fresh(self) -> PublicKeySet | None:
        return self._keys if self._clock() < self._fresh_until else None

    def _usable(self) -> PublicKeySet:
        stale_until = self._fresh_until + self._policy.max_stale
        if self._keys is None or self._clock() >= stale_until:
            raise VerifierUnavailable("no usable signing keys")
        return self._keys

    def _wants_fetch(self, seen: PublicKeySet | None) -> bool:
        """Whether to fetch now. ``seen``: the set that lacked a kid, or None for expiry."""
        now = self._clock()
        if now < self._next_attempt:
            return False  # a refetch or a failure happened less than a cooldown ago
        if seen is None:
            return self._fresh() is None  # another caller may have refreshed while we waited
        if seen is not self._keys:
            return False  # replaced while we waited: single flight
        self._next_attempt = now + self._policy.refetch_cooldown
        return True

    def _store(self, keys: PublicKeySet, max_age: float | None) -> None:
        policy = self._policy
        ttl = policy.ttl if max_age is None else max(policy.min_ttl, min(max_age, policy.max_ttl))
        self._keys, self._fresh_until = keys, self._clock() + ttl
        logger.info("signing keys fetched: %d usable, %d skipped", len(keys), keys.skipped)

    def _failed(self, reason: str) -> None:
        self._next_attempt = self._clock() + self._policy.refetch_cooldown
        logger.warning("signing keys could not be fetched: %s", reason)

    # -- async ---------------------------------------------------------------------------------

    async def get(self) -> PublicKeySet:
        """The current keys, fetching them if they have expired."""
        keys = self._fresh()
        if keys is not None:
            return keys
        await self._afetch_if_wanted(None)
        return self._usable()

    async def refresh(self, seen: PublicKeySet) -> PublicKeySet:
        """Called when ``seen`` lacked a token's kid: refetch once, within the rules above."""
        await self._afetch_if_wanted(seen)
        return self._usable()

    async def _afetch_if_wanted(self, seen: PublicKeySet | None) -> None:
        while self._in_flight is not None:
            await self._in_flight.wait()
        if not self._wants_fetch(seen):
            return
        done = self._in_flight = anyio.Event()
        self.fetches += 1
        try:
            keys, max_age = await self._afetch()
        except (FetchError, JoseError) as exc:
            self._failed(exc.reason)
        else:
            self._store(keys, max_age)
        finally:
            self._in_flight = None
            done.set()

    # -- sync ----------------------------------------------------------------------------------

    def get_sync(self) -> PublicKeySet:
        keys = self._fresh()
        if keys is not None:
            return keys
        with self._lock:
            if self._wants_fetch(None):
                self._fetch()
        return self._usable()

    def refresh_sync(self, seen: PublicKeySet) -> PublicKeySet:
        with self._lock:
            if self._wants_fetch(seen):
                self._fetch()
        return self._usable()

    def _fetch(self) -> None:
        self.fetches += 1
        try:
            keys, max_age = self._fetch_keys()
        except (FetchError, JoseError) as exc:
            self._failed(exc.reason)
        else:
            self._store(keys, max_age)
