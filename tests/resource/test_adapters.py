"""Adapter behaviour beyond the shared scenarios: WebSockets and lifespan in the ASGI
middleware, misconfiguration failing closed, FastAPI's OpenAPI scheme, 503s, logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Security
from flask import Flask

from tests.resource import apps
from tests.resource.conftest import Api, MainIssuer, live_wsgi_server
from tests.resource.support import API, FakeAuthServer, FakeIssuer, compact, new_key
from tests.support.live import LiveServer
from tokenward.resource import AccessToken, TokenVerifier
from tokenward.resource.asgi import BearerAuthMiddleware, RequireScopes
from tokenward.resource.fastapi import BearerAuth
from tokenward.resource.flask import current_token, require_token

# -- pure ASGI, called directly -------------------------------------------------------------


class Recorder:
    """A downstream ASGI app and a `send` that record what happened."""

    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        self.scopes.append(dict(scope))

    async def send(self, message: Any) -> None:
        self.sent.append(dict(message))


async def _receive() -> dict[str, Any]:
    return {"type": "websocket.connect"}


def _ws_scope(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {"type": "websocket", "path": "/ws", "headers": headers, "query_string": b""}


@pytest.mark.anyio
async def test_websocket_without_token_is_closed_before_accept(main_issuer: MainIssuer) -> None:
    recorder = Recorder()
    verifier = TokenVerifier(main_issuer.issuer.issuer, audience=API)
    middleware = BearerAuthMiddleware(recorder.app, verifier=verifier)

    await middleware(_ws_scope([]), _receive, recorder.send)

    assert recorder.sent == [{"type": "websocket.close", "code": 1008}]
    assert recorder.scopes == []


@pytest.mark.anyio
async def test_websocket_with_token_reaches_the_app(main_issuer: MainIssuer) -> None:
    recorder = Recorder()
    verifier = TokenVerifier(main_issuer.issuer.issuer, audience=API)
    middleware = BearerAuthMiddleware(recorder.app, verifier=verifier)
    token = main_issuer.issuer.mint()

    await middleware(
        _ws_scope([(b"authorization", f"Bearer {token}".encode())]), _receive, recorder.send
    )

    assert recorder.sent == []
    [scope] = recorder.scopes
    assert isinstance(scope["auth"], AccessToken)
    assert scope["user"].is_authenticated
    assert (scope["user"].display_name, scope["user"].identity) == ("c1", "c1")


@pytest.mark.anyio
async def test_lifespan_passes_through(main_issuer: MainIssuer) -> None:
    recorder = Recorder()
    verifier = TokenVerifier(main_issuer.issuer.issuer, audience=API)
    await BearerAuthMiddleware(recorder.app, verifier=verifier)(
        {"type": "lifespan"}, _receive, recorder.send
    )
    assert recorder.scopes == [{"type": "lifespan"}]


@pytest.mark.anyio
async def test_require_scopes_without_middleware_fails_closed() -> None:
    recorder = Recorder()
    guarded = RequireScopes(recorder.app, "read")
    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    with pytest.raises(RuntimeError, match="BearerAuthMiddleware"):
        await guarded(scope, _receive, recorder.send)
    assert recorder.scopes == []


@pytest.mark.anyio
async def test_middleware_wide_scopes(main_issuer: MainIssuer) -> None:
    recorder = Recorder()
    verifier = TokenVerifier(main_issuer.issuer.issuer, audience=API)
    middleware = BearerAuthMiddleware(recorder.app, verifier=verifier, scopes=["admin"])
    header = (b"authorization", f"Bearer {main_issuer.issuer.mint()}".encode())
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [header]}

    await middleware(scope, _receive, recorder.send)

    assert recorder.scopes == []
    assert recorder.sent[0]["status"] == 403
    assert (
        b"www-authenticate",
        b'Bearer realm="' + API.encode() + b'", error="insufficient_scope", '
        b'error_description="The access token lacks a scope this resource requires", '
        b'scope="admin"',
    ) in recorder.sent[0]["headers"]


# -- over HTTP, every adapter ----------------------------------------------------------------


def test_large_form_body_reaches_the_app_intact(api: Api, main_issuer: MainIssuer) -> None:
    """Bodies beyond the inspection limit are not read by the adapter, just passed on."""
    token = main_issuer.issuer.mint()
    body = {"x": "y" * 100_000, "z": "1"}
    with httpx.Client(base_url=api.url) as client:
        response = client.post("/any", data=body, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json()["form"] == ["x", "z"]


@pytest.fixture
def broken_issuer(auth_server: FakeAuthServer) -> FakeIssuer:
    issuer = auth_server.new_issuer()
    issuer.jwks_status = 503
    return issuer


@pytest.fixture(params=["asgi", "fastapi", "flask"])
def broken_api(request: pytest.FixtureRequest, broken_issuer: FakeIssuer) -> Iterator[str]:
    verifier = TokenVerifier(broken_issuer.issuer, audience=API)
    if request.param == "flask":
        with live_wsgi_server(apps.flask_app(verifier)) as url:
            yield url
        return
    app = apps.asgi_app(verifier) if request.param == "asgi" else apps.fastapi_app(verifier)
    live = LiveServer(app).start()
    try:
        yield live.url
    finally:
        live.stop()


def test_unreachable_keys_give_503_not_invalid_token(
    broken_api: str, broken_issuer: FakeIssuer
) -> None:
    token = broken_issuer.mint()
    response = httpx.get(broken_api + "/any", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 503
    assert response.json() == {
        "error": "temporarily_unavailable",
        "error_description": "The access token cannot be verified right now",
    }
    assert response.headers["retry-after"] == "10"
    assert "www-authenticate" not in response.headers


def test_jku_and_x5u_are_never_fetched(
    api: Api, main_issuer: MainIssuer, auth_server: FakeAuthServer
) -> None:
    """J5: key URLs in the header are ignored: no request, and the token is judged on the
    issuer's keys alone (accepted when signed with them, rejected otherwise)."""
    issuer = main_issuer.issuer
    trap = issuer.base_url + "/attacker/jwks.json"
    attacker = new_key("ES256", kid="attacker")
    forged = compact(
        {"alg": "ES256", "kid": "attacker", "typ": "at+jwt", "jku": trap, "x5u": trap},
        issuer.claims(),
        attacker,
    )
    honest = issuer.mint(header={"jku": trap, "x5u": trap})
    with httpx.Client(base_url=api.url) as client:
        bad = client.get("/any", headers={"Authorization": f"Bearer {forged}"})
        good = client.get("/any", headers={"Authorization": f"Bearer {honest}"})
    assert (bad.status_code, good.status_code) == (401, 200)
    assert not [path for path in auth_server.paths if path.startswith("/attacker")]


