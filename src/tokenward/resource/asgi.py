"""Pure ASGI middleware for bearer tokens — RFC 6750, for Starlette and any ASGI app.

:class:`BearerAuthMiddleware` protects every HTTP and WebSocket request of the app it wraps:
without a valid token the request never reaches the app. It follows Starlette's convention and
sets ``scope["auth"]`` to the :class:`AccessToken` (whose ``.scopes`` also satisfies
``starlette.authentication.requires``) and ``scope["user"]`` to a :class:`TokenUser`.

Scopes are enforced either for the whole app (``BearerAuthMiddleware(app, scopes=[...])``) or
per route by wrapping the route's ASGI app in :class:`RequireScopes`, which answers 403
``insufficient_scope`` with the RFC 6750 challenge.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

from tokenward.resource._request import (
    FORM_BODY_LIMIT,
    bearer_credentials,
    has_access_token_param,
    is_form_body,
)
from tokenward.resource.claims import AccessToken
from tokenward.resource.errors import BearerError, InsufficientScope
from tokenward.resource.verifier import TokenVerifier

__all__ = ["BearerAuthMiddleware", "RequireScopes", "TokenUser"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_REALM_KEY = "tokenward.realm"  # set by the middleware for RequireScopes' challenges
# RFC 6455 §7.4.1: 1008 "policy violation", the closest code to "unauthorized".
_WS_POLICY_VIOLATION = 1008


@dataclass(frozen=True, slots=True)
class TokenUser:
    """``scope["user"]``: the calling client, shaped like Starlette's ``BaseUser``."""

    token: AccessToken

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.token.client_id

    @property
    def identity(self) -> str:
        return self.token.subject


async def _reject(error: BearerError, scope: Scope, send: Send, realm: str) -> None:
    if scope["type"] == "websocket":
        # Closing before accepting makes the server refuse the handshake (HTTP 403).
        await send({"type": "websocket.close", "code": _WS_POLICY_VIOLATION})
        return
    status, headers, body = error.render(realm)
    raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    raw_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> list[str]:
    return [value.decode("latin-1") for key, value in scope["headers"] if key.lower() == name]


async def _buffer_form(scope: Scope, receive: Receive) -> tuple[bytes | None, Receive]:
    """Read a form body (up to the limit) and a ``receive`` that replays it to the app."""
    length = _header(scope, b"content-length")
    if length and (not length[0].isdigit() or int(length[0]) > FORM_BODY_LIMIT):
        return None, receive
    messages: deque[Message] = deque()
    size, complete = 0, False
    while size <= FORM_BODY_LIMIT:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            complete = True
            break

    async def replay() -> Message:
        return messages.popleft() if messages else await receive()

    if not complete:
        return None, replay
    return b"".join(m.get("body", b"") for m in messages), replay


async def _credentials(scope: Scope, receive: Receive) -> tuple[str, Receive]:
    authorization = _header(scope, b"authorization")
    in_query = in_form = False
    if authorization:  # the parameters only matter next to a header (RFC 6750 §2)
        in_query = has_access_token_param(scope.get("query_string", b""))
        content_type = _header(scope, b"content-type")
        if scope["type"] == "http" and is_form_body(
            scope["method"], content_type[0] if content_type else None
        ):
            body, receive = await _buffer_form(scope, receive)
            in_form = body is not None and has_access_token_param(body)
    token = bearer_credentials(authorization, token_in_query=in_query, token_in_form=in_form)
    return token, receive


class BearerAuthMiddleware:
    """Requires a valid bearer token (and optionally ``scopes``) on every request.

    ``realm`` defaults to the verifier's audience. Lifespan and other scope types pass through.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: TokenVerifier,
        realm: str | None = None,
        scopes: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.realm = realm or verifier.audience
        self.scopes = tuple(scopes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        try:
            raw, receive = await _credentials(scope, receive)
            token = await self.verifier.verify(raw)
            token.require_scopes(*self.scopes)
        except BearerError as error:
            await _reject(error, scope, send, self.realm)
            return
        scope["auth"], scope["user"], scope[_REALM_KEY] = token, TokenUser(token), self.realm
        await self.app(scope, receive, send)


class RequireScopes:
    """Wraps one route's ASGI app: 403 ``insufficient_scope`` unless the token has ``scopes``.

    Must run behind :class:`BearerAuthMiddleware`; without it every request is an error (fail
    closed), never a pass.
    """

    def __init__(self, app: ASGIApp, *scopes: str, realm: str | None = None) -> None:
        self.app = app
        self.scopes = scopes
        self.realm = realm

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            token = scope.get("auth")
            if not isinstance(token, AccessToken):
                raise RuntimeError("RequireScopes needs BearerAuthMiddleware in front of it")
            if not token.has_scopes(*self.scopes):
                realm = self.realm or scope.get(_REALM_KEY) or token.audience[0]
                await _reject(InsufficientScope(self.scopes), scope, send, realm)
                return
        await self.app(scope, receive, send)
