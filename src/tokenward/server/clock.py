"""The server's one source of wall-clock time, injected into every component that reads it
(token lifetimes, key states, assertion checks), so tests can move it by hand."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Clock", "system_clock"]

#: Seconds since the epoch, as ``time.time``.
Clock = Callable[[], float]


def system_clock() -> float:
    return time.time()
