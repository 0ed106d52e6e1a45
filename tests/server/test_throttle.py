"""TE-26: brute-force protection of client credentials (RFC 6749 §2.3.1, §10.10).

After ``failed_auth_limit`` failed authentications of one client id from one source address
within a minute, that address gets 429 ``slow_down`` with ``Retry-After`` for that client id -
before comparing any secret, so the right secret from that address is refused too and unknown
ids are treated alike (no enumeration). Other clients are unaffected, and the throttling is
logged once (the alert). The same client from another address is not: test_shared_counts.py.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.server.harness import C1, C2, DISABLED, INVALID_CLIENT, InProcess

pytestmark = pytest.mark.anyio

LIMIT = 5
SLOW_DOWN = {"error": "slow_down", "error_description": "too many failed attempts, retry later"}


@pytest.fixture(scope="module")
def tw_settings_overrides() -> dict[str, Any]:
    return {"failed_auth_limit": LIMIT}


async def test_wrong_secrets_throttle_that_client_only(
    tw: InProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tokenward.throttle")
    for _ in range(LIMIT):
        response = await tw.token(auth=(C1.client_id, "wrong"))
        assert response.status_code == 401
        assert response.json() == INVALID_CLIENT
    for auth in [(C1.client_id, "wrong"), (C1.client_id, C1.secret)]:
        throttled = await tw.token(auth=auth)
        assert throttled.status_code == 429
        assert throttled.json() == SLOW_DOWN
        assert 0 < int(throttled.headers["retry-after"]) <= 2 * 60 + 1
        assert throttled.headers["cache-control"] == "no-store"
    # Through the body too: the counter is per client id, not per method.
    body = await tw.token({"client_id": C1.client_id, "client_secret": C1.secret})
    assert body.status_code == 429
    # c2 is unaffected.
    other = await tw.token(auth=(C2.client_id, C2.secret))
    assert other.status_code == 200
    alerts = [r for r in caplog.records if r.getMessage() == "client authentication throttled"]
    assert len(alerts) == 1
    assert getattr(alerts[0], "client_id", None) == C1.client_id


async def test_unknown_and_disabled_ids_are_throttled_alike(tw: InProcess) -> None:
    for client_id in ("nosuch", DISABLED.client_id):
        statuses = [(await tw.token(auth=(client_id, "x"))).status_code for _ in range(LIMIT + 1)]
        assert statuses == [401] * LIMIT + [429]


async def test_other_errors_do_not_count(tw: InProcess) -> None:
    """Only failed authentications are guesses of a secret; 400s are not."""
    for _ in range(LIMIT + 2):
        wrong_grant = await tw.token({"grant_type": "password"}, auth=(C2.client_id, "x"))
        assert wrong_grant.json()["error"] == "unsupported_grant_type"
        bad_scope = await tw.token({"scope": "admin"}, auth=(C2.client_id, C2.secret))
        assert bad_scope.json()["error"] == "invalid_scope"
    assert (await tw.token(auth=(C2.client_id, C2.secret))).status_code == 200
