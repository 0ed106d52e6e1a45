"""Key operations without SQL: ``Admin.retire_key`` and ``Admin.delete_key`` (the key-compromise
runbook of docs/security.md), in process with a fake clock, then through the real CLI.

Retiring the active key makes a successor sign at once (the published ``next`` key brought
forward, else a new key); the retired key stays in the JWKS so tokens it signed still verify.
Deleting takes a key out of the JWKS; it is refused for the active key, and for a retired key
whose tokens may still be valid unless forced.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.server.harness import (
    ACTOR,
    API,
    InProcess,
    in_process,
    jwt_parts,
    make_settings,
    verify,
)
from tests.support.clock import FakeClock
from tests.support.tokenward_server import TokenwardEnv
from tokenward.server.admin import Conflict, NotFound
from tokenward.server.admin.schemas import ApiCreate, ClientCreate, KeyRotate
from tokenward.server.keys import KeyRing, new_key_row
from tokenward.server.secrets import KeyEncryptor
from tokenward.server.stores import AuditQuery

pytestmark = pytest.mark.anyio

MAX_TTL = 3600


async def _seed(tw: InProcess) -> None:
    await tw.admin.create_api(ApiCreate(identifier=API, name="A", scopes=["read"]), actor=ACTOR)
    spec = ClientCreate(name="c1", client_id="c1", scopes=["read"], secret="s" * 43)
    await tw.admin.create_client(spec, actor=ACTOR)


async def _signing_kid(tw: InProcess) -> str:
    await tw.sync()
    response = await tw.token(auth=("c1", "s" * 43))
    assert response.status_code == 200, response.text
    kid: str = jwt_parts(response.json()["access_token"])[0]["kid"]
    return kid


async def _states(tw: InProcess) -> dict[str, str]:
    return {k.kid: k.state for k in await tw.admin.list_keys()}


async def test_retire_the_active_key_a_new_key_signs_at_once(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_token_ttl=MAX_TTL)
    async with in_process(settings, loops=False) as tw:
        await _seed(tw)
        old = await _signing_kid(tw)
        old_token = (await tw.token(auth=("c1", "s" * 43))).json()["access_token"]
        retired = await tw.admin.retire_key(old, actor=ACTOR)
        assert retired.state == "retired"
        new = await _signing_kid(tw)
        assert new != old
        assert await _states(tw) == {old: "retired", new: "active"}
        # Tokens the retired key signed still verify with the published JWKS.
        assert verify(old_token, await tw.jwks(), ["ES256"])["client_id"] == "c1"
        events = await tw.admin.list_audit(AuditQuery(event="key.retired"))
        assert [(e.actor, e.data["kid"], e.data["successor"]) for e in events] == [
            (ACTOR, old, new)
        ]


async def test_retire_brings_the_published_next_key_forward(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_token_ttl=MAX_TTL)
    async with in_process(settings, loops=False) as tw:
        await _seed(tw)
        old = await _signing_kid(tw)
        upcoming = await tw.admin.rotate_key(KeyRotate(activate_in=600), actor=ACTOR)
        assert await _states(tw) == {old: "active", upcoming.kid: "next"}
        await tw.admin.retire_key(old, actor=ACTOR)
        # No third key: the one verifiers already cached signs now.
        assert await _states(tw) == {old: "retired", upcoming.kid: "active"}
        assert await _signing_kid(tw) == upcoming.kid


async def test_retire_refuses_a_next_key_and_leaves_a_retired_one(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_token_ttl=MAX_TTL)
    async with in_process(settings, loops=False) as tw:
        await _seed(tw)
        old = await _signing_kid(tw)
        upcoming = await tw.admin.rotate_key(KeyRotate(activate_in=600), actor=ACTOR)
        with pytest.raises(Conflict, match="has not signed anything yet"):
            await tw.admin.retire_key(upcoming.kid, actor=ACTOR)
        await tw.admin.retire_key(old, actor=ACTOR)
        again = await tw.admin.retire_key(old, actor=ACTOR)
        assert again.state == "retired"
        assert len(await tw.admin.list_audit(AuditQuery(event="key.retired"))) == 1
        with pytest.raises(NotFound):
            await tw.admin.retire_key("no-such-kid", actor=ACTOR)


async def test_delete_rules(tmp_path: Path) -> None:
    clock = FakeClock()
    settings = make_settings(tmp_path, max_token_ttl=MAX_TTL)
    async with in_process(settings, clock=clock, loops=False) as tw:
        await _seed(tw)
        first = await _signing_kid(tw)
        with pytest.raises(Conflict, match="retire it first"):
            await tw.admin.delete_key(first, actor=ACTOR)
        await tw.admin.retire_key(first, actor=ACTOR)
        with pytest.raises(Conflict, match="may be valid until"):
            await tw.admin.delete_key(first, actor=ACTOR)
        assert first in await tw.kids()
        # Once every token it signed has expired, no force is needed.
        clock.advance(MAX_TTL + 61)
        await tw.admin.delete_key(first, actor=ACTOR)
        await tw.sync()
        assert first not in await tw.kids()
        # A next key signed nothing: it goes without force.
        upcoming = await tw.admin.rotate_key(KeyRotate(activate_in=600), actor=ACTOR)
        await tw.admin.delete_key(upcoming.kid, actor=ACTOR)
        assert upcoming.kid not in await _states(tw)


async def test_forced_delete_of_a_compromised_key(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_token_ttl=MAX_TTL)
    async with in_process(settings, loops=False) as tw:
        await _seed(tw)
        bad = await _signing_kid(tw)
        await tw.admin.retire_key(bad, actor=ACTOR)
        await tw.admin.delete_key(bad, force=True, actor=ACTOR)
        await tw.sync()
        assert bad not in await tw.kids()
        assert await _signing_kid(tw) != bad
        (event,) = await tw.admin.list_audit(AuditQuery(event="key.deleted"))
        assert event.data == {"kid": bad, "alg": "ES256", "forced": True}


def test_key_commands_through_the_cli(tw_env: TokenwardEnv) -> None:
    """The refusals as the CLI words them (docs/security.md runs the whole runbook against a
    server)."""
    tw_env.cli("apis", "create", "--identifier", API, "--name", "A", "--scope", "read")
    (bad,) = [k["kid"] for k in tw_env.cli_json("keys", "list")]
    refused = tw_env.cli("keys", "delete", bad, check=False)
    assert refused.returncode == 1
    assert refused.stderr.strip() == f"error: key {bad} is signing (active): retire it first"
    retired = tw_env.cli("keys", "retire", bad)
    assert retired.stdout.startswith(f"retired ES256 key {bad}: published until ")
    refused = tw_env.cli("keys", "delete", bad, check=False)
    assert refused.returncode == 1
    assert "may be valid until" in refused.stderr
    assert refused.stderr.rstrip().endswith("(--force)")
    assert tw_env.cli("keys", "delete", bad, "--force").stdout.strip() == (
        f"deleted key {bad} (forced)"
    )
    keys = tw_env.cli_json("keys", "list")
    assert [k["state"] for k in keys] == ["active"]
    assert bad not in {k["kid"] for k in keys}


@pytest.mark.parametrize("kid", ["-hTG1njqk7WNetaXAr__fX-zwqGhLQ2ZiHhHL2mY", "--SzdgTG1njqk7WNe"])
def test_a_kid_that_begins_with_a_dash_is_a_kid(tw_env: TokenwardEnv, kid: str) -> None:
    """One RFC 7638 thumbprint in 64 begins with "-": retire and delete take it as the kid, not
    as options (before: "No such option: -S", or the help for "-h...", exit status 0)."""
    tw_env.cli("apis", "create", "--identifier", API, "--name", "A", "--scope", "read")
    for args in (("retire", kid), ("delete", kid, "--force"), ("delete", "--force", kid)):
        result = tw_env.cli("keys", *args, check=False)
        assert (result.returncode, result.stdout) == (2, "")
        assert result.stderr.strip() == f"error: key {kid} not found"


def test_a_key_ring_serves_the_keys_it_can_read() -> None:
    """A key sealed under another key-encryption key is reported by kid and left out; the
    readable key is still published and signs (before: InvalidTag stopped the server)."""
    mine, theirs = KeyEncryptor(os.urandom(32)), KeyEncryptor(os.urandom(32))
    now = 1_800_000_000
    good = new_key_row("ES256", generation=1, now=now - 100, activates_at=now - 100, encryptor=mine)
    bad = new_key_row("ES256", generation=2, now=now - 10, activates_at=now - 10, encryptor=theirs)
    ring = KeyRing(mine, max_token_ttl=MAX_TTL)
    ring.load([good, bad], now=now)
    assert list(ring.unreadable) == [bad.kid]
    assert "does not decrypt with this TOKENWARD_KEY_ENCRYPTION_KEY" in ring.unreadable[bad.kid]
    assert [k["kid"] for k in json.loads(ring.jwks_json)["keys"]] == [good.kid]
    signer = ring.signer("ES256", now)
    assert signer is not None
    assert jwt_parts(signer.sign({"a": 1}))[0]["kid"] == good.kid
