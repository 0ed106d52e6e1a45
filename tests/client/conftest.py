"""A real OAuth token endpoint, discovery and a protected API on loopback, for the client.

One uvicorn server per session (tests/support/live.py); each test gets a fresh `AuthState`
that counts requests, can be told to fail, and decides which tokens the API accepts.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote_plus

import anyio
import anyio.lowlevel
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.clock import FakeClock
from tests.support.live import LiveServer, free_port
from tokenward.client import AsyncTokenManager, TokenManager

CLIENT_ID = "svc-reporting"
CLIENT_SECRET = "Sx9-topsecret-value-4f1c"
ODD_ID, ODD_SECRET = "a:b", " %&+"  # RFC 6749 §2.3.1: form-urlencoded before base64


@dataclass
class TokenCall:
    """What the token endpoint received."""

    client_id: str
    client_secret: str
    authorization: str | None
    form: dict[str, list[str]]


@dataclass
class Failure:
    """The answer to give to the next token request instead of a token."""

    status: int
    error: str | None = None
    description: str | None = None
    retry_after: str | None = None


@dataclass
class AuthState:
    issuer: str
    clients: dict[str, str] = field(
        default_factory=lambda: {CLIENT_ID: CLIENT_SECRET, ODD_ID: ODD_SECRET}
    )
    # Token endpoint behaviour
    token_calls: list[TokenCall] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    fail_always: Failure | None = None
    expires_in: object = 3600
    token_type: str = "Bearer"
    delay: float = 0.0
    token_shape: Callable[[int], str] = lambda n: f"tok-{n}"
    issued: list[str] = field(default_factory=list)
    # Discovery behaviour
    discovery_calls: list[str] = field(default_factory=list)
    oauth_metadata: bool = True
    metadata_issuer: str | None = None  # None: the real issuer
    # API behaviour: tokens it refuses with 401 invalid_token / 403 insufficient_scope
    rejected: set[str] = field(default_factory=set)
    reject_all: bool = False
    forbidden: set[str] = field(default_factory=set)
    api_calls: list[tuple[str | None, bytes]] = field(default_factory=list)

    @property
    def token_requests(self) -> int:
        return len(self.token_calls)


class AuthServer:
    """The session's server; `state` is replaced for every test."""

    def __init__(self) -> None:
        self.live = LiveServer(self._app())
        self.url = self.live.url
        self.state = AuthState(issuer=self.url)

    def reset(self) -> AuthState:
        self.state = AuthState(issuer=self.url)
        return self.state

    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/oauth-authorization-server", self._oauth_metadata),
                Route("/.well-known/oauth-authorization-server/{tenant}", self._oauth_metadata),
                Route("/.well-known/openid-configuration", self._openid_metadata),
                Route("/oauth/token", self._token, methods=["POST"]),
                Route("/api/data", self._api, methods=["GET", "POST"]),
            ]
        )

    async def _oauth_metadata(self, request: Request) -> Response:
        self.state.discovery_calls.append(request.url.path)
        if not self.state.oauth_metadata:
            return JSONResponse({"detail": "not found"}, status_code=404)
        tenant = request.path_params.get("tenant")
        return self._metadata(f"{self.url}/{tenant}" if tenant else self.url)

    async def _openid_metadata(self, request: Request) -> Response:
        self.state.discovery_calls.append(request.url.path)
        return self._metadata(self.url)

    def _metadata(self, issuer: str) -> Response:
        return JSONResponse(
            {
                "issuer": self.state.metadata_issuer or issuer,
                "token_endpoint": f"{self.url}/oauth/token",
                "grant_types_supported": ["client_credentials"],
            }
        )

    async def _token(self, request: Request) -> Response:
        state = self.state
        form = parse_qs(
            (await request.body()).decode(), keep_blank_values=True, strict_parsing=False
        )
        client_id, secret = _credentials(request.headers.get("authorization"), form)
        state.token_calls.append(
            TokenCall(client_id, secret, request.headers.get("authorization"), form)
        )
        if state.delay:
            await anyio.sleep(state.delay)
        failure = state.failures.pop(0) if state.failures else state.fail_always
        if failure is not None:
            return _failure(failure)
        if state.clients.get(client_id) != secret:
            return _failure(Failure(401, "invalid_client", "client authentication failed"))
        state.issued.append(token := state.token_shape(len(state.issued) + 1))
        body: dict[str, Any] = {"access_token": token, "token_type": state.token_type}
        if state.expires_in is not None:
            body["expires_in"] = state.expires_in
        if "scope" in form:
            body["scope"] = form["scope"][0]
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def _api(self, request: Request) -> Response:
        state = self.state
        authorization = request.headers.get("authorization")
        state.api_calls.append((authorization, await request.body()))
        token = (authorization or "").removeprefix("Bearer ")
        if state.reject_all or token in state.rejected or token not in state.issued:
            challenge = 'Bearer realm="api", error="invalid_token", error_description="expired"'
            return JSONResponse({"error": "invalid_token"}, 401, {"WWW-Authenticate": challenge})
        if token in state.forbidden:
            challenge = 'Bearer error="insufficient_scope", scope="admin"'
            return JSONResponse(
                {"error": "insufficient_scope"}, 403, {"WWW-Authenticate": challenge}
            )
        return JSONResponse({"token": token, "body": (await request.body()).decode()})


