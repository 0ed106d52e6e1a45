"""The in-memory registry of a worker and how it learns about changes (registry_cache.py).

The poll that bounds how long a disabled client or revoked secret keeps working is exercised
against real multi-worker servers in tests/e2e/test_workers.py. Here, in-process with the poll
pushed out of the way (60 s), the two mechanisms that do not depend on it:

* a failed authentication reads the presented client's row with the registry version, so a
  client created a moment ago works at once - even right after a check that predates it;
* that read is the same for every failure, known id or not, and success costs none: no
  existence oracle (the timing itself is measured by bench/bench_auth_timing.py);
* when that read is slow, it is skipped for every failure until the database answers.

A change made through this process's own admin layer (the admin API, the console) is seen at
once; one made by another process (the CLI, another instance) waits for the poll.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.harness import (
    ACTOR,
    C1,
    DISABLED,
    InProcess,
    in_process,
    make_settings,
    seed_registry,
)
from tokenward.protocol.model import Client, Registry
from tokenward.server.admin.schemas import ClientCreate, ClientUpdate
from tokenward.server.storage.sql.repository import sql_stores
from tokenward.server.stores import RegistryStore

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def tw_settings_overrides() -> dict[str, Any]:
    return {"cache_refresh_seconds": 60}


async def test_a_client_created_right_after_a_check_works_at_once(tw: InProcess) -> None:
    await tw.server.registry.refresh_if_changed()  # a version check just before the change
    async with tw.sibling() as other:  # created by another instance
        await other.admin.create_client(
            ClientCreate(name="late", client_id="late", scopes=["read"], secret="s-late"),
            actor=ACTOR,
        )
    response = await tw.token(auth=("late", "s-late"))
    assert response.status_code == 200, response.text


async def test_changes_to_known_clients_wait_for_the_poll(tw: InProcess) -> None:
    """A known client is served from memory: disabling it on another instance shows after the
    next check (the documented ``cache_refresh_seconds`` bound), not on the request path."""
    await tw.admin.create_client(
        ClientCreate(name="d", client_id="to-disable", scopes=["read"], secret="s-d"), actor=ACTOR
    )
    assert (await tw.token(auth=("to-disable", "s-d"))).status_code == 200
    async with tw.sibling() as other:
        await other.admin.update_client("to-disable", ClientUpdate(enabled=False), actor=ACTOR)
    assert (await tw.token(auth=("to-disable", "s-d"))).status_code == 200
    await tw.server.registry.refresh_if_changed()  # what the poll loop does
    assert (await tw.token(auth=("to-disable", "s-d"))).status_code == 401


async def test_a_change_made_in_this_process_is_seen_at_once(tw: InProcess) -> None:
    await tw.admin.create_client(
        ClientCreate(name="e", client_id="local", scopes=["read"], secret="s-e"), actor=ACTOR
    )
    assert (await tw.token(auth=("local", "s-e"))).status_code == 200
    await tw.admin.update_client("local", ClientUpdate(enabled=False), actor=ACTOR)
    assert (await tw.token(auth=("local", "s-e"))).status_code == 401


@dataclasses.dataclass
class CountingRegistry:
    """The real registry store, counting single-row lookups; ``delay`` slows them down."""

    store: RegistryStore
    lookups: int = 0
    delay: float = 0.0

    async def version(self) -> int:
        return await self.store.version()

    async def load_registry(self) -> Registry:
        return await self.store.load_registry()

    async def client_record(self, client_id: str) -> tuple[int, Client | None]:
        self.lookups += 1
        await asyncio.sleep(self.delay)
        return await self.store.client_record(client_id)


@pytest.fixture
async def counted(tmp_path: Path) -> AsyncIterator[tuple[InProcess, CountingRegistry]]:
    settings = make_settings(tmp_path, cache_refresh_seconds=60, auth_failure_lookup_timeout=0.2)
    stores = sql_stores(settings.database_url)
    counting = CountingRegistry(stores.registry)
    stores = dataclasses.replace(stores, registry=counting)
    async with in_process(settings, stores=stores) as running:
        await seed_registry(running)
        yield running, counting


async def test_every_failure_reads_one_row_and_success_none(
    counted: tuple[InProcess, CountingRegistry],
) -> None:
    tw, counting = counted
    failures = [("nosuch", "x"), (C1.client_id, "wrong"), (DISABLED.client_id, DISABLED.secret)]
    for auth in failures:
        counting.lookups = 0
        assert (await tw.token(auth=auth)).status_code == 401
        assert counting.lookups == 1, auth
    counting.lookups = 0
    assert (await tw.token(auth=(C1.client_id, C1.secret))).status_code == 200
    assert counting.lookups == 0


async def test_a_slow_lookup_is_skipped_for_every_failure_until_it_answers(
    counted: tuple[InProcess, CountingRegistry],
) -> None:
    tw, counting = counted
    counting.delay = 1.0
    assert (await tw.token(auth=("nosuch", "x"))).status_code == 401  # waits 0.2 s, gives up
    counting.lookups = 0
    for auth in [("nosuch-2", "x"), (C1.client_id, "wrong")]:
        assert (await tw.token(auth=auth)).status_code == 401
    assert counting.lookups == 0
    counting.delay = 0.0
    await tw.server.registry.refresh_if_changed()  # the poll: the database answers again
    assert (await tw.token(auth=("nosuch-3", "x"))).status_code == 401
    assert counting.lookups == 1
