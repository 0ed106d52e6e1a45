"""JSON responses over raw ASGI, with the headers RFC 6749 §5.1 requires."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tokenward.protocol.errors import OAuthError

__all__ = ["Send", "error_response", "json_response", "send_json"]

Send = Any

# RFC 6749 §5.1: "The authorization server MUST include the HTTP "Cache-Control" response
# header field with a value of "no-store" in any response containing tokens, credentials, or
# other sensitive information, as well as the "Pragma" response header field with a value of
# "no-cache"." tokenward sends both on every token, introspection and revocation response.
NO_STORE = [
    (b"content-type", b"application/json"),
    (b"cache-control", b"no-store"),
    (b"pragma", b"no-cache"),
]


async def send_json(
    send: Send,
    status: int,
    body: Mapping[str, Any] | None,
    headers: Mapping[str, str] | None = None,
) -> None:
    """A JSON answer; ``body`` None sends no body (204)."""
    payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
    raw = [*NO_STORE, (b"content-length", str(len(payload)).encode())]
    if headers:
        raw.extend((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


async def error_response(send: Send, error: OAuthError) -> None:
    await send_json(send, error.status, error.body(), error.headers())


def json_response(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()
