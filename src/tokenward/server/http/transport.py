"""The transport rules of the three POST endpoints (RFC 6749 §3.2, §2.3.1), over raw ASGI.

This is the hot path, so it skips the framework: headers are read once, the body is read with
a hard size cap and parsed by ``tokenward.protocol.params`` (strict, no multipart library).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote_to_bytes

from tokenward.protocol.errors import InvalidRequest
from tokenward.protocol.params import MAX_BODY_BYTES, parse_form, parse_json

__all__ = ["Receive", "read_body", "read_params"]

Receive = Callable[[], Awaitable[dict[str, Any]]]
_CREDENTIAL_QUERY = (b"client_secret", b"client_assertion", b"client_id")


class BodyTooLarge(InvalidRequest):
    status = 413
    default_description = "request body too large"


async def read_body(receive: Receive, limit: int = MAX_BODY_BYTES) -> bytes:
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InvalidRequest(reason="client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(reason="body over limit")
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _headers(scope: dict[str, Any]) -> tuple[bytes | None, bytes, int | None]:
    authorization: bytes | None = None
    content_type = b""
    length: int | None = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            if authorization is not None:
                raise InvalidRequest("only one Authorization header", reason="two auth headers")
            authorization = value
        elif name == b"content-type":
            content_type = value
        elif name == b"content-length":
            length = int(value) if value.isdigit() else None
    return authorization, content_type, length


def _credentials_in(query: bytes) -> bool:
    # Match the names percent-decoded too: "client%5Fsecret" is still client_secret.
    decoded = unquote_to_bytes(query.replace(b"+", b" "))
    return any(name in query or name in decoded for name in _CREDENTIAL_QUERY)


def _media_type(content_type: bytes) -> tuple[bytes, bytes | None]:
    media, _, rest = content_type.partition(b";")
    charset = None
    for param in rest.split(b";"):
        key, _, value = param.strip().partition(b"=")
        if key.lower() == b"charset":
            charset = value.strip(b'"').lower()
    return media.strip().lower(), charset


async def read_params(
    scope: dict[str, Any], receive: Receive, *, json_body: bool
) -> tuple[bytes | None, dict[str, str]]:
    """Validate transport and parse the body of a token, introspection or revocation call."""
    query: bytes = scope.get("query_string", b"")
    if query and _credentials_in(query):
        # RFC 6749 §2.3.1: credentials "MUST NOT be included in the request URI".
        raise InvalidRequest("credentials must not be sent in the URL", reason="query creds")
    authorization, content_type, length = _headers(scope)
    if length is not None and length > MAX_BODY_BYTES:
        raise BodyTooLarge(reason="content-length over limit")
    media, charset = _media_type(content_type)
    if charset not in (None, b"utf-8"):
        raise InvalidRequest("only UTF-8 is accepted", reason="charset")
    body = await read_body(receive)
    if media == b"application/x-www-form-urlencoded":
        return authorization, parse_form(body)
    if media == b"application/json" and json_body:
        return authorization, parse_json(body)
    raise InvalidRequest(
        "Content-Type must be application/x-www-form-urlencoded", reason="content type"
    )
