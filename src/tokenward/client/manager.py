"""Token managers: a cached, renewed-ahead, single-flight token for threads or tasks.

`TokenManager` serves threads (a `threading.Lock` guards the cache, never held across I/O);
`AsyncTokenManager` serves the tasks of one event loop, asyncio or trio (cache changes happen
between awaits, so no lock is needed). Both run the same sans-IO flow (`_flow.py`) and the
same cache state machine (`_cache.py`); only waiting and background work differ.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from functools import partial
from types import TracebackType
from typing import Any, Generic, Self

import anyio

from tokenward.client._assertion import ClientKey
from tokenward.client._cache import Action, F, Flight, Slot, Token
from tokenward.client._config import CacheKey, ClientConfig, TokenPolicy
from tokenward.client._flow import Acquirer, drive_async, drive_sync
from tokenward.client._transport import (
    AsyncHTTPClient,
    AsyncHttpxTransport,
    HttpxTransport,
    SyncHTTPClient,
)

__all__ = ["AsyncTokenManager", "TokenManager"]

logger = logging.getLogger("tokenward.client")

_system_random = secrets.SystemRandom()
_background_tasks: set[asyncio.Future[None]] = set()


def start_daemon_thread(renewal: Callable[[], None]) -> None:
    """The default way `TokenManager` renews ahead of expiry: a short-lived daemon thread."""
    threading.Thread(target=renewal, name="tokenward-token-renewal", daemon=True).start()


def spawn_detached(renewal: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """The default way `AsyncTokenManager` renews ahead of expiry: a task of the running loop
    that no caller awaits (an asyncio task, or a trio system task)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # not asyncio: anyio's other backend
        import trio

        trio.lowlevel.spawn_system_task(renewal)
        return
    task = asyncio.ensure_future(renewal())
    _background_tasks.add(task)  # keep a reference until it finishes
    task.add_done_callback(_background_tasks.discard)


class _Manager(Generic[F]):
    """What both managers share: configuration, the acquisition flow and the cache."""

    def __init__(
        self,
        *,
        issuer: str | None,
        token_endpoint: str | None,
        client_id: str,
        client_secret: str | None,
        client_key: ClientKey | None,
        scopes: Sequence[str],
        resource: str | None,
        auth_method: str | None,
        policy: TokenPolicy,
        clock: Callable[[], float],
        random: Callable[[], float],
    ) -> None:
        self._config = ClientConfig.build(
            issuer=issuer,
            token_endpoint=token_endpoint,
            client_id=client_id,
            client_secret=client_secret,
            client_key=client_key,
            scopes=scopes,
            resource=resource,
            auth_method=auth_method,
        )
        self._policy, self._clock = policy, clock
        self._acquirer = Acquirer(self._config, policy, clock=clock, random=random)
        self._slots: dict[CacheKey, Slot[F]] = {}

    def _slot(self, key: CacheKey) -> Slot[F]:
        return self._slots.setdefault(key, Slot())

    def _invalidate(self, token: Token) -> None:
        if any(slot.invalidate(token) for slot in self._slots.values()):
            logger.debug("cached token dropped after the API rejected it")

    def _after_failure(self) -> float:
        """When a failed background renewal may be tried again."""
        return self._clock() + self._policy.backoff_max

    def __repr__(self) -> str:
        config = self._config
        where = (
            f"issuer={config.issuer!r}"
            if config.issuer
            else f"token_endpoint={config.token_endpoint!r}"
        )
        return (
            f"{type(self).__name__}({where}, client_id={config.client_id!r}, "
            f"scopes={config.scopes!r}, resource={config.resource!r}, "
            f"auth_method={config.auth_method!r})"
        )


def _result(flight: Flight) -> Token | None:
    """The flight's token; its error raised; None if it was abandoned (try again)."""
    if flight.error is not None:
        raise flight.error
    return flight.token