def test_tokens_never_reach_the_logs(
    api: Api, main_issuer: MainIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    """RS-20: no token, nor a prefix longer than 8 characters, in any log record."""
    caplog.set_level(logging.DEBUG)
    issuer = main_issuer.issuer
    tokens = [
        issuer.mint(),
        issuer.mint(exp=1),
        issuer.mint(new_key("ES256")),
        issuer.mint(aud="https://other.example"),
        "opaque-secret-value",
    ]
    with httpx.Client(base_url=api.url) as client:
        for token in tokens:
            client.get("/write", headers={"Authorization": f"Bearer {token}"})
            client.get("/any", params={"access_token": token})
    # The test's own HTTP client logs each URL it requests, query tokens included (a reminder
    # of why RFC 6750 §2.3 says not to send them there). That is the caller's log: skip it.
    logged = "\n".join(
        message
        for message in (record.getMessage() for record in caplog.records)
        if api.url not in message
    )
    assert "access token rejected" in logged  # the reasons are logged...
    for token in tokens:
        assert token[:9] not in logged  # ...the tokens are not


# -- FastAPI ---------------------------------------------------------------------------------


def _fastapi_openapi(verifier: TokenVerifier) -> dict[str, Any]:
    live = LiveServer(apps.fastapi_app(verifier)).start()
    try:
        return dict(httpx.get(live.url + "/openapi.json").json())
    finally:
        live.stop()


def test_fastapi_openapi_offers_the_client_credentials_flow(main_issuer: MainIssuer) -> None:
    verifier = TokenVerifier(main_issuer.issuer.issuer, audience=API)
    document = _fastapi_openapi(verifier)

    assert document["components"]["securitySchemes"] == {
        "BearerAuth": {
            "type": "oauth2",
            "flows": {
                "clientCredentials": {
                    "tokenUrl": main_issuer.issuer.issuer + "/token",
                    "scopes": {"read": "Read things", "write": "Change things"},
                }
            },
        }
    }
    assert document["paths"]["/write"]["get"]["security"] == [{"BearerAuth": ["write"]}]


def test_fastapi_without_the_error_handler_still_sends_status_and_challenge(
    main_issuer: MainIssuer,
) -> None:
    verifier = TokenVerifier(main_issuer.issuer.issuer, audience=API)
    bearer = BearerAuth(verifier, token_url="https://as.example/token")
    app = FastAPI()

    @app.get("/r")
    async def r(token: AccessToken = Security(bearer, scopes=["write"])) -> str:  # noqa: B008
        return token.client_id

    live = LiveServer(app).start()
    try:
        response = httpx.get(
            live.url + "/r", headers={"Authorization": f"Bearer {main_issuer.issuer.mint()}"}
        )
    finally:
        live.stop()
    assert response.status_code == 403
    assert response.json() == {"detail": "The access token lacks a scope this resource requires"}
    assert response.headers["www-authenticate"].endswith('scope="write"')


# -- Flask -----------------------------------------------------------------------------------


def test_flask_current_token_outside_a_view_raises() -> None:
    app = Flask(__name__)
    with app.test_request_context(), pytest.raises(RuntimeError, match="require_token"):
        _ = current_token.client_id


def test_flask_require_token_without_extension_fails_closed() -> None:
    app = Flask(__name__)
    app.testing = True

    @app.get("/r")
    @require_token("read")
    def r() -> str:
        return "reached"

    with pytest.raises(RuntimeError, match="BearerAuth"):
        app.test_client().get("/r")
