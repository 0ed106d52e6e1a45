"""What the token path's writes cost the server process: CPU per used ``jti`` and per opaque row.

    python bench/bench_group_commit.py                          # SQLite, 3 rounds
    python bench/bench_group_commit.py --database-url postgresql://user@host/empty_db

``--writers`` concurrent tasks (as many requests in flight in one worker) each record one
used assertion ``jti`` (``Repository.use_assertion``) or store one opaque token
(``Repository.store_opaque``) after another, through the real group commit, on a freshly
migrated database, until ``--rows`` rows are written. Reported per round: wall time and CPU
time of this process (every thread: the event loop, the writer thread, the driver) per row.
The database server's own CPU (PostgreSQL) is not counted. Run it against another checkout
with ``PYTHONPATH=path/to/src``; alternate the two and compare medians.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable

import sqlalchemy as sa

from tokenward.server.storage.sql.migrate import sync_url, upgrade
from tokenward.server.storage.sql.repository import Repository


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _empty(url: str) -> None:
    """Drop every table of the database (a PostgreSQL one reused between rounds)."""
    engine = sa.create_engine(sync_url(url))
    with engine.begin() as conn:
        meta = sa.MetaData()
        meta.reflect(conn)
        meta.drop_all(conn)
    engine.dispose()


async def _round(url: str, kind: str, rows: int, writers: int) -> tuple[float, float]:
    repo = Repository.from_url(url)
    left = rows
    claims = {"sub": "bench", "scope": "read", "aud": "https://api.bench", "exp": 2_000_000_000}

    def write() -> Awaitable[object]:
        if kind == "jti":
            return repo.use_assertion("bench", uuid.uuid4().hex, expires_at=2_000_000_000)
        return repo.store_opaque(
            uuid.uuid4().hex, client_id="bench", claims=claims, expires_at=2_000_000_000
        )

    async def writer(write: Callable[[], Awaitable[object]]) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await write()

    try:
        await repo.version()  # the async engine's pool is open before timing
        started, cpu = time.perf_counter(), _cpu()
        await asyncio.gather(*(writer(write) for _ in range(writers)))
        wall, cpu = time.perf_counter() - started, _cpu() - cpu
    finally:
        await repo.close()
    return wall / rows * 1e6, cpu / rows * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="an empty PostgreSQL database (default: SQLite)")
    parser.add_argument("--rows", type=int, default=20_000, help="rows per round (20,000)")
    parser.add_argument("--writers", type=int, default=32, help="concurrent writers (32)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per kind (3)")
    args = parser.parse_args()
    print(f"{args.writers} concurrent writers, {args.rows:,} rows per round")
    print("| row | wall µs/row (median) | CPU µs/row (median) | CPU µs/row, each round |")
    print("|---|---:|---:|---|")
    for kind in ("jti", "opaque"):
        results = []
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as home:
                url = args.database_url or f"sqlite:///{home}/bench.db"
                if args.database_url:
                    _empty(url)
                upgrade(url)
                results.append(asyncio.run(_round(url, kind, args.rows, args.writers)))
        walls, cpus = [w for w, _ in results], [c for _, c in results]
        each = ", ".join(f"{c:.1f}" for c in cpus)
        print(
            f"| {'used jti' if kind == 'jti' else 'opaque token'} "
            f"| {statistics.median(walls):.1f} | {statistics.median(cpus):.1f} | {each} |"
        )


if __name__ == "__main__":
    main()
