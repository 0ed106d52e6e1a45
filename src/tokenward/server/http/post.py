"""The one ASGI wrapper of the three POST endpoints (token, introspection, revocation).

Steps: POST only (RFC 6749 §3.2, RFC 7662 §2.1, RFC 7009 §2.1); the transport rules of
``transport.read_params``; the endpoint's own steps; then one of three answers: the endpoint's
JSON body with 200, the RFC 6749 §5.2 error the endpoint raised (audited with the client id
and method the request presented), a 503 when a stopping worker's drain time cuts the request
short, or a 500 ``server_error`` for a bug (logged, never shown).
Every answer carries ``Cache-Control: no-store`` (``rendering.NO_STORE``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping
from time import perf_counter
from typing import Any, Protocol

from tokenward.protocol.errors import (
    InvalidRequest,
    OAuthError,
    ServerError,
    TemporarilyUnavailable,
)
from tokenward.server.clock import Clock
from tokenward.server.events import AuditBuffer
from tokenward.server.exchange import Exchange
from tokenward.server.http.rendering import Send, error_response, send_json
from tokenward.server.http.transport import Receive, read_params

__all__ = ["PostEndpoint", "PostHandler"]

log = logging.getLogger("tokenward.http")


class PostEndpoint(Protocol):
    name: str

    def __call__(self, exchange: Exchange) -> Awaitable[Mapping[str, Any]]: ...


class PostHandler:
    """Serves one :class:`PostEndpoint` over raw ASGI."""

    def __init__(
        self, endpoint: PostEndpoint, *, audit: AuditBuffer, clock: Clock, json_body: bool
    ) -> None:
        self.endpoint = endpoint
        self._audit = audit
        self._clock = clock
        self._json_body = json_body

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        started = perf_counter()
        try:
            await self._handle(scope, receive, send)
        finally:
            # Kept for the metrics sink, which turns it into histograms behind (events.py).
            self._audit.timed(self.endpoint.name, perf_counter() - started)

    async def _handle(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            # GET would put credentials and tokens in URLs and logs (RFC 7662 §4).
            error = InvalidRequest(f"the {self.endpoint.name} endpoint accepts POST only")
            await send_json(send, 405, error.body(), {"Allow": "POST"})
            return
        exchange = Exchange(self.endpoint.name, None, {}, int(self._clock()))
        try:
            exchange.authorization, exchange.params = await read_params(
                scope, receive, json_body=self._json_body
            )
            body = await self.endpoint(exchange)
        except OAuthError as error:
            self._failed(exchange, error)
            await error_response(send, error)
            return
        except asyncio.CancelledError:
            # The drain time of a stopping worker ran out (docs/operations.md): the client may
            # retry elsewhere, which uvicorn's plain 500 would not tell it.
            stopping = TemporarilyUnavailable(reason="server stopping")
            self._failed(exchange, stopping)
            await error_response(send, stopping)
            return
        except Exception:
            log.exception("%s endpoint failed", self.endpoint.name)
            await error_response(send, ServerError(reason="unhandled"))
            return
        await send_json(send, 200, body)

    def _failed(self, exchange: Exchange, error: OAuthError) -> None:
        self._audit.failed(
            endpoint=exchange.endpoint,
            client_id=exchange.client_id,
            error=error.error,
            reason=error.reason,
            method=exchange.method,
            authenticated=exchange.authenticated,
        )
