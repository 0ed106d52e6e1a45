"""How long the audit flush holds the event loop: the cause of the token endpoint's p99 spikes.

    python bench/bench_audit_flush.py                  # 5,000 events per flush, 7 rounds
    python bench/bench_audit_flush.py --events 20000

A second's worth of token events (``--events``, as a server issuing that many tokens per second
buffers them) is flushed through the real ``AuditBuffer`` and audit-log sink, written to a file
by the server's JSON log handler. Reported, best and median of the rounds:

* loop CPU per flush: CPU time the event-loop thread itself spent from the start of the flush
  to its end (``time.thread_time``): work no request can interleave with;
* total CPU per event: the CPU time of the whole process (every thread) per event;
* longest wait: while the flush runs, a ticker task yields to the loop continuously; the longest
  elapsed time between two of its turns is the longest a request would have waited behind the
  flush (a GIL hand-over included). The same ticker without a flush gives the noise floor.

The CPU figures hold on a shared machine; the waits include preemption by other processes,
hence best-of-rounds. Run it against another checkout with ``PYTHONPATH=path/to/src``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tokenward.server.events import AuditBuffer, configure_logging


def _fill(events: int) -> AuditBuffer:
    buffer = AuditBuffer(enabled=True)
    for n in range(events):
        buffer.issued(
            client_id=f"client-{n % 50}",
            scopes=["invoices:read"],
            audience="https://api.example.com",
            jti=f"{n:022d}",
            method="client_secret_basic",
        )
    return buffer


async def cpu_round(events: int) -> tuple[float, float]:
    """Loop-thread CPU of one flush, and process CPU per event."""
    buffer = _fill(events)
    loop_before, process_before = time.thread_time(), time.process_time()
    await buffer.flush()
    return time.thread_time() - loop_before, (time.process_time() - process_before) / events


async def wait_round(events: int) -> float:
    """The longest gap between two turns of a ticker while a flush of ``events`` runs (no
    flush at all with ``events`` 0: the noise floor, over 50 ms)."""
    buffer = _fill(events)
    longest = 0.0
    running = True

    async def ticker() -> None:
        nonlocal longest
        last = time.perf_counter()
        while running:
            await asyncio.sleep(0)
            now = time.perf_counter()
            longest = max(longest, now - last)
            last = now

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    if events:
        await buffer.flush()
    else:
        await asyncio.sleep(0.05)
    running = False
    await tick
    return longest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000, help="events per flush")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if not 1 <= args.events <= 1_000_000 or not 1 <= args.rounds <= 100:
        parser.error("--events in [1, 1000000], --rounds in [1, 100]")
    with tempfile.TemporaryDirectory() as home:
        configure_logging(level="INFO", fmt="json")
        log_file = (Path(home) / "audit.log").open("w")
        for handler in logging.getLogger("tokenward").handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(log_file)
        cpu = [asyncio.run(cpu_round(args.events)) for _ in range(args.rounds)]
        waits = [asyncio.run(wait_round(args.events)) for _ in range(args.rounds)]
        floor = [asyncio.run(wait_round(0)) for _ in range(args.rounds)]
        log_file.close()
    rows = {
        "loop CPU per flush": (r[0] * 1e3 for r in cpu),
        "total CPU per event": (r[1] * 1e6 for r in cpu),
        "longest wait during a flush": (w * 1e3 for w in waits),
        "longest wait without a flush": (w * 1e3 for w in floor),
    }
    print(f"{args.events:,} events per flush, {args.rounds} rounds")
    print("| measure | best | median |")
    print("|---|---:|---:|")
    for name, values in rows.items():
        ordered = sorted(values)
        unit = "µs" if "event" in name else "ms"
        print(f"| {name} | {ordered[0]:.2f} {unit} | {statistics.median(ordered):.2f} {unit} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
