"""``create_app``: the tokenward ASGI application.

The three POST endpoints (token, introspection, revocation) are raw ASGI handlers in front of
Starlette (the token endpoint is the hot path); discovery, JWKS and health are Starlette routes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tokenward.server.composition import Server, build_server, prepare_database
from tokenward.server.events import configure_logging
from tokenward.server.http.post import PostHandler
from tokenward.server.http.routes import protocol_routes
from tokenward.server.http.transport import http_policy
from tokenward.server.settings import Settings

__all__ = ["TokenwardApp", "create_app", "wrap"]

log = logging.getLogger("tokenward")


class TokenwardApp:
    """Dispatches {issuer}/token, /introspect and /revoke to raw handlers, the rest to
    Starlette."""

    def __init__(self, server: Server, inner: Starlette) -> None:
        self.server = server
        self.inner = inner
        base = urlsplit(server.settings.issuer).path.rstrip("/")
        settings = server.settings

        policy = http_policy(settings)

        def handler(endpoint: Any) -> PostHandler:
            return PostHandler(
                endpoint,
                audit=server.audit,
                clock=server.clock,
                json_body=settings.json_body,
                # CORS for the token endpoint only ("Authorize" buttons of API docs pages).
                policy=policy if endpoint is server.token else policy.without_cors(),
            )

        self.token_path = base + "/token"
        self.token = handler(server.token)
        self.raw = {
            self.token_path: self.token,
            base + "/introspect": handler(server.introspection),
            base + "/revoke": handler(server.revocation),
        }

    @property
    def transport_limits(self) -> Settings:
        """The settings the HTTP protocol (``http/limits.py``) reads its limits from."""
        return self.server.settings

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            if scope["path"] == self.token_path:
                await self.token(scope, receive, send)
                return
            handler = self.raw.get(scope["path"])
            if handler is not None:
                await handler(scope, receive, send)
                return
        await self.inner(scope, receive, send)


async def _not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": "not_found"}, status_code=404)


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    return JSONResponse(
        {"error": "invalid_request", "error_description": "method not allowed"}, 405
    )


def wrap(server: Server) -> TokenwardApp:
    """The ASGI app of a built server; its lifespan runs the runtime."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await server.runtime.start()
        try:
            yield
        finally:
            await server.runtime.stop()
            await server.aclose()

    routes = protocol_routes(
        server.settings,
        registry=server.registry,
        keyring=server.keyring,
        store=server.stores.registry,
        auth_methods=server.auth_methods,
    )
    inner = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: _not_found, 405: _method_not_allowed},
    )
    return TokenwardApp(server, inner)


def create_app(settings: Settings | None = None, *, configure_logs: bool = True) -> TokenwardApp:
    """Build the application. Settings default to the environment (``TOKENWARD_*``)."""
    settings = settings or Settings()
    if configure_logs:
        configure_logging(level=settings.log_level, fmt=settings.log_format)
    settings.check_transport()
    if settings.insecure_issuer:
        log.warning(
            "INSECURE ISSUER %s: plain http is for local development only (RFC 6749 §3.2 "
            "requires TLS)",
            settings.issuer,
        )
    prepare_database(settings)
    return wrap(build_server(settings))
