"""Getting one token, as a sans-IO flow: discovery, the token request, retries with backoff.

The flow is a generator that yields what it needs done (`HttpRequest` to send, `Sleep` to
wait) and receives the outcome; `drive_sync` and `drive_async` run it with a transport. So
threads and tasks share every rule, and the rules can be read without any HTTP library.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Protocol, TypeVar

from tokenward.client._cache import Token
from tokenward.client._config import CacheKey, ClientConfig, TokenPolicy
from tokenward.client._wire import (
    HttpRequest,
    Reply,
    TransportFailure,
    is_transient,
    metadata_urls,
    read_token_response,
    retry_after,
    token_endpoint_from_metadata,
    token_request,
)
from tokenward.client.errors import DiscoveryError

logger = logging.getLogger("tokenward.client")

T = TypeVar("T")


@dataclass(frozen=True)
class Sleep:
    seconds: float


Step = HttpRequest | Sleep
Flow = Generator[Step, Reply | None, T]


class SyncTransport(Protocol):
    def send(self, request: HttpRequest) -> Reply: ...


class AsyncTransport(Protocol):
    async def send(self, request: HttpRequest) -> Reply: ...


class Acquirer:
    """Knows how to turn a cache key into a token; remembers the discovered endpoint."""

    def __init__(
        self,
        config: ClientConfig,
        policy: TokenPolicy,
        *,
        clock: Callable[[], float],
        random: Callable[[], float],
    ) -> None:
        self._config, self._policy = config, policy
        self._clock, self._random = clock, random
        self._token_endpoint = config.token_endpoint

    def acquire(self, key: CacheKey) -> Flow[Token]:
        endpoint = self._token_endpoint or (yield from self._discover())
        self._token_endpoint = endpoint
        config = self._config
        sent_at, reply = yield from self._exchange(
            lambda: token_request(config, endpoint, key), "token request"
        )
        granted = read_token_response(reply, secret=self._config.client_secret.reveal())
        lifetime = granted.expires_in or self._policy.default_lifetime
        logger.debug("token obtained for %s, lifetime %.0fs", _describe(key), lifetime)
        return Token(
            access_token=granted.access_token,
            token_type=granted.token_type,
            expires_in=granted.expires_in,
            scope=granted.scope,
            obtained_at=sent_at,
            refresh_at=self._policy.refresh_at(sent_at, lifetime, self._random()),
            expires_at=sent_at + lifetime,
        )

    def _discover(self) -> Flow[str]:
        issuer = self._config.issuer
        assert issuer is not None, "ClientConfig.build requires an issuer or a token_endpoint"
        for url in metadata_urls(issuer):
            request = HttpRequest("GET", url, _ACCEPT_JSON)
            _, reply = yield from self._exchange(functools.partial(_same, request), "discovery")
            if isinstance(reply, TransportFailure) or is_transient(reply):
                raise DiscoveryError(f"authorization server metadata unavailable: {_why(reply)}")
            if reply.status == 200:
                return token_endpoint_from_metadata(reply, issuer)
        raise DiscoveryError(f"no authorization server metadata found for issuer {issuer!r}")

    def _exchange(self, make: Callable[[], HttpRequest], what: str) -> Flow[tuple[float, Reply]]:
        """Send, retrying transient failures with backoff; the last reply either way. Each
        attempt is a new request (a JWT assertion's ``jti`` is single-use)."""
        for attempt in range(1, self._policy.max_attempts + 1):
            sent_at = self._clock()
            request = make()
            reply = yield request
            assert reply is not None
            if not is_transient(reply) or attempt == self._policy.max_attempts:
                return sent_at, reply
            delay = self._policy.backoff(attempt, self._random(), retry_after(reply))
            logger.warning(
                "%s to %s failed (%s), attempt %d of %d, retrying in %.2fs",
                what, request.url, _why(reply), attempt, self._policy.max_attempts, delay,
            )  # fmt: skip
            yield Sleep(delay)
        raise AssertionError("unreachable: max_attempts >= 1")


_ACCEPT_JSON = {"Accept": "application/json"}


def _same(request: HttpRequest) -> HttpRequest:
    return request


def _why(reply: Reply) -> str:
    return reply.reason if isinstance(reply, TransportFailure) else f"HTTP {reply.status}"


def _describe(key: CacheKey) -> str:
    return f"client {key.client_id!r} scopes {' '.join(key.scopes) or '-'} resource {key.resource}"


def drive_sync(flow: Flow[T], transport: SyncTransport, sleep: Callable[[float], None]) -> T:
    reply: Reply | None = None
    try:
        while True:
            step = flow.send(reply)
            if isinstance(step, Sleep):
                sleep(step.seconds)
                reply = None
            else:
                reply = transport.send(step)
    except StopIteration as done:
        result: T = done.value
        return result


async def drive_async(
    flow: Flow[T], transport: AsyncTransport, sleep: Callable[[float], Awaitable[None]]
) -> T:
    reply: Reply | None = None
    try:
        while True:
            step = flow.send(reply)
            if isinstance(step, Sleep):
                await sleep(step.seconds)
                reply = None
            else:
                reply = await transport.send(step)
    except StopIteration as done:
        result: T = done.value
        return result
