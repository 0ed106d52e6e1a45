"""Safe key activation: a new key may not sign before every verifier can know it.

A verifier may hold the JWKS for ``jwks_max_age`` seconds, and another instance publishes a new
key only at its next registry poll (``cache_refresh_seconds``); a key that signs sooner makes
tokens that fail verification. ``Admin.rotate_key`` (and ``tokenward keys rotate``) refuses
such an activation unless forced, and says why and when the earliest safe one is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.server.harness import ACTOR, InProcess, in_process, make_settings, settings_environ
from tests.support.tokenward_server import TokenwardEnv
from tokenward.server.admin import Conflict, Invalid, NotFound
from tokenward.server.admin.schemas import KeyRotate
from tokenward.server.keys import ACTIVATION_MARGIN, SKEW, safe_activation_delay
from tokenward.server.stores import AuditQuery

pytestmark = pytest.mark.anyio

MAX_AGE = 120
REFRESH = 1.5
LEAST = MAX_AGE + 2 + ACTIVATION_MARGIN


@pytest.fixture
async def tw(tmp_path: Path) -> AsyncIterator[InProcess]:
    settings = make_settings(tmp_path, jwks_max_age=MAX_AGE, cache_refresh_seconds=REFRESH)
    async with in_process(settings, loops=False) as running:
        yield running


def test_the_bound_is_max_age_plus_the_refresh_plus_a_margin() -> None:
    assert safe_activation_delay(jwks_max_age=MAX_AGE, registry_refresh=REFRESH) == LEAST
    assert safe_activation_delay(jwks_max_age=300, registry_refresh=2.0) == 307


async def test_a_too_early_activation_is_refused_with_the_reason(tw: InProcess) -> None:
    before = await tw.admin.list_keys()
    with pytest.raises(Invalid) as refused:
        await tw.admin.rotate_key(KeyRotate(activate_in=LEAST - 1), actor=ACTOR)
    message = refused.value.message
    assert f"activating in {LEAST - 1} s, too soon" in message
    assert "TOKENWARD_JWKS_MAX_AGE" in message
    assert "TOKENWARD_CACHE_REFRESH_SECONDS" in message
    assert f"the earliest safe activation is in {LEAST} s" in message
    assert await tw.admin.list_keys() == before  # nothing was created


async def test_the_earliest_safe_activation_is_accepted(tw: InProcess) -> None:
    key = await tw.admin.rotate_key(KeyRotate(activate_in=LEAST), actor=ACTOR)
    assert key.state == "next"
    assert key.activates_at is not None
    assert int(key.activates_at.timestamp()) == int(tw.clock()) + LEAST


async def test_forced_activation_signs_at_once_and_is_audited(tw: InProcess) -> None:
    key = await tw.admin.rotate_key(KeyRotate(activate_in=0, force=True), actor=ACTOR)
    assert key.state == "active"
    (event,) = await tw.admin.list_audit(AuditQuery(event="key.rotated"))
    assert event.data["forced"] is True
    assert event.data["kid"] == key.kid


async def test_a_short_default_delay_is_refused_naming_the_setting(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, key_publication_delay=60, jwks_max_age=300)
    async with in_process(settings, loops=False) as tw:
        with pytest.raises(Invalid, match="TOKENWARD_KEY_PUBLICATION_DELAY is 60 s, too soon"):
            await tw.admin.rotate_key(KeyRotate(), actor=ACTOR)


async def test_the_cli_refuses_then_forces(tw: InProcess, tmp_path: Path) -> None:
    settings = tw.settings
    env = TokenwardEnv(
        home=tmp_path,
        database_url=settings.database_url,
        extra={
            **settings_environ(settings),
            "TOKENWARD_ISSUER": settings.issuer,
            "TOKENWARD_JWKS_MAX_AGE": str(MAX_AGE),
            "TOKENWARD_CACHE_REFRESH_SECONDS": str(REFRESH),
        },
    )
    refused = env.cli("keys", "rotate", "--activate-in", "0", check=False)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: activating in 0 s, too soon")
    assert f"the earliest safe activation is in {LEAST} s" in refused.stderr
    assert refused.stderr.count("\n") == 1  # one line
    forced = env.cli_json("keys", "rotate", "--activate-in", "0", "--force")
    assert forced["state"] == "active"


async def test_emergency_rotation_then_delete_the_compromised_key(tw: InProcess) -> None:
    """The key-compromise procedure (docs/consistency.md): a forced rotation, then the old key
    leaves the JWKS although tokens it signed have not expired."""
    (old,) = await tw.admin.list_keys()
    with pytest.raises(Conflict, match="is signing \\(active\\): retire it first"):
        await tw.admin.delete_key(old.kid, actor=ACTOR)
    new = await tw.admin.rotate_key(KeyRotate(activate_in=0, force=True), actor=ACTOR)
    with pytest.raises(Conflict, match="may be valid until"):
        await tw.admin.delete_key(old.kid, actor=ACTOR)
    await tw.admin.delete_key(old.kid, force=True, actor=ACTOR)
    await tw.sync()
    assert await tw.kids() == {new.kid}
    (event,) = await tw.admin.list_audit(AuditQuery(event="key.deleted"))
    assert (event.data["kid"], event.data["forced"]) == (old.kid, True)
    with pytest.raises(NotFound):
        await tw.admin.delete_key(old.kid, force=True, actor=ACTOR)


async def test_a_next_key_or_an_expired_retired_key_needs_no_force(tw: InProcess) -> None:
    (first,) = await tw.admin.list_keys()
    upcoming = await tw.admin.rotate_key(KeyRotate(activate_in=LEAST), actor=ACTOR)
    await tw.admin.delete_key(upcoming.kid, actor=ACTOR)  # never signed
    await tw.admin.rotate_key(KeyRotate(activate_in=LEAST), actor=ACTOR)
    tw.clock.advance(LEAST + tw.settings.max_token_ttl + SKEW)
    await tw.admin.delete_key(first.kid, actor=ACTOR)  # every token expired
    assert first.kid not in {k.kid for k in await tw.admin.list_keys()}
