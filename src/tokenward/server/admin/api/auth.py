"""Who may call the admin REST API: this server's own bearer access tokens (RFC 6750, RFC 9068).

A request is authenticated by :class:`Gate`, an ASGI wrapper in front of the FastAPI app, so
an unauthenticated caller is refused before its body is read or parsed. The token is accepted
when, in this order:

1. it is sent as ``Authorization: Bearer <token>`` (RFC 6750 §2.1, through the resource
   library's parser: no credentials -> 401 without an error code, malformed -> 400);
2. it is one of ours (``reader.claims``): a JWT signed by a key of this server's key ring with
   ``typ`` ``at+jwt`` and ``iss`` this issuer (RFC 9068 §4), or an opaque token we stored;
3. its ``aud`` is the admin API (RFC 9068 §4: "The resource server MUST validate that the aud
   claim contains a resource indicator value corresponding to an identifier the resource
   server expects for itself");
4. it is active as introspection would answer (``reader.is_active``): not expired, not
   revoked, its client exists, is enabled and has not revoked its tokens since.

Every failure of 2-4 is ``invalid_token`` (RFC 9068 §4: "the resource server MUST treat
the token as invalid"). Each route then requires a scope through :class:`AdminBearer`, a FastAPI
``Security`` dependency that also describes the client-credentials flow in the OpenAPI
document (the "Authorize" button of ``/docs``): ``tokenward:admin:read`` to read,
``tokenward:admin`` (which includes reading) to change anything; missing -> 403
``insufficient_scope``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.openapi.models import OAuthFlowClientCredentials
from fastapi.openapi.models import OAuthFlows as OAuthFlowsModel
from fastapi.security import OAuth2, SecurityScopes
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tokenward.protocol.errors import TemporarilyUnavailable
from tokenward.protocol.scopes import parse_scope
from tokenward.resource._request import bearer_credentials
from tokenward.resource.errors import (
    BearerError,
    InsufficientScope,
    InvalidToken,
    MissingToken,
    VerifierUnavailable,
)
from tokenward.server.admin.bootstrap import ADMIN_READ_SCOPE, ADMIN_SCOPE
from tokenward.server.clock import Clock
from tokenward.server.reader import TokenReader

__all__ = [
    "SERVER_ERROR",
    "AdminBearer",
    "BearerRefused",
    "Caller",
    "Gate",
    "TokenCheck",
    "render_refusal",
]

log = logging.getLogger("tokenward.admin.api")
REALM = "tokenward admin"
#: The largest request body the admin API reads (an inline JWKS of several RSA keys fits).
MAX_BODY = 64 * 1024
SERVER_ERROR = {"error": "server_error", "message": "the server failed; see its log"}
_PUBLIC = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect"})


@dataclass(frozen=True, slots=True)
class Caller:
    """The client whose token was accepted, and the scopes that token carries."""

    client_id: str
    scopes: frozenset[str]

    @property
    def actor(self) -> str:
        """How the audit trail names this caller."""
        return f"api:{self.client_id}"

    def has(self, required: Collection[str]) -> bool:
        granted = set(self.scopes)
        if ADMIN_SCOPE in granted:
            granted.add(ADMIN_READ_SCOPE)  # read-write includes read
        return granted.issuperset(required)


class BearerRefused(Exception):
    """A refused request, rendered by :func:`render_refusal`."""

    def __init__(self, error: BearerError) -> None:
        super().__init__(error.reason)
        self.error = error


def render_refusal(error: BearerError) -> tuple[int, dict[str, str], dict[str, str]]:
    """Status, headers (the RFC 6750 §3 challenge) and the admin API's error body; the precise
    reason goes to the log only (it never names the token)."""
    status, headers, _ = error.render(REALM)
    code = error.error or "unauthorized"
    log.info("admin API request refused", extra={"error": code, "reason": error.reason})
    return (
        status,
        {k: v for k, v in headers if k != "content-type"},
        {
            "error": code,
            "message": error.description,
        },
    )


class TokenCheck:
    """Steps 2-4 of the module docstring: the caller behind a bearer token, or a refusal."""

    def __init__(self, reader: TokenReader, *, audience: str, clock: Clock) -> None:
        self._reader = reader
        self._audience = audience
        self._clock = clock

    async def caller(self, token: str) -> Caller:
        try:
            claims = await self._reader.claims(token)
            if claims is None:
                raise InvalidToken("not a token of this server")
            if claims["aud"] != self._audience:
                raise InvalidToken("audience is not the admin API")
            if not await self._reader.is_active(claims, int(self._clock())):
                raise InvalidToken("expired, revoked, or its client is disabled")
        except TemporarilyUnavailable:
            raise VerifierUnavailable("token store unavailable") from None
        scope = claims.get("scope")
        scopes = parse_scope(scope) if isinstance(scope, str) else None
        return Caller(str(claims["client_id"]), scopes or frozenset())


def _header(scope: Mapping[str, Any], name: bytes) -> list[str]:
    return [v.decode("latin-1") for k, v in scope["headers"] if k == name]


def _body_refusal(scope: Mapping[str, Any]) -> tuple[int, str, str] | None:
    """The admin API reads bodies of a declared length, at most MAX_BODY bytes."""
    length = _header(scope, b"content-length")
    if length and (not length[0].isdigit() or int(length[0]) > MAX_BODY):
        return 413, "body_too_large", f"the request body is limited to {MAX_BODY} bytes"
    if not length and _header(scope, b"transfer-encoding"):
        return 411, "length_required", "send the request body with a Content-Length"
    return None


class Gate:
    """Authenticates every request to the admin API (but its OpenAPI document and docs page)
    before the app sees it, and bounds the body; the accepted :class:`Caller` goes into the
    request state."""

    def __init__(self, app: ASGIApp, check: TokenCheck) -> None:
        self.app = app
        self._check = check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route_path = scope["path"][len(scope.get("root_path", "")) :]
        if scope["type"] != "http" or route_path in _PUBLIC:
            await self.app(scope, receive, send)
            return
        try:
            caller = await self._authenticate(scope)
        except BearerError as error:
            await _send(send, *render_refusal(error))
            return
        except Exception:
            log.exception("admin API authentication failed")
            await _send(send, 500, {}, SERVER_ERROR)
            return
        refused = _body_refusal(scope)
        if refused is not None:
            status, code, message = refused
            await _send(send, status, {}, {"error": code, "message": message})
            return
        scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, _no_store(send))

    async def _authenticate(self, scope: Mapping[str, Any]) -> Caller:
        authorization = _header(scope, b"authorization")
        query = scope.get("query_string", b"").decode("latin-1")
        # RFC 6750 §2: "Clients MUST NOT use more than one method to transmit the token".
        in_query = any(name == "access_token" for name, _ in parse_qsl(query))
        token = bearer_credentials(authorization, token_in_query=in_query)
        return await self._check.caller(token)


# RFC 6749 §5.1's rule for answers holding credentials, kept for every admin API answer: they
# hold secrets (once), client settings and the audit trail.
_NO_STORE = [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]


def _no_store(send: Send) -> Send:
    async def sender(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [h for h in message.get("headers", []) if h[0] != b"cache-control"]
            message = {**message, "headers": [*headers, *_NO_STORE]}
        await send(message)

    return sender


async def _send(send: Send, status: int, headers: Mapping[str, str], body: Any) -> None:
    payload = json.dumps(body, separators=(",", ":")).encode()
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()),
    ]
    await _no_store(send)({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


class AdminBearer(OAuth2):
    """The scope a route requires, checked against the caller the :class:`Gate` accepted; its
    OpenAPI description is the client-credentials flow at this server's token endpoint."""

    def __init__(self, *, token_url: str) -> None:
        flow = OAuthFlowClientCredentials(
            tokenUrl=token_url,
            scopes={
                ADMIN_SCOPE: "read and change everything",
                ADMIN_READ_SCOPE: "read everything (never a secret)",
            },
        )
        super().__init__(
            flows=OAuthFlowsModel(clientCredentials=flow),
            scheme_name="tokenward",
            description="An access token of this server for the admin API's audience.",
        )

    # FastAPI injects dependencies by the parameters of __call__, so this signature differs
    # from OAuth2.__call__(request) on purpose: it asks for the route's SecurityScopes too.
    async def __call__(  # type: ignore[override]
        self, request: Request, security_scopes: SecurityScopes
    ) -> Caller:
        caller = request.scope.get("state", {}).get("caller")
        if not isinstance(caller, Caller):
            raise BearerRefused(MissingToken("no caller: the app runs without its gate"))
        if not caller.has(security_scopes.scopes):
            # RFC 6750 §3.1 insufficient_scope: "The request requires higher privileges than
            # provided by the access token."
            raise BearerRefused(InsufficientScope(security_scopes.scopes))
        return caller