@dataclass(eq=False)
class _ThreadFlight(Flight):
    done: threading.Event = field(default_factory=threading.Event)


class TokenManager(_Manager[_ThreadFlight]):
    """Access tokens for threads: cached per (issuer, client, scopes, resource), renewed in the
    background before they expire, fetched by one thread while the others wait.

    ```python
    with TokenManager(issuer="https://auth.example", client_id="c1", client_secret=s,
                      scopes=["read"]) as tokens:
        token = tokens.get_token()
    ```

    The client authenticates with `client_secret` (`auth_method` `client_secret_basic`, the
    default, `client_secret_post` or `client_secret_jwt`) or with `client_key`, a `ClientKey`
    (`private_key_jwt`, the default when a key is given).
    """

    def __init__(
        self,
        *,
        issuer: str | None = None,
        token_endpoint: str | None = None,
        client_id: str,
        client_secret: str | None = None,
        client_key: ClientKey | None = None,
        scopes: Sequence[str] = (),
        resource: str | None = None,
        auth_method: str | None = None,
        policy: TokenPolicy = TokenPolicy(),  # noqa: B008 (frozen, shared safely)
        http_client: SyncHTTPClient | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        random: Callable[[], float] = _system_random.random,
        spawn: Callable[[Callable[[], None]], object] = start_daemon_thread,
    ) -> None:
        super().__init__(
            issuer=issuer,
            token_endpoint=token_endpoint,
            client_id=client_id,
            client_secret=client_secret,
            client_key=client_key,
            scopes=scopes,
            resource=resource,
            auth_method=auth_method,
            policy=policy,
            clock=clock,
            random=random,
        )
        self._transport = HttpxTransport(http_client, timeout=policy.timeout)
        self._sleep, self._spawn = sleep, spawn
        self._lock = threading.Lock()

    def get_token(
        self, *, scopes: Sequence[str] | None = None, resource: str | None = None
    ) -> Token:
        """A valid token for `scopes` and `resource` (default: the configured ones)."""
        key = self._config.key(scopes, resource)
        while True:
            with self._lock:
                slot = self._slot(key)
                action, token = slot.plan(self._clock()), slot.token
                if action is Action.USE:
                    assert token is not None
                    return token
                flight = slot.flight if action is Action.WAIT else slot.take_off(_ThreadFlight())
            assert flight is not None
            if action is Action.RENEW_AHEAD:
                assert token is not None
                self._start_renewal(slot, key, flight)
                return token
            if action is Action.FETCH:
                self._fly(slot, key, flight)
            flight.done.wait()
            if (fresh := _result(flight)) is not None:
                return fresh

    def invalidate(self, token: Token) -> None:
        """Forget `token` if it is still the cached one, e.g. after an API said `invalid_token`."""
        with self._lock:
            self._invalidate(token)

    def _fly(self, slot: Slot[_ThreadFlight], key: CacheKey, flight: _ThreadFlight) -> None:
        try:
            token = drive_sync(self._acquirer.acquire(key), self._transport, self._sleep)
        except Exception as exc:
            with self._lock:
                slot.crash(flight, exc, retry_at=self._after_failure())
        except BaseException:
            with self._lock:
                slot.abandon(flight)
            raise
        else:
            with self._lock:
                slot.land(flight, token)
        finally:
            flight.done.set()

    def _start_renewal(
        self, slot: Slot[_ThreadFlight], key: CacheKey, flight: _ThreadFlight
    ) -> None:
        try:
            self._spawn(partial(self._renew_in_background, slot, key, flight))
        except Exception:  # e.g. no new threads at interpreter shutdown: renew later
            logger.warning("could not start a background token renewal", exc_info=True)
            with self._lock:
                slot.abandon(flight)
            flight.done.set()

    def _renew_in_background(
        self, slot: Slot[_ThreadFlight], key: CacheKey, flight: _ThreadFlight
    ) -> None:
        self._fly(slot, key, flight)
        if flight.error is not None:
            logger.warning(
                "background token renewal failed, keeping the current token: %s", flight.error
            )

    def close(self) -> None:
        """Close the HTTP client this manager created (not one it was given)."""
        self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(eq=False)
