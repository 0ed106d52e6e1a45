"""``create_app``: the tokenward ASGI application.

The three POST endpoints (token, introspection, revocation) are raw ASGI handlers in front of
Starlette (the token endpoint is the hot path); discovery, JWKS and health are Starlette routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount

from tokenward.protocol.errors import TemporarilyUnavailable
from tokenward.server.admin.api import admin_api
from tokenward.server.admin.console import console_routes
from tokenward.server.composition import Server, build_server
from tokenward.server.events import configure_logging
from tokenward.server.http.post import PostHandler
from tokenward.server.http.rendering import error_response
from tokenward.server.http.routes import protocol_routes
from tokenward.server.http.transport import http_policy
from tokenward.server.preflight import preflight
from tokenward.server.settings import Settings, load_settings

__all__ = ["TokenwardApp", "check_settings", "create_app", "wrap"]

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
            await _route(self.inner, scope, receive, send)
            return
        await self.inner(scope, receive, send)


async def _route(inner: Starlette, scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A Starlette route; one cut short by a stopping worker's drain time before it answered
    gets a 503 with ``Retry-After`` (as the raw handlers do) rather than uvicorn's 500."""
    started = False

    async def tracked(message: MutableMapping[str, Any]) -> None:
        nonlocal started
        started = started or message["type"] == "http.response.start"
        await send(message)

    try:
        await inner(scope, receive, tracked)
    except asyncio.CancelledError:
        if started:
            raise
        await error_response(send, TemporarilyUnavailable(reason="server stopping"))


async def _not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": "not_found"}, status_code=404)


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    return JSONResponse(
        {"error": "invalid_request", "error_description": "method not allowed"}, 405
    )


def _admin_api(server: Server) -> Mount:
    """The admin REST API at ``{issuer path}/admin/api`` (docs/admin-api.md)."""
    issuer = server.settings.issuer
    app = admin_api(admin=server.admin, reader=server.reader, issuer=issuer, clock=server.clock)
    mount = Mount(urlsplit(issuer).path.rstrip("/") + "/admin/api", app=app)
    # Every path under it is the admin API's, one with a percent-encoded newline too (Starlette's
    # pattern stops at "\n"): the API answers its own 404, in its own error shape.
    mount.path_regex = re.compile(mount.path_regex.pattern, re.DOTALL)
    return mount


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
        auth_methods=server.auth_methods,
        metrics=server.metrics,
    )
    if server.settings.console_enabled:
        routes += console_routes(
            server.settings, admin=server.admin, operators=server.operators, usage=server.usage
        )
    if server.settings.admin_api:
        routes.insert(0, _admin_api(server))  # first: before any other mount under /admin
    inner = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: _not_found, 405: _method_not_allowed},
    )
    return TokenwardApp(server, inner)


def create_app(settings: Settings | None = None, *, configure_logs: bool = True) -> TokenwardApp:
    """Build the application. Settings default to the environment (``TOKENWARD_*``). The
    start-up checks (``server/preflight.py``) run first: a database that cannot be reached or
    secrets that do not match it raise :class:`ConfigError` before anything is served."""
    settings = settings or load_settings()
    if configure_logs:
        configure_logging(level=settings.log_level, fmt=settings.log_format)
    check_settings(settings)
    checked = preflight(settings, writes=True)
    return wrap(build_server(settings, server_secrets=checked.secrets))


def check_settings(settings: Settings) -> None:
    """Refuse a plain-http issuer off loopback (:class:`ConfigError`); warn about one on
    loopback."""
    settings.check_transport()
    if settings.insecure_issuer:
        log.warning(
            "INSECURE ISSUER %s: plain http is for local development only (RFC 6749 §3.2 "
            "requires TLS)",
            settings.issuer,
        )
