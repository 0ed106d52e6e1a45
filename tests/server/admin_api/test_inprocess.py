"""Admin API behaviour that needs time to move: the one in-process harness with a fake clock.

Key retirement through its states, an admin token expiring, the "last used" time of a secret
after the runtime writes it, and an audit page that ends exactly where the events end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.server.harness import make_settings
from tests.support.inprocess import InProcess, in_process
from tokenward.server.admin import Conflict, NotFound
from tokenward.server.admin.bootstrap import set_up_admin_api
from tokenward.server.admin.schemas import KeyRotate
from tokenward.server.stores import AuditQuery

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def tw(tmp_path: Path) -> AsyncIterator[InProcess]:
    async with in_process(make_settings(tmp_path), loops=False) as running:
        yield running


async def _admin_token(tw: InProcess) -> tuple[str, str, str]:
    setup = await set_up_admin_api(tw.admin, issuer=tw.settings.issuer, actor="test")
    assert setup.created is not None
    assert setup.created.secret is not None
    client_id, secret = setup.created.client.client_id, setup.created.secret.client_secret
    await tw.sync()
    response = await tw.token(auth=(client_id, secret))
    return client_id, secret, response.json()["access_token"]


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_an_admin_token_stops_working_when_it_expires(tw: InProcess) -> None:
    _, _, token = await _admin_token(tw)
    assert (await tw.http.get("/admin/api/keys", headers=_bearer(token))).status_code == 200
    tw.clock.advance(tw.settings.token_ttl)
    expired = await tw.http.get("/admin/api/keys", headers=_bearer(token))
    assert (expired.status_code, expired.json()["error"]) == (401, "invalid_token")


async def test_retiring_keys_through_their_states(tw: InProcess) -> None:
    [active] = await tw.admin.list_keys()
    upcoming = await tw.admin.rotate_key(KeyRotate(activate_in=600), actor="test")

    with pytest.raises(Conflict):  # it never signed: delete it instead
        await tw.admin.retire_key(upcoming.kid, actor="test")
    await tw.admin.delete_key(upcoming.kid, actor="test")
    assert upcoming.kid not in await tw.kids()  # gone from the JWKS at once

    retired = await tw.admin.retire_key(active.kid, actor="test")
    keys = {k.kid: k for k in await tw.admin.list_keys()}
    successor = next(k for k in keys.values() if k.state == "active")
    assert retired.state == "retired"
    assert retired.retires_at == successor.activates_at  # it stops signing now
    ttl = tw.settings.max_token_ttl
    assert retired.removed_at is not None
    assert retired.retires_at is not None
    assert (retired.removed_at - retired.retires_at).total_seconds() == ttl + 60
    assert {active.kid, successor.kid} <= await tw.kids()  # both published

    with pytest.raises(Conflict):  # tokens it signed may still be valid
        await tw.admin.delete_key(active.kid, actor="test")
    await tw.admin.delete_key(active.kid, force=True, actor="test")
    assert active.kid not in await tw.kids()
    with pytest.raises(NotFound):
        await tw.admin.retire_key(active.kid, actor="test")
    retired_events = await tw.admin.audit_page(AuditQuery(event="key.retired", limit=10))
    assert [e.data["kid"] for e in retired_events.events] == [active.kid]
    deleted = await tw.admin.audit_page(AuditQuery(event="key.deleted", limit=10))
    assert [(e.data["kid"], e.data["forced"]) for e in deleted.events] == [
        (active.kid, True),
        (upcoming.kid, False),
    ]


async def test_a_secret_shows_when_it_was_last_used(tw: InProcess) -> None:
    client_id, secret, token = await _admin_token(tw)
    path = f"/admin/api/clients/{client_id}/secrets"
    [before] = (await tw.http.get(path, headers=_bearer(token))).json()
    assert before["last_used_at"] is None
    tw.clock.advance(5)
    assert (await tw.token(auth=(client_id, secret))).status_code == 200
    await tw.server.runtime.flush_last_used()
    [after] = (await tw.http.get(path, headers=_bearer(token))).json()
    assert after["last_used_at"] is not None
    assert after["last_used_at"] != after["created_at"]


async def test_the_last_audit_page_has_no_cursor(tw: InProcess) -> None:
    _, _, token = await _admin_token(tw)  # two events: api.created, client.created

    async def page(**params: str) -> httpx.Response:
        return await tw.http.get("/admin/api/audit", params=params, headers=_bearer(token))

    exact = (await page(limit="2")).json()
    assert (len(exact["events"]), exact["next_cursor"]) == (2, None)
    first = (await page(limit="1")).json()
    assert first["next_cursor"] == str(first["events"][0]["id"])
    last = (await page(limit="1", cursor=first["next_cursor"])).json()
    assert [e["event"] for e in last["events"]] == ["api.created"]
    assert last["next_cursor"] is None
