"""AsyncTokenManager (tasks, on asyncio and trio) against a real token endpoint on loopback."""

from __future__ import annotations

import anyio
import pytest

from tests.client.conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    AsyncManagerFactory,
    AuthState,
    Failure,
    Sleeps,
    Spawned,
)
from tests.support.clock import FakeClock
from tokenward.client import (
    AsyncTokenManager,
    Token,
    TokenEndpointUnavailable,
    TokenPolicy,
    TokenRequestError,
)

pytestmark = pytest.mark.anyio


async def test_token_is_cached_per_key(
    auth: AuthState, make_async_manager: AsyncManagerFactory
) -> None:
    async with make_async_manager() as manager:
        first = await manager.get_token()
        assert await manager.get_token() is first
        other = await manager.get_token(resource="https://api.example/")

    assert other.access_token != first.access_token
    assert auth.token_requests == 2
    assert auth.discovery_calls == ["/.well-known/oauth-authorization-server"]


async def test_200_tasks_on_a_cold_cache_make_one_token_request(
    auth: AuthState, make_async_manager: AsyncManagerFactory
) -> None:
    auth.delay = 0.3
    tokens: list[Token] = []

    async def call(manager: AsyncTokenManager) -> None:
        tokens.append(await manager.get_token())

    async with make_async_manager() as manager, anyio.create_task_group() as tasks:
        for _ in range(200):
            tasks.start_soon(call, manager)

    assert auth.token_requests == 1
    assert len(tokens) == 200
    assert {token.access_token for token in tokens} == {"tok-1"}


async def test_a_failure_reaches_every_waiting_task_and_is_not_cached(
    auth: AuthState, make_async_manager: AsyncManagerFactory
) -> None:
    auth.delay = 0.3
    auth.failures = [Failure(400, "invalid_scope", "no such scope")]
    errors: list[TokenRequestError] = []

    async def call(manager: AsyncTokenManager) -> None:
        with pytest.raises(TokenRequestError) as raised:
            await manager.get_token()
        errors.append(raised.value)

    async with make_async_manager() as manager:
        async with anyio.create_task_group() as tasks:
            for _ in range(20):
                tasks.start_soon(call, manager)
        assert auth.token_requests == 1
        assert {error.error for error in errors} == {"invalid_scope"}

        auth.delay = 0
        assert (await manager.get_token()).access_token == "tok-1"


async def test_renews_ahead_while_callers_keep_the_valid_token(
    auth: AuthState, make_async_manager: AsyncManagerFactory, clock: FakeClock, spawned: Spawned
) -> None:
    async with make_async_manager() as manager:
        first = await manager.get_token()
        clock.advance(first.refresh_at - first.obtained_at)
        assert await manager.get_token() is first
        assert await manager.get_token() is first
        assert len(spawned.pending) == 1
        assert auth.token_requests == 1

        await spawned.run_async()
        renewed = await manager.get_token()

    assert renewed.access_token == "tok-2"


async def test_default_renewal_runs_as_a_background_task(auth: AuthState, clock: FakeClock) -> None:
    async with AsyncTokenManager(
        issuer=auth.issuer, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, clock=clock
    ) as manager:
        first = await manager.get_token()
        clock.advance(first.refresh_at - first.obtained_at + 1)
        assert await manager.get_token() is first
        with anyio.fail_after(10):
            while (token := await manager.get_token()) is first:
                await anyio.sleep(0.01)

    assert token.access_token == "tok-2"


async def test_renewal_can_run_in_the_callers_task_group(auth: AuthState, clock: FakeClock) -> None:
    async with (
        anyio.create_task_group() as tasks,
        AsyncTokenManager(
            issuer=auth.issuer,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            clock=clock,
            spawn=tasks.start_soon,
        ) as manager,
    ):
        first = await manager.get_token()
        clock.advance(first.refresh_at - first.obtained_at)
        assert await manager.get_token() is first
        with anyio.fail_after(10):
            while (token := await manager.get_token()) is first:
                await anyio.sleep(0.01)

    assert token.access_token == "tok-2"


async def test_backoff_uses_the_async_sleep(
    auth: AuthState, make_async_manager: AsyncManagerFactory, sleeps: Sleeps
) -> None:
    auth.failures = [Failure(502), Failure(500)]
    async with make_async_manager() as manager:
        token = await manager.get_token()

    assert token.access_token == "tok-1"
    assert sleeps.delays == [0.375, 0.75]


async def test_cached_token_survives_a_token_endpoint_outage(
    auth: AuthState, make_async_manager: AsyncManagerFactory, clock: FakeClock, spawned: Spawned
) -> None:
    async with make_async_manager() as manager:
        first = await manager.get_token()
        auth.fail_always = Failure(503)
        clock.advance(first.refresh_at - first.obtained_at)
        assert await manager.get_token() is first
        await spawned.run_async()
        assert auth.token_requests == 1 + TokenPolicy().max_attempts
        assert await manager.get_token() is first

        clock.advance(first.expires_at - clock.now)
        with pytest.raises(TokenEndpointUnavailable):
            await manager.get_token()


async def test_a_cancelled_fetch_is_taken_over_by_a_waiting_task(
    auth: AuthState, make_async_manager: AsyncManagerFactory
) -> None:
    auth.delay = 0.5
    leader = anyio.CancelScope()
    got: list[Token] = []

    async def lead(manager: AsyncTokenManager) -> None:
        with leader:
            await manager.get_token()

    async def follow(manager: AsyncTokenManager) -> None:
        got.append(await manager.get_token())

    with anyio.fail_after(10):
        async with make_async_manager() as manager, anyio.create_task_group() as tasks:
            tasks.start_soon(lead, manager)
            while auth.token_requests == 0:  # the leader's request has reached the server
                await anyio.sleep(0.01)
            tasks.start_soon(follow, manager)
            await anyio.wait_all_tasks_blocked()  # the follower waits on the leader's flight
            leader.cancel()

    assert leader.cancelled_caught
    assert len(got) == 1
    assert auth.token_requests == 2
