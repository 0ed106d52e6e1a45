"""Signing-key rotation and client-secret rotation, on SQLite and PostgreSQL.

The real app runs in-process on each database with a clock the test moves; rotations are made
with the real ``tokenward`` CLI on the same database, and the app picks them up through its
registry poll (``cache_refresh_seconds``), as a deployed server would.

Keys (RFC 7517, OIDC Core §10.1.1, checklist 1.7): ``tokenward keys rotate`` publishes a
``next`` key (in the JWKS, not signing) -> at activation it signs and the old key is
``retired`` but still published -> removed once ``max_token_ttl`` + skew have passed.

Secrets (CA-23): a second secret is added, both work; the first is revoked with a grace period
and stops working when it ends; a revoked secret stops working within the cache bound.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.server.harness import (
    ACTOR,
    API,
    InProcess,
    eventually,
    in_process,
    jwt_parts,
    make_settings,
    settings_environ,
    verify,
)
from tests.support.clock import FakeClock
from tests.support.tokenward_server import TokenwardEnv
from tokenward.server.admin.schemas import ApiCreate, ClientCreate
from tokenward.server.keys import SKEW, key_states
from tokenward.server.storage.sql.repository import Repository
from tokenward.server.stores import KeyRow

pytestmark = pytest.mark.anyio

MAX_TTL = 3600
DELAY = 600


@dataclass
class Rig:
    tw: InProcess
    clock: FakeClock
    cli: TokenwardEnv
    first_secret_id: str

    async def kid(self, secret: str = "s1") -> str:
        response = await self.tw.token(auth=("c1", secret))
        assert response.status_code == 200, response.text
        kid: str = jwt_parts(response.json()["access_token"])[0]["kid"]
        return kid

    async def status(self, secret: str) -> int:
        return (await self.tw.token(auth=("c1", secret))).status_code


@pytest.fixture
async def rig(db_url: str, tmp_path: Path) -> AsyncIterator[Rig]:
    settings = make_settings(tmp_path, db_url, max_token_ttl=MAX_TTL, key_publication_delay=DELAY)
    clock = FakeClock()
    async with in_process(settings, clock=clock) as tw:
        await tw.admin.create_api(
            ApiCreate(identifier=API, name="Example", scopes=["read"]), actor=ACTOR
        )
        spec = ClientCreate(name="c1", client_id="c1", scopes=["read"], secret="s1")
        new = (await tw.admin.create_client(spec, actor=ACTOR)).secret
        assert new is not None
        await tw.sync()
        cli = TokenwardEnv(home=tmp_path, database_url=db_url, extra=settings_environ(settings))
        yield Rig(tw, clock, cli, new.secret_id)


async def test_key_rotation_next_active_retired_removed(rig: Rig) -> None:
    tw, server = rig.tw, rig.tw.server
    old = await rig.kid()
    old_token = (await tw.token(auth=("c1", "s1"))).json()["access_token"]
    assert await tw.kids() == {old}

    out = rig.cli.cli("keys", "rotate").stdout
    new = out.split(" key ", 1)[1].split(":", 1)[0]
    assert new != old

    async def published() -> bool:
        return new in await tw.kids()

    await eventually(published, what="the next key reaching the JWKS")
    # next: published, not signing.
    assert await rig.kid() == old
    states = {k["kid"]: k["state"] for k in rig.cli.cli_json("keys", "list")}
    assert states == {old: "active", new: "next"}

    row = next(r for r in await server.stores.keys.list_keys() if r.kid == new)
    assert row.activates_at - row.created_at == DELAY
    rig.clock.now = row.activates_at
    # active: the new key signs, the old one stays published (retired) for the old tokens.
    assert await rig.kid() == new
    keys = await tw.jwks()
    assert {k.kid for k in keys} == {old, new}
    assert verify(old_token, keys, ["ES256"])["client_id"] == "c1"
    by_kid = {
        s.kid: s
        for s in key_states(
            await server.stores.keys.list_keys(), now=row.activates_at, max_token_ttl=MAX_TTL
        )
    }
    assert by_kid[old].state == "retired"
    assert by_kid[old].retires_at == row.activates_at
    removable = row.activates_at + MAX_TTL + SKEW
    assert by_kid[old].removable_at == removable

    # The maintenance step keeps it until every token it signed has expired, then removes it.
    rig.clock.now = removable - 1
    await server.runtime.upkeep_keys()
    await server.registry.refresh_if_changed()
    assert await tw.kids() == {old, new}
    rig.clock.now = removable
    await server.runtime.upkeep_keys()
    await server.registry.refresh_if_changed()
    assert await tw.kids() == {new}
    assert await rig.kid() == new


async def test_key_states_over_time() -> None:
    """``key_states`` with explicit ``now``s: the schedule every worker computes alike."""
    t0 = 1_800_000_000
    rows = [
        KeyRow("k1", "ES256", 1, "x", t0, t0),
        KeyRow("k2", "ES256", 2, "x", t0 + 100, t0 + 700),
        KeyRow("r1", "RS256", 1, "x", t0, t0),
    ]

    def states(now: int) -> dict[str, tuple[str, int | None]]:
        return {
            s.kid: (s.state, s.removable_at)
            for s in key_states(rows, now=now, max_token_ttl=MAX_TTL)
        }

    gone = t0 + 700 + MAX_TTL + SKEW
    assert states(t0 + 699) == {
        "k1": ("active", None),
        "k2": ("next", None),
        "r1": ("active", None),
    }
    assert states(t0 + 700) == {
        "k1": ("retired", gone),
        "k2": ("active", None),
        "r1": ("active", None),
    }
    assert states(gone) == states(t0 + 700)  # deletion is the maintenance step's job


async def test_secret_rotation_with_overlap(rig: Rig) -> None:
    """CA-23: rotate s1 -> s2 with overlap; both work; s1 stops when the grace ends."""
    added = rig.cli.cli_json("clients", "secrets", "add", "c1", "--label", "rotation")
    s2, s2_id = added["client_secret"], added["secret_id"]

    async def s2_works() -> bool:
        return await rig.status(s2) == 200

    await eventually(s2_works, what="the added secret working")
    assert await rig.status("s1") == 200  # overlap: both work

    rig.cli.cli("clients", "secrets", "revoke", "c1", rig.first_secret_id, "--grace", "3600")
    stores = rig.tw.server.stores

    async def reloaded() -> bool:
        return rig.tw.server.registry.version == await stores.registry.version()

    await eventually(reloaded, what="the registry reload")
    assert await rig.status("s1") == 200  # still inside the grace period
    listed = {s["id"]: s for s in rig.cli.cli_json("clients", "secrets", "list", "c1")}
    assert listed[rig.first_secret_id]["expires_at"] is not None
    assert listed[s2_id]["expires_at"] is None

    stored = await stores.admin.get_client("c1")
    expires_at = next(x.expires_at for x in stored.secrets if x.id == rig.first_secret_id)
    assert expires_at is not None
    rig.clock.now = expires_at - 1
    assert await rig.status("s1") == 200
    rig.clock.now = expires_at
    assert await rig.status("s1") == 401  # grace over
    assert await rig.status(s2) == 200

    # An immediate revocation stops the secret within the cache bound.
    rig.cli.cli("clients", "secrets", "revoke", "c1", s2_id)

    async def s2_refused() -> bool:
        return await rig.status(s2) == 401

    await eventually(s2_refused, what="the revoked secret being refused")


async def test_last_used_is_written_behind(db_url: str, tmp_path: Path) -> None:
    """Issuing writes nothing to the database; "last used" stamps are flushed later (here at
    shutdown) and then listed by the CLI's data source."""
    settings = make_settings(tmp_path, db_url)
    async with in_process(settings) as tw:
        await tw.admin.create_api(
            ApiCreate(identifier=API, name="Example", scopes=["read"]), actor=ACTOR
        )
        spec = ClientCreate(name="c1", client_id="c1", scopes=["read"], secret="s1")
        new = (await tw.admin.create_client(spec, actor=ACTOR)).secret
        assert new is not None
        await tw.sync()
        assert (await tw.token(auth=("c1", "s1"))).status_code == 200
        before = await tw.server.stores.admin.get_client("c1")
        assert before.secrets[0].last_used_at is None
    repository = Repository.from_url(db_url)
    try:
        after = await repository.get_client("c1")
    finally:
        await repository.close()
    assert after.secrets[0].id == new.secret_id
    assert after.secrets[0].last_used_at is not None
