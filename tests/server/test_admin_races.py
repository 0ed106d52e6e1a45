"""Concurrent administrative changes to one client compose: none overwrites another.

Each client change is a read-modify-write applied only to the revision it read
(``clients.revision``, compare-and-set in ``Repository.save_client``); a writer that lost the
race reads again and reapplies its change (``Admin._modify_client``). Here 48 clients each get
three changes at once (disable, revoke-tokens, grant one more scope), on SQLite and on
PostgreSQL:

* from many tasks over three servers in one process (three engines, as three workers);
* from three processes that start their writes together at a barrier;
* from the real CLI: three ``tokenward`` commands per client, started together.

Afterwards every client is disabled, holds the new scope and a ``not_before`` at least the
revocation's, and the audit trail has the three changes.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import replace
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from tests.server.harness import ACTOR, API, make_settings, settings_environ
from tests.support.tokenward_server import TokenwardEnv
from tokenward.server.admin import Admin
from tokenward.server.admin.schemas import ApiCreate, ClientCreate, ClientUpdate
from tokenward.server.composition import Server, build_server, prepare_database
from tokenward.server.settings import Settings
from tokenward.server.storage.sql.repository import Repository
from tokenward.server.stores import AuditQuery, AuditRecord, ConcurrentChangeError, NotFoundError

pytestmark = pytest.mark.anyio

CLIENTS = 48
CHANGES = ("disable", "revoke-tokens", "add-scope")
#: Changes in flight per admin process. SQLite's busy timeout is 5 s, and its waiting writers
#: do not queue: at 8 per process (24 waiting), one was starved past it ("database is locked")
#: once, in the two-process suite with servers under test beside it.
PARALLEL = 4


def client_ids(n: int = CLIENTS) -> list[str]:
    return [f"race-{i:02d}" for i in range(n)]


async def apply(admin: Admin, change: str, client_id: str) -> None:
    actor = f"race:{change}"
    if change == "disable":
        await admin.update_client(client_id, ClientUpdate(enabled=False), actor=actor)
    elif change == "revoke-tokens":
        await admin.revoke_tokens(client_id, actor=actor)
    else:
        await admin.update_client(client_id, ClientUpdate(add_scopes=["write"]), actor=actor)


async def seed(settings: Settings, ids: Sequence[str]) -> None:
    prepare_database(settings)
    server = build_server(settings)
    try:
        await server.admin.create_api(
            ApiCreate(identifier=API, name="Race", scopes=["read", "write"]), actor=ACTOR
        )
        for client_id in ids:
            spec = ClientCreate(name=client_id, client_id=client_id, scopes=["read"])
            await server.admin.create_client(spec, actor=ACTOR)
    finally:
        await server.aclose()


async def check_every_change_kept(settings: Settings, ids: Sequence[str], started: int) -> None:
    server = build_server(settings)
    try:
        lost = []
        for client_id in ids:
            client = await server.stores.admin.get_client(client_id)
            events = await server.admin.list_audit(AuditQuery(client_id=client_id))
            kept = (
                not client.enabled
                and client.scopes == {"read", "write"}
                and (client.not_before or 0) > started
                and sorted(e.event for e in events)
                == ["client.created", "client.tokens_revoked", "client.updated", "client.updated"]
            )
            if not kept:
                lost.append(client_id)
        assert lost == [], f"{len(lost)} of {len(ids)} clients lost a concurrent change"
    finally:
        await server.aclose()


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(tmp_path, db_url)


async def test_a_write_from_a_stale_read_is_refused(settings: Settings) -> None:
    await seed(settings, ["c1"])
    repo = Repository.from_url(settings.database_url)
    try:
        read = await repo.get_client("c1")
        record = AuditRecord(at=0, event="test.saved", actor=ACTOR)
        await repo.save_client(replace(read, name="first"), now=1, audit=record)
        with pytest.raises(ConcurrentChangeError):
            await repo.save_client(replace(read, name="second"), now=2, audit=record)
        stored = await repo.get_client("c1")
        assert (stored.name, stored.revision) == ("first", read.revision + 1)
        with pytest.raises(NotFoundError):
            await repo.save_client(replace(read, client_id="nobody"), now=3, audit=record)
    finally:
        await repo.close()


async def test_many_tasks_over_three_servers(settings: Settings) -> None:
    ids = client_ids()
    await seed(settings, ids)
    started = int(time.time())
    async with AsyncExitStack() as stack:
        servers: list[Server] = []
        for _ in CHANGES:
            server = build_server(settings)
            stack.push_async_callback(server.aclose)
            servers.append(server)
        # Every change of one client goes to a different server; all run at once.
        await asyncio.gather(
            *(
                apply(servers[(index + k) % len(servers)].admin, change, client_id)
                for index, client_id in enumerate(ids)
                for k, change in enumerate(CHANGES)
            )
        )
    await check_every_change_kept(settings, ids, started)


def _process(home: str, database_url: str, change: str, barrier: Barrier) -> None:
    """One admin process: build a server, wait for the others, apply ``change`` to every
    client, ``PARALLEL`` at a time (the three processes go through the clients in the same
    order, so each client's three changes meet)."""
    settings = make_settings(Path(home), database_url)
    server = build_server(settings)
    parallel = asyncio.Semaphore(PARALLEL)

    async def one(client_id: str) -> None:
        async with parallel:
            await apply(server.admin, change, client_id)

    async def run() -> None:
        try:
            await asyncio.gather(*(one(cid) for cid in client_ids()))
        finally:
            await server.aclose()

    barrier.wait(timeout=60)
    asyncio.run(run())


async def test_three_processes_at_a_barrier(settings: Settings, tmp_path: Path) -> None:
    ids = client_ids()
    await seed(settings, ids)
    started = int(time.time())
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(CHANGES))
    processes = [
        context.Process(
            target=_process, args=(str(tmp_path), settings.database_url, change, barrier)
        )
        for change in CHANGES
    ]
    for process in processes:
        process.start()
    for process in processes:
        await asyncio.to_thread(process.join, 120)
    assert [p.exitcode for p in processes] == [0, 0, 0]
    await check_every_change_kept(settings, ids, started)


async def test_the_real_cli_from_many_processes(settings: Settings, tmp_path: Path) -> None:
    """Three commands per client, every process started at once (on two cores they reach
    their writes at about the same time)."""
    ids = client_ids(4)
    await seed(settings, ids)
    started = int(time.time())
    cli = TokenwardEnv(home=tmp_path, database_url=settings.database_url)
    env = {**cli.environ(), **settings_environ(settings), "TOKENWARD_ISSUER": settings.issuer}
    commands = {
        "disable": ["clients", "disable"],
        "revoke-tokens": ["clients", "revoke-tokens"],
        "add-scope": ["clients", "update", "--add-scope", "write"],
    }
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tokenward", *commands[change][:2], cid, *commands[change][2:]],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for cid in ids
        for change in CHANGES
    ]
    outputs = [await asyncio.to_thread(p.communicate, timeout=120) for p in processes]
    failed = [err for p, (_, err) in zip(processes, outputs, strict=True) if p.returncode != 0]
    assert failed == []
    await check_every_change_kept(settings, ids, started)
