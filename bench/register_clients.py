"""Register many client_secret_basic clients fast, for ``bench_scale.py``.

    TOKENWARD_DATABASE_URL=... python bench/register_clients.py --count 100000 \\
        --scope bench:es256 --active 1000 --creds creds.txt

The installation is the one the ``TOKENWARD_*`` settings name, as for the CLI (run
``tokenward apis create`` first, for the scope). Method, and why:

- The first and the last client are created through the admin layer
  (``build_server(settings).admin.create_client(ClientCreate(...), actor="bench")``), exactly as
  the CLI does, so the registry version moves and the audit trail records them.
- The clients in between are copies of the first client's rows (the ``clients`` and
  ``client_secrets`` tables of ``tokenward.server.storage.sql.tables``), each with its own
  client id, name, secret id and a fresh random secret whose digest is made by the server's own
  hasher (HMAC-SHA-256 under the installation's pepper), inserted in one transaction in chunks.
  Copying the admin-made rows keeps every other column (defaults, future columns) as the admin
  layer writes it.
- ``Admin.create_client`` costs 5 to 30 ms per client (a few queries and a transaction each):
  100,000 clients would take 10 to 50 minutes, the bulk copy takes seconds.

Writes ``--active`` of the clients, chosen at random over the whole id range, to ``--creds``
as base64("client_id:client_secret") lines (the input of ``wrk_token_rotate.lua``), and prints
one JSON line with the timings.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import secrets
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tokenward.server.admin.schemas import ClientCreate
from tokenward.server.composition import Server, build_server, prepare_database
from tokenward.server.settings import Settings
from tokenward.server.storage.sql import tables as t
from tokenward.server.storage.sql.migrate import sync_url

ACTOR = "bench"
CHUNK = 5_000


@dataclass
class Registered:
    count: int
    admin_seconds: float  # the two admin-layer creations together
    bulk_seconds: float
    total_seconds: float


def client_id(prefix: str, index: int) -> str:
    return f"{prefix}-{index:07d}"


async def _admin_create(server: Server, cid: str, scope: str) -> str:
    created = await server.admin.create_client(
        ClientCreate(name=cid, client_id=cid, scopes=[scope], auth_methods=["client_secret_basic"]),
        actor=ACTOR,
    )
    assert created.secret is not None
    return created.secret.client_secret


def _template(engine: sa.Engine, cid: str) -> tuple[dict[str, Any], dict[str, Any]]:
    with engine.connect() as conn:
        client = conn.execute(sa.select(t.clients).where(t.clients.c.client_id == cid)).one()
        secret = conn.execute(
            sa.select(t.client_secrets).where(t.client_secrets.c.client_id == cid)
        ).one()
    return dict(client._mapping), dict(secret._mapping)


def _bulk_copy(
    server: Server, engine: sa.Engine, template_id: str, ids: Sequence[str]
) -> dict[str, str]:
    """Insert a copy of the template client for each id; return each id's secret."""
    client, secret = _template(engine, template_id)
    values: dict[str, str] = {}
    clients: list[dict[str, Any]] = []
    client_secrets: list[dict[str, Any]] = []
    for cid in ids:
        value = secrets.token_urlsafe(32)
        values[cid] = value
        clients.append({**client, "client_id": cid, "name": cid})
        client_secrets.append(
            {
                **secret,
                "id": "sec_" + secrets.token_hex(8),
                "client_id": cid,
                "digest": server.secrets.hasher.digest(value),
            }
        )
    with engine.begin() as conn:
        for start in range(0, len(clients), CHUNK):
            conn.execute(sa.insert(t.clients), clients[start : start + CHUNK])
            conn.execute(sa.insert(t.client_secrets), client_secrets[start : start + CHUNK])
    return values


async def register(
    settings: Settings, *, count: int, scope: str, prefix: str
) -> tuple[dict[str, str], Registered]:
    started = time.perf_counter()
    server = build_server(settings)
    engine = sa.create_engine(sync_url(settings.database_url))
    try:
        values: dict[str, str] = {}
        first = client_id(prefix, 0)
        values[first] = await _admin_create(server, first, scope)
        admin = time.perf_counter() - started
        bulk_started = time.perf_counter()
        middle = [client_id(prefix, i) for i in range(1, count - 1)]
        values |= _bulk_copy(server, engine, first, middle)
        bulk = time.perf_counter() - bulk_started
        if count > 1:
            last_started = time.perf_counter()
            last = client_id(prefix, count - 1)
            values[last] = await _admin_create(server, last, scope)
            admin += time.perf_counter() - last_started
    finally:
        engine.dispose()
        await server.aclose()
    return values, Registered(count, admin, bulk, time.perf_counter() - started)


def write_creds(values: dict[str, str], active: int, path: Path, rng: random.Random) -> None:
    chosen = rng.sample(sorted(values), min(active, len(values)))
    lines = [base64.b64encode(f"{cid}:{values[cid]}".encode()).decode() for cid in chosen]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, required=True, help="clients to register (>= 1)")
    parser.add_argument("--scope", required=True, help="the scope every client is granted")
    parser.add_argument("--active", type=int, default=1000, help="clients written to --creds")
    parser.add_argument("--creds", type=Path, required=True, help="where to write credentials")
    parser.add_argument("--prefix", default="scale", help="client id prefix (default scale)")
    parser.add_argument("--seed", type=int, help="random seed of the --active choice")
    args = parser.parse_args(argv)
    if not 1 <= args.count <= 10_000_000 or args.active < 1:
        parser.error("--count must be in [1, 10000000] and --active at least 1")
    settings = Settings()
    prepare_database(settings)
    values, done = asyncio.run(
        register(settings, count=args.count, scope=args.scope, prefix=args.prefix)
    )
    write_creds(values, args.active, args.creds, random.Random(args.seed))
    print(json.dumps(vars(done)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
