"""The background work of one server process: every loop lives here.

* every ``cache_refresh_seconds``: one ``SELECT version`` decides whether to reload the registry
  and keys (the registry cache); on PostgreSQL a change notification (LISTEN/NOTIFY) triggers
  that check at once, the poll being the fallback;
* every second: the audit buffer is written to the log, and the throttle and quota counts
  are exchanged with the database in one statement (``counters.py``); every 30 s the "last
  used" stamps of secrets are written in one batch;
* every minute: key upkeep (``keys.ensure_keys``: rotate when due, delete expired keys);
* every ``opaque_token_purge_seconds``: expired opaque tokens, revocations and used
  client-assertion ``jti`` values are deleted;
* every hour: usage statistics older than ``usage_retention_days`` and ended console sessions
  are deleted.
* with metrics on, every 5 s: the registry, key and database gauges (``metrics.py``), and the
  separate metrics port when ``metrics_port`` is set.

In a server process (``freeze_heap=True``, set by the worker), once keys and registry are
first loaded the heap is frozen (:func:`freeze_heap`).

A new background task is one more ``_every(...)`` line in :meth:`Runtime.start`.

When the database is away none of this stops the process: loading at start is retried in the
background, and a failing loop reports to the store health tracker (``stores.store_health``:
one log line when the database goes away, one when it returns) and runs again next time.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Awaitable, Callable

from tokenward.server.assertions import ClientAssertions
from tokenward.server.authenticator import ClientAuthenticator
from tokenward.server.clock import Clock
from tokenward.server.counters import FLUSH_SECONDS, SharedCounter
from tokenward.server.events import AuditBuffer
from tokenward.server.keys import ensure_keys
from tokenward.server.metrics import Metrics
from tokenward.server.registry_cache import RegistryCache
from tokenward.server.secrets import KeyEncryptor
from tokenward.server.settings import Settings
from tokenward.server.stores import (
    KeyStore,
    OperatorStore,
    RegistryChanges,
    TokenStore,
    UsageStore,
    store_health,
)

__all__ = ["LAST_USED_FLUSH_SECONDS", "METRICS_SAMPLE_SECONDS", "Runtime", "freeze_heap"]

log = logging.getLogger("tokenward.runtime")
LAST_USED_FLUSH_SECONDS = 30
#: How long start-up waits for the first load before serving anyway (a database that hangs
#: rather than refusing must not keep a worker from answering ``/livez``).
FIRST_LOAD_WAIT_SECONDS = 10.0
#: Loading keys and registry at start is retried after 0.5 s, 1 s, then every 2 s.
LOAD_RETRY_FIRST_SECONDS = 0.5
LOAD_RETRY_MAX_SECONDS = 2.0
#: Longest wait for the "last used" stamps to be written when the process stops.
STOP_FLUSH_SECONDS = 5.0
#: How often the registry, key and database gauges are sampled (metrics on).
METRICS_SAMPLE_SECONDS = 5.0


def freeze_heap() -> None:
    """Collect once, then move every object alive to the permanent generation (``gc.freeze``).

    After start-up a worker holds well over 100,000 objects the collector tracks (the modules,
    classes and functions of SQLAlchemy, pydantic, FastAPI..., the registry snapshot, the keys)
    and keeps nearly all of them until it exits. A full collection walks them all with the
    event loop stopped (77 ms each in ``bench/bench_gc.py``), and under load CPython starts one
    every few seconds: the token path's short-lived survivors (audit events waiting for the
    1 s flush) keep triggering it. Frozen, they are skipped, and a full collection walks only
    what was created since. Reference counting still frees a frozen object the moment it is no
    longer used (a replaced registry snapshot holds no reference cycle, so it goes), and
    collections of everything created later go on as usual.
    """
    gc.collect()
    gc.freeze()


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
        usage: UsageStore | None = None,
        operators: OperatorStore | None = None,
        metrics: Metrics | None = None,
        changes: RegistryChanges | None = None,
        freeze_heap: bool = False,
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
        self._usage = usage
        self._operators = operators
        self._metrics = metrics
        self._changes = changes
        self._freeze_heap = freeze_heap
        self._tasks: list[asyncio.Task[None]] = []

    async def prepare(self) -> None:
        """Make sure every algorithm in use has a key, then load keys and registry."""
        await self.upkeep_keys()
        await self._registry.load()

    async def start(self) -> None:
        """Prepare, then start the loops. A process whose database is away starts anyway:
        loading is retried in the background until it succeeds, and until then whatever needs
        keys or registry answers 503 (``/readyz`` says so)."""
        first = asyncio.create_task(self._try_prepare(), name="tokenward load")
        done, _ = await asyncio.wait({first}, timeout=FIRST_LOAD_WAIT_SECONDS)
        if first not in done or not first.result():
            retry = self._prepare_until_done(first)
            self._tasks.append(asyncio.create_task(retry, name="tokenward load retry"))
        else:
            self._loaded()
        settings = self._settings
        self._every(settings.cache_refresh_seconds, self._registry.refresh_if_changed, "refresh")
        if self._changes is not None:
            listen = self._changes.listen(self._registry.refresh_if_changed)
            self._tasks.append(asyncio.create_task(listen, name="tokenward listen"))
        self._every(1.0, self._audit.flush, "audit flush", store=False)
        self._every(FLUSH_SECONDS, self.flush_counts, "shared counts")
        self._every(LAST_USED_FLUSH_SECONDS, self.flush_last_used, "last-used stamps")
        self._every(60.0, self.upkeep_keys, "key upkeep")
        self._every(settings.opaque_token_purge_seconds, self.purge, "purge")
        self._every(3600.0, self.purge_console, "usage and session purge")
        if self._metrics is not None:
            await self._start_metrics(self._metrics)

    async def _start_metrics(self, metrics: Metrics) -> None:
        async def first_sample() -> None:  # not awaited: a database probe may take 2 s
            try:
                await metrics.sample()
            except Exception:
                log.exception("metrics sample failed")

        self._tasks.append(asyncio.create_task(first_sample(), name="tokenward metrics"))
        self._every(METRICS_SAMPLE_SECONDS, metrics.sample, "metrics sample")
        if self._settings.metrics_port is not None:
            await metrics.listen(self._settings.metrics_host, self._settings.metrics_port)

    async def stop(self) -> None:
        """Stop the loops, then write what is buffered."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self._assertions.aclose()
        if self._metrics is not None:
            await self._metrics.close()
        await self._audit.flush()
        with contextlib.suppress(Exception):
            # Bounded: a database that hangs must not hold the process's exit.
            await asyncio.wait_for(self.flush_last_used(), STOP_FLUSH_SECONDS)
        with contextlib.suppress(Exception):  # the last second's failures still count
            await asyncio.wait_for(self.flush_counts(), STOP_FLUSH_SECONDS)

    def _loaded(self) -> None:
        """Keys and registry were loaded for the first time."""
        if self._freeze_heap:
            freeze_heap()

    async def _try_prepare(self) -> bool:
        try:
            await store_health.observe(self.prepare(), "loading keys and registry")
        except Exception:
            return False
        return True

    async def _prepare_until_done(self, first: asyncio.Task[bool]) -> None:
        """Wait for the first attempt, then retry loading keys and registry, backing off up to
        ``LOAD_RETRY_MAX_SECONDS``, until it succeeds."""
        started, delay = time.monotonic(), LOAD_RETRY_FIRST_SECONDS
        loaded = await first
        while not loaded:
            await asyncio.sleep(delay)
            loaded = await self._try_prepare()
            delay = min(delay * 2, LOAD_RETRY_MAX_SECONDS)
        self._loaded()
        log.warning("keys and registry loaded, %.1f s after start", time.monotonic() - started)

    def _every(
        self,
        seconds: float,
        work: Callable[[], Awaitable[object]],
        what: str,
        *,
        store: bool = True,
    ) -> None:
        """Run ``work`` every ``seconds``. A failure of a ``store`` loop goes to the store
        health tracker (one log line per outage); any other failure is logged in full."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(seconds)
                try:
                    await (store_health.observe(work(), what) if store else work())
                except Exception:
                    if not store:
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

    async def purge_console(self) -> dict[str, int]:
        """Delete usage statistics past their retention and ended console sessions."""
        now = int(self._clock())
        counts = {}
        if self._usage is not None:
            retention = self._settings.usage_retention_days * 86400
            counts["usage_minutes"] = await self._usage.purge_usage(now - retention)
        if self._operators is not None:
            idle = self._settings.console_session_idle_seconds
            counts["operator_sessions"] = await self._operators.purge_sessions(now, idle=idle)
        return counts
