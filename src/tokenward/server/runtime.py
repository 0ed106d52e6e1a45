"""The background work of one server process: every loop lives here.

* every ``cache_refresh_seconds``: one ``SELECT version`` decides whether to reload the registry
  and keys (the registry cache);
* every second: the audit buffer is written to the log, and the throttle and quota counts
  are exchanged with the database in one statement (``counters.py``); every 30 s the "last
  used" stamps of secrets are written in one batch;
* every minute: key upkeep (``keys.ensure_keys``: rotate when due, delete expired keys);
* every ``opaque_token_purge_seconds``: expired opaque tokens, revocations and used
  client-assertion ``jti`` values are deleted.

A new background task is one more ``_every(...)`` line in :meth:`Runtime.start`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from tokenward.server.assertions import ClientAssertions
from tokenward.server.authenticator import ClientAuthenticator
from tokenward.server.clock import Clock
from tokenward.server.counters import FLUSH_SECONDS, SharedCounter
from tokenward.server.events import AuditBuffer
from tokenward.server.keys import ensure_keys
from tokenward.server.registry_cache import RegistryCache
from tokenward.server.secrets import KeyEncryptor
from tokenward.server.settings import Settings
from tokenward.server.stores import KeyStore, TokenStore

__all__ = ["LAST_USED_FLUSH_SECONDS", "Runtime"]

log = logging.getLogger("tokenward.runtime")
LAST_USED_FLUSH_SECONDS = 30


class Runtime:
    def __init__(
        self,
        *,
        settings: Settings,
        clock: Clock,
        registry: RegistryCache,
        keys: KeyStore,
        encryptor: KeyEncryptor,
        authenticator: ClientAuthenticator,
        assertions: ClientAssertions,
        tokens: TokenStore,
        audit: AuditBuffer,
        counter: SharedCounter,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._registry = registry
        self._keys = keys
        self._encryptor = encryptor
        self._authenticator = authenticator
        self._assertions = assertions
        self._tokens = tokens
        self._audit = audit
        self._counter = counter
        self._tasks: list[asyncio.Task[None]] = []

    async def prepare(self) -> None:
        """Make sure every algorithm in use has a key, then load keys and registry."""
        await self.upkeep_keys()
        await self._registry.load()

    async def start(self) -> None:
        """Prepare, then start the loops."""
        await self.prepare()
        settings = self._settings
        self._every(settings.cache_refresh_seconds, self._registry.refresh_if_changed, "refresh")
        self._every(1.0, self._audit.flush, "audit flush")
        self._every(FLUSH_SECONDS, self.flush_counts, "shared counts")
        self._every(LAST_USED_FLUSH_SECONDS, self.flush_last_used, "last-used stamps")
        self._every(60.0, self.upkeep_keys, "key upkeep")
        self._every(settings.opaque_token_purge_seconds, self.purge, "purge")

    async def stop(self) -> None:
        """Stop the loops, then write what is buffered."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self._assertions.aclose()
        await self._audit.flush()
        with contextlib.suppress(Exception):
            await self.flush_last_used()
        with contextlib.suppress(Exception):  # the last second's failures still count
            await self.flush_counts()

    def _every(self, seconds: float, work: Callable[[], Awaitable[object]], what: str) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(seconds)
                try:
                    await work()
                except Exception:
                    log.exception("%s failed", what)

        self._tasks.append(asyncio.create_task(loop(), name=f"tokenward {what}"))

    async def flush_counts(self) -> None:
        await self._counter.flush(int(self._clock()))

    async def flush_last_used(self) -> None:
        await self._tokens.touch_secrets(self._authenticator.drain_last_used())

    async def upkeep_keys(self) -> None:
        settings = self._settings
        await ensure_keys(
            self._keys,
            self._encryptor,
            algorithms=self._registry.algorithms(settings.signing_alg),
            now=int(self._clock()),
            max_token_ttl=settings.max_token_ttl,
            rotation_period=int(settings.key_rotation_days * 86400),
            publication_delay=settings.key_publication_delay,
        )

    async def purge(self) -> dict[str, int]:
        """Delete every expired opaque token, revocation and used assertion ``jti``."""
        counts = await self._tokens.purge_expired(int(self._clock()))
        if any(counts.values()):
            log.info("purged expired rows", extra={"purged": counts})
        return counts
