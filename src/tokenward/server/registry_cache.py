"""The in-memory registry snapshot the token path reads, and how it stays fresh.

The snapshot (APIs, clients, secrets) and the key ring are loaded together, under one registry
version (``registry_state.version``, bumped by every change in the same transaction). Every
worker checks that one integer every ``cache_refresh_seconds`` (the runtime's poll loop) and
reloads when it moved: the bound on how long a disabled client or a revoked secret keeps
working.

The request path never waits on a reload. A client created (or a secret added) a moment ago on
another instance works at once through :meth:`RegistryCache.fresh_client`: after *every*
failed authentication - unknown id, wrong secret, disabled client, bad assertion - the
authenticator reads that one client's row with the registry version, bounded by
``auth_failure_lookup_timeout``. Every failure pays the same single-row read, so its timing
says nothing about whether the id exists; success pays nothing. While the database is slow or
down (a lookup timed out or failed, or the last poll failed) the read is skipped for every
failure alike, and new clients wait for the poll.

Until the first load (a worker that started while the database was away) no client is known:
the client authenticator answers 503 ``temporarily_unavailable`` rather than calling every
client unknown, until the database returns.
"""

from __future__ import annotations

import asyncio
import logging
import time

from tokenward.protocol.model import Client, Registry
from tokenward.server.clock import Clock
from tokenward.server.keys import KeyRing
from tokenward.server.stores import KeyStore, RegistryStore, store_health

__all__ = ["MAX_LOOKUPS_IN_FLIGHT", "RegistryCache"]

log = logging.getLogger("tokenward.registry")
#: Most single-row lookups one worker keeps waiting on the database at once; past that they
#: are skipped (the throttle bounds how many failures reach this point anyway).
MAX_LOOKUPS_IN_FLIGHT = 16


class RegistryCache:
    def __init__(
        self,
        store: RegistryStore,
        keys: KeyStore,
        keyring: KeyRing,
        *,
        clock: Clock,
        lookup_timeout: float = 0.25,
    ) -> None:
        self._store = store
        self._keys = keys
        self.keyring = keyring
        self._clock = clock
        self._lookup_timeout = lookup_timeout
        self.registry = Registry.build([], [])
        self._lock = asyncio.Lock()
        self._last_check = 0.0
        self.loaded = False
        self.store_ok = True
        self._lookups: set[asyncio.Task[tuple[int, Client | None]]] = set()

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
                return
            wait = self._last_check + min_interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._last_check = time.monotonic()
            try:
                version = await self._store.version()
            except Exception:
                self.store_ok = False
                raise
            self.store_ok = True
            if not self.loaded or version != self.registry.version:
                await self.load()

    async def changed(self) -> None:
        """This process changed the registry (an admin operation): see it now. A no-op in a
        process that serves nothing (the CLI)."""
        if self.loaded:
            await self.refresh_if_changed()

    def get(self, client_id: str | None) -> Client | None:
        """The client in the snapshot (the request path: memory only)."""
        return None if client_id is None else self.registry.clients.get(client_id)

    async def fresh_client(self, client_id: str | None) -> Client | None:
        """After a failed authentication: the client as stored *if the snapshot is stale*
        (the registry version moved since it was loaded), else None.

        Always the same work whatever ``client_id`` names: one bounded single-row read, or,
        while the database is slow or down, nothing.
        """
        if client_id is None or not self.store_ok or len(self._lookups) >= MAX_LOOKUPS_IN_FLIGHT:
            return None
        task = asyncio.ensure_future(self._store.client_record(client_id))
        self._lookups.add(task)
        task.add_done_callback(self._lookup_done)
        done, _ = await asyncio.wait({task}, timeout=self._lookup_timeout)
        if not done:
            log.warning("client lookup slower than auth_failure_lookup_timeout; skipping them")
            self.store_ok = False  # until a poll or this lookup succeeds
            return None
        if task.exception() is not None:
            return None
        version, client = task.result()
        return client if version != self.registry.version else None

    def _lookup_done(self, task: asyncio.Task[tuple[int, Client | None]]) -> None:
        self._lookups.discard(task)
        if task.cancelled():
            return
        failure = task.exception()
        if failure is not None:
            self.store_ok = False
            store_health.failed("client lookup", failure)  # one line per outage, no traceback
        else:
            self.store_ok = True
            store_health.succeeded()

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
