"""The in-memory registry snapshot the token path reads, and how it stays fresh.

The snapshot (APIs, clients, secrets) and the key ring are loaded together, under one registry
version (``registry_state.version``, bumped by every change in the same transaction). Every
worker checks that one integer every ``cache_refresh_seconds`` (the runtime's poll loop) and
reloads when it moved: the bound on how long a disabled client or a revoked secret keeps
working. A client id the snapshot does not know triggers an immediate (rate-limited) check, so
a client created a moment ago on another instance works at once. Until the first load (a
worker that started while the database was away) every client is unknown, so the token path
answers 503 ``temporarily_unavailable`` until the database returns.
"""

from __future__ import annotations

import asyncio
import time

from tokenward.protocol.model import Client, Registry
from tokenward.server.clock import Clock
from tokenward.server.keys import KeyRing
from tokenward.server.stores import KeyStore, RegistryStore, or_unavailable

__all__ = ["UNKNOWN_ID_CHECK_INTERVAL", "RegistryCache"]

#: Least time between two version checks triggered by unknown client ids.
UNKNOWN_ID_CHECK_INTERVAL = 0.25


class RegistryCache:
    def __init__(
        self, store: RegistryStore, keys: KeyStore, keyring: KeyRing, *, clock: Clock
    ) -> None:
        self._store = store
        self._keys = keys
        self.keyring = keyring
        self._clock = clock
        self.registry = Registry.build([], [])
        self._lock = asyncio.Lock()
        self._last_check = 0.0
        self._check_failed = False
        self.loaded = False

    @property
    def version(self) -> int:
        return self.registry.version

    async def load(self) -> None:
        """Read the whole snapshot and the keys now."""
        started = time.monotonic()
        registry = await self._store.load_registry()
        rows = await self._keys.list_keys()
        self.keyring.load(rows, now=int(self._clock()))
        self.registry = registry
        self._last_check = started
        self.loaded = True

    async def refresh_if_changed(self, *, min_interval: float = 0.0) -> None:
        """Reload when the registry version moved; checks at most once per ``min_interval``.

        ``_last_check`` is when the latest check *started*. A caller returns only on a check
        that started after it arrived (an earlier one may predate the change it is looking
        for, e.g. a client created a moment ago); otherwise it waits for the next slot.
        """
        arrived = time.monotonic()
        async with self._lock:
            if self._last_check >= arrived:
                if self._check_failed:
                    raise ConnectionError("the latest registry check failed")
                return
            wait = self._last_check + min_interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._last_check = time.monotonic()
            self._check_failed = True
            if not self.loaded or await self._store.version() != self.registry.version:
                await self.load()
            self._check_failed = False

    async def changed(self) -> None:
        """This process changed the registry (an admin operation): see it now. A no-op in a
        process that serves nothing (the CLI)."""
        if self.loaded:
            await self.refresh_if_changed()

    async def lookup(self, client_id: str | None) -> Client | None:
        if client_id is None:
            return None
        client = self.registry.clients.get(client_id)
        if client is None:
            # A client created a moment ago on another instance: check the version now rather
            # than waiting for the next poll (rate-limited, so unknown ids cost little). When
            # the database is away that check fails: 503, as for any store failure.
            await or_unavailable(
                self.refresh_if_changed(min_interval=UNKNOWN_ID_CHECK_INTERVAL), "registry"
            )
            client = self.registry.clients.get(client_id)
        return client

    def signing_algorithms(self) -> list[str]:
        """The algorithms with an active key, now."""
        states = self.keyring.states(int(self._clock()))
        return sorted({s.alg for s in states if s.state == "active"})

    def can_sign(self, alg: str) -> bool:
        """Keys and registry are loaded and ``alg`` has an active key: tokens can be issued."""
        return self.loaded and self.keyring.signer(alg, int(self._clock())) is not None

    def algorithms(self, default: str) -> set[str]:
        """Every signing algorithm in use: the server default and each API's."""
        return {default} | {api.signing_alg for api in self.registry.apis.values()}
