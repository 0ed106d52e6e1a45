"""Failed client authentications, counted to slow down guessing (RFC 6749 §2.3.1: the server
"MUST protect ... against brute force attacks").

Failures are counted per (client id, source address) and per source address over a sliding
minute, in counts every worker and instance shares (``counters.py``). The sliding minute is
the usual two-window estimate: this minute's count plus last minute's, weighted by how much of
it still lies within the last 60 s; so no burst at a minute boundary doubles the limit. Past either
limit, requests from that address (for that client id, or for any) get ``429 slow_down`` with
``Retry-After`` *before* any secret is hashed. A guesser is slowed; the real client, from its
own address, keeps working: knowing a client id no longer lets anyone lock that client out.
Unknown ids are counted like known ones, so the throttle reveals nothing about which exist.

An IPv6 source counts by its /64 prefix: one host usually holds a whole /64.
"""

from __future__ import annotations

import functools
import ipaddress
import logging

from tokenward.protocol.errors import SlowDown
from tokenward.server.counters import SharedCounter, digest, window_of

__all__ = ["WINDOW", "FailureThrottle", "address_key"]

log = logging.getLogger("tokenward.throttle")
#: The throttle's window, seconds.
WINDOW = 60


@functools.lru_cache(maxsize=16384)
def address_key(address: str) -> str:
    """The address as counted: itself, or the /64 prefix of an IPv6 address."""
    if ":" not in address:
        return address
    try:
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    except ValueError:
        return address


class FailureThrottle:
    def __init__(self, counter: SharedCounter, *, per_client: int, per_address: int) -> None:
        self._counter = counter
        self._per_client = per_client
        self._per_address = per_address

    def _keys(self, client_id: str | None, address: str) -> tuple[str | None, str]:
        where = address_key(address)
        by_client = digest("fail-client", client_id, where) if client_id is not None else None
        return by_client, digest("fail-address", where)

    def check(self, client_id: str | None, address: str, now: int) -> None:
        """``SlowDown`` when this address is over either limit."""
        by_client, by_address = self._keys(client_id, address)
        wait = self._wait(by_address, self._per_address, now)
        if by_client is not None and not wait:
            wait = self._wait(by_client, self._per_client, now)
        if wait:
            raise SlowDown(retry_after=wait, reason="throttled")

    def _wait(self, key: str, limit: int, now: int) -> int:
        """Seconds until the sliding count of ``key`` falls below ``limit`` (0: it is below)."""
        if self._counter.recent(key) < limit:
            return 0
        window = window_of(now, WINDOW)
        elapsed = now - window
        current = self._counter.count(key, window)
        previous = self._counter.count(key, window - WINDOW)
        if current + previous * (WINDOW - elapsed) / WINDOW < limit:
            return 0
        if current >= limit:  # until this minute, as last minute, has faded enough
            return WINDOW - elapsed + int(WINDOW * (1 - limit / current)) + 1
        return max(1, int(WINDOW - WINDOW * (limit - current) / previous) - elapsed + 1)

    def fail(self, client_id: str | None, address: str, now: int) -> None:
        window = window_of(now, WINDOW)
        by_client, by_address = self._keys(client_id, address)
        if self._counter.add(by_address, window, period=2 * WINDOW) == self._per_address:
            log.warning("client authentication throttled for an address", extra={"source": address})
        if by_client is None:
            return
        if self._counter.add(by_client, window, period=2 * WINDOW) == self._per_client:
            log.warning(
                "client authentication throttled",
                extra={"client_id": client_id, "source": address},
            )