class _TaskFlight(Flight):
    done: anyio.Event = field(default_factory=anyio.Event)


class AsyncTokenManager(_Manager[_TaskFlight]):
    """Access tokens for the tasks of one event loop (asyncio or trio); see `TokenManager`.

    `spawn` runs renewals ahead of expiry; pass `task_group.start_soon` to keep them inside
    your own task group instead of detached tasks.
    """

    def __init__(
        self,
        *,
        issuer: str | None = None,
        token_endpoint: str | None = None,
        client_id: str,
        client_secret: str | None = None,
        client_key: ClientKey | None = None,
        scopes: Sequence[str] = (),
        resource: str | None = None,
        auth_method: str | None = None,
        policy: TokenPolicy = TokenPolicy(),  # noqa: B008 (frozen, shared safely)
        http_client: AsyncHTTPClient | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        random: Callable[[], float] = _system_random.random,
        spawn: Callable[[Callable[[], Coroutine[Any, Any, None]]], object] = spawn_detached,
    ) -> None:
        super().__init__(
            issuer=issuer,
            token_endpoint=token_endpoint,
            client_id=client_id,
            client_secret=client_secret,
            client_key=client_key,
            scopes=scopes,
            resource=resource,
            auth_method=auth_method,
            policy=policy,
            clock=clock,
            random=random,
        )
        self._transport = AsyncHttpxTransport(http_client, timeout=policy.timeout)
        self._sleep, self._spawn = sleep, spawn

    async def get_token(
        self, *, scopes: Sequence[str] | None = None, resource: str | None = None
    ) -> Token:
        """A valid token for `scopes` and `resource` (default: the configured ones)."""
        key = self._config.key(scopes, resource)
        while True:
            slot = self._slot(key)
            action, token = slot.plan(self._clock()), slot.token
            if action is Action.USE:
                assert token is not None
                return token
            flight = slot.flight if action is Action.WAIT else slot.take_off(_TaskFlight())
            assert flight is not None
            if action is Action.RENEW_AHEAD:
                assert token is not None
                self._start_renewal(slot, key, flight)
                return token
            if action is Action.FETCH:
                await self._fly(slot, key, flight)
            await flight.done.wait()
            if (fresh := _result(flight)) is not None:
                return fresh

    def invalidate(self, token: Token) -> None:
        """Forget `token` if it is still the cached one, e.g. after an API said `invalid_token`."""
        self._invalidate(token)

    async def _fly(self, slot: Slot[_TaskFlight], key: CacheKey, flight: _TaskFlight) -> None:
        try:
            token = await drive_async(self._acquirer.acquire(key), self._transport, self._sleep)
        except Exception as exc:
            slot.crash(flight, exc, retry_at=self._after_failure())
        except BaseException:  # cancelled: a waiting task takes over
            slot.abandon(flight)
            raise
        else:
            slot.land(flight, token)
        finally:
            flight.done.set()

    def _start_renewal(self, slot: Slot[_TaskFlight], key: CacheKey, flight: _TaskFlight) -> None:
        try:
            self._spawn(partial(self._renew_in_background, slot, key, flight))
        except Exception:  # e.g. the task group given as `spawn` is closed: renew later
            logger.warning("could not start a background token renewal", exc_info=True)
            slot.abandon(flight)
            flight.done.set()

    async def _renew_in_background(
        self, slot: Slot[_TaskFlight], key: CacheKey, flight: _TaskFlight
    ) -> None:
        await self._fly(slot, key, flight)
        if flight.error is not None:
            logger.warning(
                "background token renewal failed, keeping the current token: %s", flight.error
            )

    async def aclose(self) -> None:
        """Close the HTTP client this manager created (not one it was given)."""
        await self._transport.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
