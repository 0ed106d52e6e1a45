"""The in-memory registry of a worker and how it learns about changes (registry_cache.py).

The poll that bounds how long a disabled client or revoked secret keeps working is exercised
against real multi-worker servers in tests/e2e/test_workers.py. Here, in-process with the poll
pushed out of the way (60 s), the two mechanisms that do not depend on it:

* an unknown client id makes the worker check the registry version before answering, so a
  client created a moment ago works at once - even right after a check that predates it;
* those checks are coalesced: a burst of unknown ids costs one version query, not one each.

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

from tests.server.harness import ACTOR, C1, InProcess, in_process, make_settings, seed_registry
from tokenward.protocol.model import Registry
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
    """The real registry store, counting version queries."""

    store: RegistryStore
    version_calls: int = 0

    async def version(self) -> int:
        self.version_calls += 1
        return await self.store.version()

    async def load_registry(self) -> Registry:
        return await self.store.load_registry()


@pytest.fixture
async def counted(tmp_path: Path) -> AsyncIterator[tuple[InProcess, CountingRegistry]]:
    settings = make_settings(tmp_path, cache_refresh_seconds=60)
    stores = sql_stores(settings.database_url)
    counting = CountingRegistry(stores.registry)
    stores = dataclasses.replace(stores, registry=counting)
    async with in_process(settings, stores=stores) as running:
        await seed_registry(running)
        yield running, counting


async def test_a_burst_of_unknown_ids_costs_one_version_query(
    counted: tuple[InProcess, CountingRegistry],
) -> None:
    tw, counting = counted
    counting.version_calls = 0
    responses = await asyncio.gather(*(tw.token(auth=(f"nosuch-{i}", "x")) for i in range(20)))
    assert {r.status_code for r in responses} == {401}
    assert 1 <= counting.version_calls <= 2
    assert (await tw.token(auth=(C1.client_id, C1.secret))).status_code == 200
