"""POST {issuer}/introspect (RFC 7662) and POST {issuer}/revoke (RFC 7009), raw ASGI.

Same transport rules as the token endpoint (``read_params``: POST only, form or JSON body with
a size cap, no credentials in the URL), same client authentication, same error rendering.
Every response carries ``Cache-Control: no-store`` (RFC 6749 §5.1; checklist IN-09).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from tokenward.protocol.errors import InvalidRequest, OAuthError, ServerError
from tokenward.server.http.rendering import error_response, send_json
from tokenward.server.http.token import Receive, read_params
from tokenward.server.service import TokenService

__all__ = ["introspection_endpoint", "revocation_endpoint"]

log = logging.getLogger("tokenward.http")
_Work = Callable[[bytes | None, dict[str, str]], Awaitable[Mapping[str, Any]]]


async def _serve(
    service: TokenService,
    endpoint: str,
    work: _Work,
    scope: dict[str, Any],
    receive: Receive,
    send: Any,
) -> None:
    if scope["method"] != "POST":
        # RFC 7662 §2.1 / RFC 7009 §2.1: "using HTTP POST"; GET would put tokens in logs
        # (RFC 7662 §4).
        error = InvalidRequest(f"the {endpoint} endpoint accepts POST only", reason="method")
        await send_json(send, 405, error.body(), {"Allow": "POST"})
        return
    try:
        authorization, params = await read_params(
            scope, receive, json_body=service.settings.json_body
        )
        body = await work(authorization, params)
    except OAuthError as error:
        await error_response(send, error)
        return
    except Exception:
        log.exception("%s endpoint failed", endpoint)
        await error_response(send, ServerError(reason="unhandled"))
        return
    await send_json(send, 200, body)


async def introspection_endpoint(
    service: TokenService, scope: dict[str, Any], receive: Receive, send: Any
) -> None:
    await _serve(service, "introspection", service.lifecycle.introspect, scope, receive, send)


async def revocation_endpoint(
    service: TokenService, scope: dict[str, Any], receive: Receive, send: Any
) -> None:
    async def revoke(authorization: bytes | None, params: dict[str, str]) -> Mapping[str, Any]:
        await service.lifecycle.revoke(authorization, params)
        # RFC 7009 §2.2: "The content of the response body is ignored by the client".
        return {}

    await _serve(service, "revocation", revoke, scope, receive, send)
