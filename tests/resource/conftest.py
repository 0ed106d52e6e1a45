"""Fixtures for the resource library: a fake authorization server on loopback, verifiers, and
the same small API served by each adapter (pure ASGI, FastAPI, Flask)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

from tests.resource.support import API, FakeAuthServer, FakeIssuer, SigningKey, new_key
from tests.support.clock import FakeClock
from tests.support.live import LiveServer
from tokenward.resource import JwksCachePolicy, TokenVerifier


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def auth_server() -> Iterator[FakeAuthServer]:
    server = FakeAuthServer()
    live = LiveServer(server.asgi).start()
    server.base_url = live.url
    try:
        yield server
    finally:
        live.stop()


@pytest.fixture
def issuer(auth_server: FakeAuthServer) -> FakeIssuer:
    return auth_server.new_issuer()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def verifier(issuer: FakeIssuer, clock: FakeClock) -> TokenVerifier:
    return TokenVerifier(issuer.issuer, audience=API, clock=clock, cache=JwksCachePolicy())


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Werkzeug's access log would print request lines; keep test output clean."""


@contextlib.contextmanager
def live_wsgi_server(app: Any) -> Iterator[str]:
    """Serve a WSGI app with Werkzeug's threaded server on loopback, as `flask run` would."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@dataclass
class MainIssuer:
    """The session's issuer for adapter scenarios, publishing one key per algorithm."""

    issuer: FakeIssuer
    keys: dict[str, SigningKey]


@pytest.fixture(scope="session")
def main_issuer(auth_server: FakeAuthServer) -> MainIssuer:
    issuer = auth_server.new_issuer()
    keys = {alg: new_key(alg) for alg in ("ES256", "ES384", "RS256", "PS256", "EdDSA", "Ed25519")}
    keys["ES256"] = issuer.key
    issuer.published = list(keys.values())
    return MainIssuer(issuer, keys)


@dataclass
class Api:
    """One adapter serving the scenario API."""

    name: str
    url: str


@pytest.fixture(scope="session", params=["asgi", "fastapi", "flask"])
def api(request: pytest.FixtureRequest, main_issuer: MainIssuer) -> Iterator[Api]:
    from tests.resource import apps

    name = str(request.param)
    verifier = TokenVerifier(main_issuer.issuer.issuer, audience=API)
    if name == "flask":
        with live_wsgi_server(apps.flask_app(verifier)) as url:
            yield Api(name, url)
        return
    app = apps.asgi_app(verifier) if name == "asgi" else apps.fastapi_app(verifier)
    live = LiveServer(app).start()
    try:
        yield Api(name, live.url)
    finally:
        live.stop()