def _credentials(authorization: str | None, form: dict[str, list[str]]) -> tuple[str, str]:
    """Decode client credentials the way RFC 6749 §2.3.1 says a server must."""
    if authorization and authorization.startswith("Basic "):
        pair = base64.b64decode(authorization.removeprefix("Basic ")).decode()
        user, _, password = pair.partition(":")
        return unquote_plus(user), unquote_plus(password)
    return form.get("client_id", [""])[0], form.get("client_secret", [""])[0]


def _failure(failure: Failure) -> Response:
    headers = {"Retry-After": failure.retry_after} if failure.retry_after else {}
    if failure.error is None:
        return Response("upstream trouble", failure.status, headers, media_type="text/plain")
    body = {"error": failure.error, "error_description": failure.description}
    return JSONResponse(body, failure.status, headers)


@pytest.fixture(scope="session")
def _auth_server() -> Iterator[AuthServer]:
    server = AuthServer()
    server.live.start()
    try:
        yield server
    finally:
        server.live.stop()


@pytest.fixture
def auth(_auth_server: AuthServer) -> AuthState:
    """This test's view of the authorization server + API (fresh counters and behaviour)."""
    return _auth_server.reset()


@pytest.fixture
def dead_url() -> str:
    """A loopback URL where nothing listens: every request is a network error."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


class Sleeps:
    """Records the backoff delays instead of sleeping them."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        await anyio.lowlevel.checkpoint()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


class Spawned:
    """Collects background renewals so a test runs them exactly when it wants."""

    def __init__(self) -> None:
        self.pending: list[Callable[[], Any]] = []

    def __call__(self, renewal: Callable[[], Any]) -> None:
        self.pending.append(renewal)

    def run_sync(self) -> None:
        while self.pending:
            self.pending.pop(0)()

    async def run_async(self) -> None:
        while self.pending:
            await self.pending.pop(0)()


@pytest.fixture
def spawned() -> Spawned:
    return Spawned()


ManagerFactory = Callable[..., TokenManager]
AsyncManagerFactory = Callable[..., AsyncTokenManager]


def _options(auth: AuthState, clock: FakeClock, overrides: dict[str, Any]) -> dict[str, Any]:
    """Defaults for a manager under test: the loopback server, fake time, no jitter."""
    return {
        "issuer": auth.issuer,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scopes": ["read"],
        "clock": clock,
        "random": lambda: 0.5,
    } | overrides


@pytest.fixture
def make_manager(
    auth: AuthState, clock: FakeClock, sleeps: Sleeps, spawned: Spawned
) -> ManagerFactory:
    """`make_manager(**overrides)`: a `TokenManager` wired to fakes; use it in `with`."""

    def make(**overrides: Any) -> TokenManager:
        return TokenManager(
            **_options(auth, clock, {"sleep": sleeps, "spawn": spawned} | overrides)
        )

    return make


@pytest.fixture
def make_async_manager(
    auth: AuthState, clock: FakeClock, sleeps: Sleeps, spawned: Spawned
) -> AsyncManagerFactory:
    """`make_async_manager(**overrides)`: an `AsyncTokenManager`; use it in `async with`."""

    def make(**overrides: Any) -> AsyncTokenManager:
        fakes = {"sleep": sleeps.asleep, "spawn": spawned}
        return AsyncTokenManager(**_options(auth, clock, fakes | overrides))

    return make
