"""How long the garbage collector stops a worker's event loop, with and without the frozen heap.

    taskset -c 1 python bench/bench_gc.py
    taskset -c 1 python bench/bench_gc.py --requests 300000

A fresh home is set up with the real CLI and the application is driven in-process over ASGI, as
``profile_token.py`` does (ES256, client_secret_basic), the audit buffer flushed every 1,000
requests as the server's 1 s flush would. Then, first with the heap as start-up left it,
then after ``runtime.freeze_heap`` (what a ``tokenward serve`` worker does once keys and
registry are loaded):

* tracked objects: what a full (generation 2) collection walks, after ``--requests`` token
  requests;
* full collection: the median time of ``gc.collect()`` over 7 calls: how long the event loop
  stops whenever CPython starts one by itself (it does when the objects that survived since
  the last one reach a quarter of those it tracks; under load, every few seconds).

Both phases run in one process, one after the other, so they see the same host.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_token import APIS, Home, create_api, create_secret_client, temporary_home
from profile_token import ASGIApp, _lifespan, drive


def full_collection_ms() -> float:
    times = []
    for _ in range(7):
        started = time.perf_counter()
        gc.collect()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


async def phase(app: ASGIApp, basic: str, scope: str, requests: int, flush: Any) -> list[str]:
    await drive(app, basic, scope, requests // 1000, 1000, flush)
    return [f"{len(gc.get_objects()):,}", f"{full_collection_ms():.2f} ms"]


async def run(home: Home, basic: str, requests: int) -> None:
    os.environ.update(home.environ())
    from tokenward.server.app import create_app
    from tokenward.server.runtime import freeze_heap

    app = create_app()
    log_file = (home.path / "server.log").open("w")
    for handler in logging.getLogger("tokenward").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(log_file)
    inbox, lifespan = await _lifespan(app)
    scope = APIS["es256"].scope
    flush = app.server.audit.flush
    try:
        await drive(app, basic, scope, 1, 2000, flush)  # warm-up
        rows = [["as started", *await phase(app, basic, scope, requests, flush)]]
        freeze_heap()
        rows.append(["frozen (tokenward serve)", *await phase(app, basic, scope, requests, flush)])
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(lifespan, 30)
        log_file.close()
    print(f"{requests:,} token requests per phase, in-process\n")
    print("| heap | tracked objects | full collection (median of 7) |")
    print("|---|---:|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100_000, help="token requests per phase")
    args = parser.parse_args()
    if not 1000 <= args.requests <= 1_000_000:
        parser.error("--requests in [1000, 1000000]")
    tempfile.tempdir = None
    with temporary_home(False) as path:
        home = Home(Path(path), {})
        create_api(home, APIS["es256"])
        creds = create_secret_client(home, "bench-basic", [APIS["es256"].scope])
        assert creds.basic is not None
        import uvloop

        uvloop.run(run(home, creds.basic, args.requests))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
