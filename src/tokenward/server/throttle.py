"""Failed client authentications, counted to slow down guessing (RFC 6749 §2.3.1: the server
"MUST protect ... against brute force attacks")."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from tokenward.protocol.errors import SlowDown

__all__ = ["FailureThrottle"]

log = logging.getLogger("tokenward.throttle")


@dataclass
class FailureThrottle:
    """Per-client-id failure counter over a fixed one-minute window. Checked *before* any
    secret is hashed; applies to unknown client ids too, so it reveals nothing about which ids
    exist. Per process."""

    limit: int
    window: int = 60
    _counts: dict[str, tuple[int, int]] = field(default_factory=dict)

    def check(self, client_id: str | None, now: int) -> None:
        if client_id is None:
            return
        start, count = self._counts.get(client_id, (now, 0))
        if now - start < self.window and count >= self.limit:
            raise SlowDown(retry_after=self.window - (now - start), reason="throttled")

    def fail(self, client_id: str | None, now: int) -> None:
        if client_id is None:
            return
        start, count = self._counts.get(client_id, (now, 0))
        if now - start >= self.window:
            start, count = now, 0
        self._counts[client_id] = (start, count + 1)
        if count + 1 == self.limit:
            log.warning("client authentication throttled", extra={"client_id": client_id})
        if len(self._counts) > 100_000:
            self._counts = {k: v for k, v in self._counts.items() if now - v[0] < self.window}
