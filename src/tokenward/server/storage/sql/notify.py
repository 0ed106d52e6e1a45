"""Registry changes pushed by PostgreSQL ``LISTEN``/``NOTIFY``.

Every registry change bumps ``registry_state.version`` and, on PostgreSQL, sends
``NOTIFY tokenward_registry`` in the same transaction (``Repository._bump``): PostgreSQL
delivers it at commit, and only if the transaction commits. Each worker keeps one dedicated
connection that ``LISTEN``s (:class:`PgRegistryChanges`) and asks its registry cache to check
the version at once: a disabled client or revoked secret stops working everywhere within a
round trip, not a poll interval. The poll (``cache_refresh_seconds``) stays as the fallback:
while the listening connection is down it reconnects with backoff, and checks once after each
reconnect for anything it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    import psycopg

__all__ = ["APPLICATION_NAME", "CHANNEL", "PgRegistryChanges", "conninfo"]

log = logging.getLogger("tokenward.storage.notify")
CHANNEL = "tokenward_registry"
#: The listening connections' name in ``pg_stat_activity``.
APPLICATION_NAME = "tokenward-listen"
#: How long one wait for notifications lasts before the connection is probed (a silently
#: dead connection is noticed within this, the poll covering the meantime).
PROBE_SECONDS = 15.0
RECONNECT_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0)


def conninfo(url: str) -> str:
    """A libpq connection string for a SQLAlchemy PostgreSQL URL (any driver suffix)."""
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


class PgRegistryChanges:
    """Listens for registry changes on one dedicated connection."""

    def __init__(self, url: str) -> None:
        self._conninfo = conninfo(url)
        self.listening = asyncio.Event()

    async def listen(self, changed: Callable[[], Awaitable[None]]) -> None:
        """Call ``changed`` after every committed registry change, until cancelled. Bursts
        are coalesced: ``changed`` runs again only after it returned."""
        wake = asyncio.Event()
        worker = asyncio.create_task(self._deliver(wake, changed), name="tokenward notify")
        try:
            await self._receive(wake)
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    async def _receive(self, wake: asyncio.Event) -> None:
        import psycopg  # the postgres extra; only PostgreSQL deployments get here

        failures = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True, application_name=APPLICATION_NAME
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    if failures:
                        log.info("registry change notifications restored")
                    failures = 0
                    self.listening.set()
                    wake.set()  # whatever changed while nobody listened
                    await self._wait(conn, wake)
            except (psycopg.Error, OSError) as exc:
                self.listening.clear()
                if failures == 0:
                    log.warning(
                        "registry change notifications lost (%s); polling every "
                        "cache_refresh_seconds until they are back",
                        type(exc).__name__,
                    )
                delay = RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
                failures += 1
                await asyncio.sleep(delay)

    @staticmethod
    async def _wait(conn: psycopg.AsyncConnection[object], wake: asyncio.Event) -> None:
        while True:
            async for _ in conn.notifies(timeout=PROBE_SECONDS):
                wake.set()
            await conn.execute("SELECT 1")  # a dead connection raises here

    @staticmethod
    async def _deliver(wake: asyncio.Event, changed: Callable[[], Awaitable[None]]) -> None:
        while True:
            await wake.wait()
            wake.clear()
            try:
                await changed()
            except Exception:
                log.warning("registry refresh after a change notification failed", exc_info=True)
