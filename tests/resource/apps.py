"""The same small API on every adapter.

Routes: ``/any`` (GET, POST; any valid token), ``/read`` (scope ``read``), ``/write`` (scope
``write``). Each answers ``{"client_id", "scopes", "form"}``; ``form`` lists the form fields the
app itself received, which shows the adapters leave the request body intact.

No ``from __future__ import annotations`` here: FastAPI reads these annotations at runtime.
"""

from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request, Security
from flask import Flask
from flask import request as flask_request
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse
from starlette.routing import Route, request_response

from tokenward.resource import AccessToken, TokenVerifier
from tokenward.resource.asgi import BearerAuthMiddleware, RequireScopes
from tokenward.resource.fastapi import BearerAuth, add_bearer_error_handler
from tokenward.resource.flask import BearerAuth as FlaskBearerAuth
from tokenward.resource.flask import current_token, require_token


def _fields(body: bytes) -> list[str]:
    # python-multipart is not a dependency, so Starlette's request.form() is unavailable.
    return sorted(name for name, _ in parse_qsl(body.decode(), keep_blank_values=True))


def _answer(token: AccessToken, form: list[str]) -> dict[str, Any]:
    return {"client_id": token.client_id, "scopes": sorted(token.scopes), "form": form}


def asgi_app(verifier: TokenVerifier) -> Any:
    async def endpoint(request: StarletteRequest) -> JSONResponse:
        form = _fields(await request.body()) if request.method == "POST" else []
        return JSONResponse(_answer(request.auth, form))

    app = Starlette(
        routes=[
            Route("/any", endpoint, methods=["GET", "POST"]),
            Route("/read", RequireScopes(request_response(endpoint), "read")),
            Route("/write", RequireScopes(request_response(endpoint), "write")),
        ]
    )
    return BearerAuthMiddleware(app, verifier=verifier)


def fastapi_app(verifier: TokenVerifier) -> FastAPI:
    bearer = BearerAuth(
        verifier,
        token_url=verifier.issuer + "/token",
        scopes={"read": "Read things", "write": "Change things"},
    )
    app = FastAPI()
    add_bearer_error_handler(app)
    Token = Annotated[AccessToken, Security(bearer)]
    ReadToken = Annotated[AccessToken, Security(bearer, scopes=["read"])]
    WriteToken = Annotated[AccessToken, Security(bearer, scopes=["write"])]

    @app.get("/any")
    async def any_get(token: Token) -> dict[str, Any]:
        return _answer(token, [])

    @app.post("/any")
    async def any_post(request: Request, token: Token) -> dict[str, Any]:
        return _answer(token, _fields(await request.body()))

    @app.get("/read")
    async def read(token: ReadToken) -> dict[str, Any]:
        return _answer(token, [])

    @app.get("/write")
    async def write(token: WriteToken) -> dict[str, Any]:
        return _answer(token, [])

    return app


def flask_app(verifier: TokenVerifier) -> Flask:
    app = Flask(__name__)
    FlaskBearerAuth(verifier, app=app)

    @app.route("/any", methods=["GET", "POST"])
    @require_token()
    def any_() -> dict[str, Any]:
        return _answer(current_token, sorted(flask_request.form.keys()))

    @app.get("/read")
    @require_token("read")
    def read() -> dict[str, Any]:
        return _answer(current_token, [])

    @app.get("/write")
    @require_token("write")
    def write() -> dict[str, Any]:
        return _answer(current_token, [])

    return app
