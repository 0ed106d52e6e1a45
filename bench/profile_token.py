"""Per-request CPU cost of the token endpoint in-process, without HTTP: µs/request and a profile.

    taskset -c 1 python bench/profile_token.py                 # ES256: best-of-rounds µs/request
    taskset -c 1 python bench/profile_token.py --alg RS256
    taskset -c 1 python bench/profile_token.py --profile 25    # + cProfile, top 25 functions
    taskset -c 1 python bench/profile_token.py --clock cpu     # CPU time: a busy machine

A fresh home is set up with the real CLI (as bench_token.py does), then the application from
``tokenward.server.app.create_app`` is driven directly over ASGI: its lifespan starts (keys,
registry, background loops), and ``POST /token`` requests with client_secret_basic are sent
one after another through fake ``receive``/``send`` callables. The event loop gets control
every 100 requests, so the audit flush and the other background loops run as they would in
the server. Everything uvicorn and httptools do (parsing, the socket writes) is *not*
included: ``bench_token.py`` measures that end to end.

Rounds alternate with nothing else; the best round is reported because noise from other
processes on a shared machine only ever slows a round down.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import logging
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench_token import APIS, Home, create_api, create_secret_client, temporary_home

Message = dict[str, Any]
ASGIApp = Callable[
    [dict[str, Any], Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]


async def _lifespan(app: ASGIApp) -> tuple[asyncio.Queue[Message], asyncio.Task[None]]:
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    started = asyncio.Event()

    async def receive() -> Message:
        return await inbox.get()

    async def send(message: Message) -> None:
        if message["type"].startswith("lifespan.startup"):
            if message["type"] == "lifespan.startup.failed":
                raise RuntimeError(message.get("message", "startup failed"))
            started.set()

    async def lifespan() -> None:
        await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)

    task = asyncio.create_task(lifespan())
    await inbox.put({"type": "lifespan.startup"})
    await asyncio.wait_for(started.wait(), 30)
    return inbox, task


async def drive(
    app: ASGIApp,
    basic: str,
    scope_value: str,
    rounds: int,
    per_round: int,
    flush: Callable[[], Awaitable[object]],
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Best µs/request over ``rounds`` rounds of ``per_round`` sequential requests.

    ``flush`` (the audit buffer's) runs inside each timed round, so a round pays for writing
    the audit events of its own requests whether or not the 1 s flush loop fired in it.
    """
    body = f"grant_type=client_credentials&scope={scope_value}".encode()
    headers = [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"authorization", b"Basic " + basic.encode()),
        (b"accept", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/token",
        "raw_path": b"/token",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    request_message = {"type": "http.request", "body": body, "more_body": False}
    status = [0]

    async def receive() -> Message:
        return request_message

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            status[0] = message["status"]

    best = float("inf")
    for _ in range(rounds):
        started = clock()
        for i in range(per_round):
            await app(dict(scope), receive, send)
            if status[0] != 200:
                raise RuntimeError(f"token request answered {status[0]}")
            if i % 100 == 99:
                await asyncio.sleep(0)
        await flush()
        elapsed = clock() - started
        best = min(best, elapsed / per_round * 1e6)
        await asyncio.sleep(0)
    return best


async def run(args: argparse.Namespace, home: Home, basic: str) -> None:
    os.environ.update(home.environ())
    from tokenward.server.app import create_app

    tokenward_app = create_app()
    app: ASGIApp = tokenward_app
    flush = tokenward_app.server.audit.flush
    log_file = (home.path / "server.log").open("w")
    for handler in logging.getLogger("tokenward").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(log_file)
    inbox, lifespan = await _lifespan(app)
    scope_value = APIS[args.alg.lower()].scope
    try:
        await drive(app, basic, scope_value, 1, 2000, flush)  # warm-up
        clock = time.process_time if args.clock == "cpu" else time.perf_counter
        best = await drive(app, basic, scope_value, args.rounds, args.requests, flush, clock)
        print(
            f"{args.alg}: {best:.1f} µs/request in-process ({args.clock} time, best of "
            f"{args.rounds} rounds of "
            f"{args.requests}) = {1e6 / best:,.0f} requests/s per core before HTTP"
        )
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            await drive(app, basic, scope_value, 1, args.requests, flush)
            profiler.disable()
            for order in ("tottime", "cumulative"):
                out = io.StringIO()
                stats = pstats.Stats(profiler, stream=out)
                stats.sort_stats(order).print_stats(args.profile)
                print(f"--- by {order}")
                print(out.getvalue().split("\n\n", 2)[-1].rstrip())
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(lifespan, 30)
        log_file.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alg", choices=("ES256", "RS256"), default="ES256")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--requests", type=int, default=3000, help="requests per round")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print top N")
    parser.add_argument("--server-env", action="append", default=[], metavar="TOKENWARD_NAME=VALUE")
    parser.add_argument("--keep-home", action="store_true")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: elapsed time; cpu: this process's CPU time, every thread included (steadier "
        "on a shared machine)",
    )
    args = parser.parse_args()
    if not 1 <= args.rounds <= 100 or not 100 <= args.requests <= 1_000_000:
        parser.error("--rounds in [1, 100], --requests in [100, 1000000]")
    tempfile.tempdir = None
    with temporary_home(args.keep_home) as path:
        home = Home(Path(path), dict(item.split("=", 1) for item in args.server_env))
        for name in ("es256", "rs256"):
            create_api(home, APIS[name])
        scopes = [APIS["es256"].scope, APIS["rs256"].scope]
        creds = create_secret_client(home, "bench-basic", scopes)
        assert creds.basic is not None
        try:
            import uvloop

            uvloop.run(run(args, home, creds.basic))
        except ImportError:
            asyncio.run(run(args, home, creds.basic))
    return 0


if __name__ == "__main__":
    sys.exit(main())
