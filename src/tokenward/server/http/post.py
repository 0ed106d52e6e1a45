"""The one ASGI wrapper of the three POST endpoints (token, introspection, revocation).

Steps: who is asking (source address, request id: ``transport.HttpPolicy``); a CORS preflight
when the endpoint allows origins; POST only (RFC 6749 §3.2, RFC 7662 §2.1, RFC 7009 §2.1); the
transport rules of ``transport.read_params``; the endpoint's own steps; then one of three
answers: the endpoint's JSON body with 200, the RFC 6749 §5.2 error the endpoint raised
(audited with the client id and method the request presented), a 503 when a stopping worker's
drain time cuts the request short, or a 500 ``server_error`` for a bug (logged, never shown).
Every answer carries ``Cache-Control: no-store`` (``rendering.NO_STORE``) and
``X-Request-Id``, the id every audit event of the request carries.

CORS (Fetch standard, "CORS protocol"): off unless the endpoint has allowed origins. A listed
``Origin`` gets ``Access-Control-Allow-Origin`` with that origin (never ``*``) and no
``Access-Control-Allow-Credentials``: browsers send no cookies, the client authenticates in
the ``Authorization`` header or the body, never in the URL.
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
from tokenward.server.events import AuditBuffer, bind_request
from tokenward.server.exchange import Exchange
from tokenward.server.http.rendering import Send, send_json
from tokenward.server.http.transport import (
    HttpPolicy,
    Receive,
    RequestHead,
    read_head,
    read_params,
)

__all__ = ["PostEndpoint", "PostHandler"]

log = logging.getLogger("tokenward.http")
_EXPOSED = "Retry-After, WWW-Authenticate, X-Request-Id"
_PREFLIGHT = {
    "Access-Control-Allow-Methods": "POST",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, Accept",
    "Access-Control-Max-Age": "600",
}


class PostEndpoint(Protocol):
    name: str

    def __call__(self, exchange: Exchange) -> Awaitable[Mapping[str, Any]]: ...


class PostHandler:
    """Serves one :class:`PostEndpoint` over raw ASGI."""

    def __init__(
        self,
        endpoint: PostEndpoint,
        *,
        audit: AuditBuffer,
        clock: Clock,
        json_body: bool,
        policy: HttpPolicy | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._audit = audit
        self._clock = clock
        self._json_body = json_body
        self._policy = policy or HttpPolicy()

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        started = perf_counter()
        try:
            await self._handle(scope, receive, send)
        finally:
            # Kept for the metrics sink, which turns it into histograms behind (events.py).
            self._audit.timed(self.endpoint.name, perf_counter() - started)

    async def _handle(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        head = read_head(scope)
        client = scope.get("client")
        peer = client[0] if client else "-"
        headers = {"X-Request-Id": self._policy.request_id(peer, head), **self._cors(head)}
        if scope["method"] != "POST":
            await self._not_post(scope["method"], head, headers, send)
            return
        exchange = Exchange(
            self.endpoint.name,
            None,
            {},
            int(self._clock()),
            source=self._policy.source(peer, head),
            request_id=headers["X-Request-Id"],
        )
        exchange.audit = {"request_id": exchange.request_id, "source": exchange.source}
        bind_request(exchange.audit)
        try:
            exchange.authorization, exchange.params = await read_params(
                scope,
                head,
                receive,
                json_body=self._json_body,
                body_seconds=self._policy.body_timeout,
            )
            body = await self.endpoint(exchange)
        except OAuthError as error:
            self._failed(exchange, error)
            await self._error(send, error, headers)
            return
        except asyncio.CancelledError:
            # The drain time of a stopping worker ran out (docs/operations.md): the client may
            # retry elsewhere, which uvicorn's plain 500 would not tell it.
            stopping = TemporarilyUnavailable(reason="server stopping")
            self._failed(exchange, stopping)
            await self._error(send, stopping, headers)
            return
        except Exception:
            log.exception("%s endpoint failed", self.endpoint.name)
            await self._error(send, ServerError(reason="unhandled"), headers)
            return
        await send_json(send, 200, body, headers)

    def _cors(self, head: RequestHead) -> dict[str, str]:
        origins = self._policy.cors_origins
        if not origins:
            return {}
        if head.origin is None or head.origin not in origins:
            return {"Vary": "Origin"}
        return {
            "Access-Control-Allow-Origin": head.origin.decode("latin-1"),
            "Access-Control-Expose-Headers": _EXPOSED,
            "Vary": "Origin",
        }

    async def _not_post(
        self, method: str, head: RequestHead, headers: dict[str, str], send: Send
    ) -> None:
        if method == "OPTIONS" and self._policy.cors_origins:
            if "Access-Control-Allow-Origin" in headers:
                await send_json(send, 204, None, {**headers, **_PREFLIGHT})
                return
            error = InvalidRequest("origin not allowed", reason="cors origin")
            await send_json(send, 403, error.body(), headers)
            return
        # GET would put credentials and tokens in URLs and logs (RFC 7662 §4).
        error = InvalidRequest(f"the {self.endpoint.name} endpoint accepts POST only")
        await send_json(send, 405, error.body(), {"Allow": "POST", **headers})

    async def _error(self, send: Send, error: OAuthError, headers: dict[str, str]) -> None:
        body = error.body(reflection_limit=self._policy.reflection_limit)
        await send_json(send, error.status, body, {**error.headers(), **headers})

    def _failed(self, exchange: Exchange, error: OAuthError) -> None:
        self._audit.failed(
            endpoint=exchange.endpoint,
            client_id=exchange.client_id,
            error=error.error,
            reason=error.reason,
            method=exchange.method,
            authenticated=exchange.authenticated,
        )
