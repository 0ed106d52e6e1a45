"""Per-client issuance quotas (``quotas.py``), in-process with the fake clock: fixed, aligned
windows of a minute and an hour, ``429 slow_down`` with ``Retry-After`` until the window ends,
both quotas at once, and a change through the admin layer. The same against a real server:
tests/e2e/test_client_auth_hardening.py::test_a_quota_answers_429_with_retry_after_and_is_audited.
"""

from __future__ import annotations

import pytest

from tests.server.harness import ACTOR, InProcess
from tokenward.server.admin.schemas import ClientCreate, ClientUpdate

pytestmark = pytest.mark.anyio

QUOTA = {
    "error": "slow_down",
    "error_description": "token quota exceeded; reuse the tokens already issued",
}


async def quota_client(tw: InProcess, name: str, **quotas: int) -> tuple[str, str]:
    spec = ClientCreate(
        name=name, client_id=name, scopes=["read"], secret=f"{name}-secret", **quotas
    )
    await tw.admin.create_client(spec, actor=ACTOR)
    await tw.sync()
    return name, f"{name}-secret"


def to_next(tw: InProcess, period: int, offset: float = 0.0) -> None:
    """Move the fake clock to ``offset`` seconds into the next aligned window of ``period``."""
    now = tw.clock()
    tw.clock.advance(period - now % period + offset)


async def status(tw: InProcess, auth: tuple[str, str]) -> int:
    return (await tw.token(auth=auth)).status_code


async def test_an_hourly_quota_holds_across_minutes(tw: InProcess) -> None:
    auth = await quota_client(tw, "hourly", quota_per_hour=3)
    to_next(tw, 3600, offset=100)
    for _ in range(3):
        assert await status(tw, auth) == 200
        tw.clock.advance(61)  # a new minute each time: only the hour counts
    refused = await tw.token(auth=auth)
    assert refused.status_code == 429
    assert refused.json() == QUOTA
    # 100 + 3 * 61 s into the hour: the window ends in 3600 - 283 s.
    assert int(refused.headers["retry-after"]) == 3600 - 283
    tw.clock.advance(3600 - 283)
    assert await status(tw, auth) == 200


async def test_minute_and_hour_quotas_together(tw: InProcess) -> None:
    auth = await quota_client(tw, "both", quota_per_minute=2, quota_per_hour=3)
    to_next(tw, 3600, offset=10)
    assert [await status(tw, auth) for _ in range(3)] == [200, 200, 429]
    refused = await tw.token(auth=auth)
    assert int(refused.headers["retry-after"]) == 50  # the minute ends first
    tw.clock.advance(50)
    assert [await status(tw, auth) for _ in range(2)] == [200, 429]  # now the hour is full
    refused = await tw.token(auth=auth)
    assert int(refused.headers["retry-after"]) == 3600 - 60


async def test_a_refusal_is_not_counted_and_quotas_can_be_lifted(tw: InProcess) -> None:
    auth = await quota_client(tw, "lifted", quota_per_minute=1)
    to_next(tw, 60, offset=1)
    assert [await status(tw, auth) for _ in range(4)] == [200, 429, 429, 429]
    tw.clock.advance(60)
    assert await status(tw, auth) == 200  # refusals did not fill the next minute
    await tw.admin.update_client("lifted", ClientUpdate(quota_per_minute=None), actor=ACTOR)
    await tw.sync()
    assert [await status(tw, auth) for _ in range(3)] == [200, 200, 200]
