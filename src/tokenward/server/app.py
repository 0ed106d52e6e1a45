"""``create_app``: the tokenward ASGI application.

The token endpoint is served by a raw ASGI handler in front of Starlette (it is the hot
path); discovery, JWKS, health, metrics and the admin API are Starlette/FastAPI routes.
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

from tokenward.server.events import configure_logging
from tokenward.server.http.lifecycle import introspection_endpoint, revocation_endpoint
from tokenward.server.http.routes import protocol_routes
from tokenward.server.http.token import token_endpoint
from tokenward.server.secrets import ServerSecrets, build_server_secrets
from tokenward.server.service import TokenService
from tokenward.server.settings import Settings
from tokenward.server.storage.sql.migrate import upgrade
from tokenward.server.storage.sql.repository import Repository

__all__ = ["TokenwardApp", "create_app", "load_server_secrets", "prepare_database"]

log = logging.getLogger("tokenward")


def load_server_secrets(settings: Settings) -> ServerSecrets:
    server_secrets = build_server_secrets(
        pepper=settings.pepper.get_secret_value() if settings.pepper else None,
        pepper_id=settings.pepper_id,
        previous={k: v.get_secret_value() for k, v in settings.previous_peppers.items()},
        key_encryption_key=(
            settings.key_encryption_key.get_secret_value() if settings.key_encryption_key else None
        ),
        dev_file=settings.secrets_file if settings.is_sqlite else None,
    )
    if server_secrets.generated:
        log.warning(
            "DEVELOPMENT SECRETS: pepper and key-encryption key were generated into %s; set "
            "TOKENWARD_PEPPER and TOKENWARD_KEY_ENCRYPTION_KEY in production",
            settings.secrets_file,
        )
    return server_secrets


def prepare_database(settings: Settings) -> None:
    if settings.auto_migrate and upgrade(settings.database_url):
        log.info("database schema upgraded")


class TokenwardApp:
    """Dispatches {issuer}/token, /introspect and /revoke to raw handlers, the rest to
    Starlette."""

    def __init__(self, service: TokenService, inner: Starlette) -> None:
        self.service = service
        self.inner = inner
        base = urlsplit(service.settings.issuer).path.rstrip("/")
        self.token_path = base + "/token"
        self.raw = {
            self.token_path: token_endpoint,
            base + "/introspect": introspection_endpoint,
            base + "/revoke": revocation_endpoint,
        }

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            if scope["path"] == self.token_path:
                await token_endpoint(self.service, scope, receive, send)
                return
            handler = self.raw.get(scope["path"])
            if handler is not None:
                await handler(self.service, scope, receive, send)
                return
        await self.inner(scope, receive, send)


async def _not_found(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": "not_found"}, status_code=404)


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    return JSONResponse(
        {"error": "invalid_request", "error_description": "method not allowed"}, 405
    )


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
    service = TokenService(
        settings, Repository.from_url(settings.database_url), load_server_secrets(settings)
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()
            await service.repository.close()

    inner = Starlette(
        routes=protocol_routes(service),
        lifespan=lifespan,
        exception_handlers={404: _not_found, 405: _method_not_allowed},
    )
    return TokenwardApp(service, inner)
