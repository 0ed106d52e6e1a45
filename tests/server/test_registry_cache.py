"""The in-memory registry of a worker and how it learns about changes (service.py).

The poll that bounds how long a disabled client or revoked secret keeps working is exercised
against real multi-worker servers in tests/e2e/test_workers.py. Here, in-process with the poll
pushed out of the way (60 s), the two mechanisms that do not depend on it:

* an unknown client id makes the worker check the registry version before answering, so a
  client created a moment ago works at once - even right after a check that predates it;
* those checks are coalesced: a burst of unknown ids costs one version query, not one each.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.server.harness import C1, Running

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def tw_settings_overrides() -> dict[str, Any]:
    return {"cache_refresh_seconds": 60}


async def test_a_client_created_right_after_a_check_works_at_once(tw: Running) -> None:
    service = tw.app.service
    await service.refresh_if_changed()  # a version check happens just before the change
    await tw.admin.create_client(name="late", client_id="late", scopes=["read"], secret="s-late")
    response = await tw.token(auth=("late", "s-late"))
    assert response.status_code == 200, response.text


async def test_changes_to_known_clients_wait_for_the_poll(tw: Running) -> None:
    """A known client is served from memory: disabling it shows after the next check (the
    documented ``cache_refresh_seconds`` bound), not on the request path."""
    await tw.admin.create_client(name="d", client_id="to-disable", scopes=["read"], secret="s-d")
    assert (await tw.token(auth=("to-disable", "s-d"))).status_code == 200
    await tw.admin.update_client("to-disable", enabled=False)
    assert (await tw.token(auth=("to-disable", "s-d"))).status_code == 200
    await tw.app.service.refresh_if_changed()  # what the poll loop does
    assert (await tw.token(auth=("to-disable", "s-d"))).status_code == 401


async def test_a_burst_of_unknown_ids_costs_one_version_query(
    tw: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository = tw.app.service.repository
    original = repository.version
    calls = 0

    async def counting() -> int:
        nonlocal calls
        calls += 1
        return await original()

    monkeypatch.setattr(repository, "version", counting)
    responses = await asyncio.gather(*(tw.token(auth=(f"nosuch-{i}", "x")) for i in range(20)))
    assert {r.status_code for r in responses} == {401}
    assert 1 <= calls <= 2
    assert (await tw.token(auth=(C1.client_id, C1.secret))).status_code == 200
