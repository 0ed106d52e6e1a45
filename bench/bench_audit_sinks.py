"""CPU per drained audit batch, sink by sink: the audit log (JSON lines) and the usage
statistics' counting (``server/usage.py``). Both run in the flush loop, once a second, off the
request path; this shows what the usage statistics add to it. Prints a Markdown table.

    taskset -c 1 python bench/bench_audit_sinks.py
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from tokenward.server.events import write_audit_log
from tokenward.server.stores import UsageCount
from tokenward.server.usage import UsageSink

EVENTS = 10_000
CLIENTS = 50


class NoStore:
    async def add_usage(self, counts: Any) -> None:
        return None

    async def usage_series(self, since: int, *, client_id: str | None = None) -> list[UsageCount]:
        return []

    async def top_clients(self, since: int, *, suffix: str, limit: int) -> list[tuple[str, int]]:
        return []

    async def purge_usage(self, before: int) -> int:
        return 0


def batch() -> list[dict[str, Any]]:
    start = time.time()
    return [
        {"event": "token.issued", "at": start + i / EVENTS, "client_id": f"client-{i % CLIENTS}",
         "scope": "orders:read", "aud": "https://api.example", "jti": f"jti-{i}",
         "auth_method": "client_secret_basic", "outcome": "success"}
        for i in range(EVENTS)
    ]  # fmt: skip


def best_ms(work: Callable[[], object], rounds: int = 7) -> float:
    best = float("inf")
    for _ in range(rounds):
        began = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - began)
    return best * 1000


def main() -> None:
    audit = logging.getLogger("tokenward.audit")
    audit.setLevel(logging.INFO)
    audit.addHandler(logging.NullHandler())
    audit.propagate = False
    events = batch()
    sink = UsageSink(NoStore(), known=lambda client_id: True)
    rows = [
        ("audit log (JSON lines)", best_ms(lambda: asyncio.run(write_audit_log(events)))),
        ("usage statistics (count)", best_ms(lambda: sink.count(events))),
    ]
    print(f"| sink | ms per {EVENTS:,} events | µs per event |")
    print("|---|---|---|")
    for name, ms in rows:
        print(f"| {name} | {ms:.1f} | {ms * 1000 / EVENTS:.2f} |")


if __name__ == "__main__":
    main()
