"""The transport rules of the three POST endpoints (RFC 6749 §3.2, §2.3.1), over raw ASGI.

This is the hot path, so it skips the framework: headers are read once (:func:`read_head`),
the body is read with a hard size cap and a time limit (``body_timeout``: ``408``) and parsed
by ``tokenward.protocol.params`` (strict, no multipart library).

Who is asking (:meth:`HttpPolicy.source`): the socket's peer address, unless that peer is a
configured trusted proxy (``trusted_proxies``). Then the forwarding header the proxies set
(``trusted_proxy_header``: ``X-Forwarded-For`` or RFC 7239 ``Forwarded``, only that one: a
proxy passes the other through untouched, so a client could write it) is read from the right,
skipping trusted hops; the first untrusted hop is the source. A request id sent in
``X-Request-Id`` is kept only from a trusted proxy; otherwise one is generated.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import os
import random
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote_to_bytes

from tokenward.protocol.errors import InvalidRequest, RequestTimeout
from tokenward.protocol.params import MAX_BODY_BYTES, parse_form, parse_json
from tokenward.server.settings import Settings

__all__ = [
    "BODY_DEADLINE",
    "BODY_TIMED_OUT",
    "HttpPolicy",
    "Receive",
    "RequestHead",
    "http_policy",
    "read_body",
    "read_head",
    "read_params",
]

Receive = Callable[[], Awaitable[dict[str, Any]]]
#: Scope keys set by the HTTP protocol (``limits.py``): it enforces ``body_timeout`` itself
#: (no timer here, none at all when the body came with the head); the body timed out.
BODY_DEADLINE = "tokenward.body_deadline"
BODY_TIMED_OUT = "tokenward.body_timed_out"
_CREDENTIAL_QUERY = (b"client_secret", b"client_assertion", b"client_id")
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:@/+=-]{1,128}")
_IDS = random.Random(os.urandom(32))  # noqa: S311 (request ids are not secrets)
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class BodyTooLarge(InvalidRequest):
    status = 413
    default_description = "request body too large"


@dataclass(slots=True)
class RequestHead:
    """The headers the POST endpoints use, read in one pass."""

    authorization: bytes | None = None
    content_type: bytes = b""
    content_length: int | None = None
    origin: bytes | None = None
    forwarded: list[bytes] = field(default_factory=list)
    forwarded_for: list[bytes] = field(default_factory=list)
    request_id: bytes | None = None
    authorization_count: int = 0


def read_head(scope: dict[str, Any]) -> RequestHead:
    head = RequestHead()
    for name, value in scope["headers"]:
        if name == b"authorization":
            head.authorization = value
            head.authorization_count += 1
        elif name == b"content-type":
            head.content_type = value
        elif name == b"content-length":
            head.content_length = int(value) if value.isdigit() else None
        elif name == b"origin":
            head.origin = value
        elif name == b"x-forwarded-for":
            head.forwarded_for.append(value)
        elif name == b"forwarded":
            head.forwarded.append(value)
        elif name == b"x-request-id":
            head.request_id = value
    return head


def _address(text: str) -> _Address | None:
    text = text.strip().strip('"')
    if text.startswith("["):  # RFC 7239 §6: "[2001:db8::1]:4711"
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # "192.0.2.1:4711"
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _forwarded_for(values: Iterable[bytes]) -> list[str]:
    """The ``for=`` of each RFC 7239 element, in order; anything unreadable as ``?``."""
    hops = []
    for value in values:
        for element in value.decode("latin-1").split(","):
            found = "?"
            for pair in element.split(";"):
                key, _, item = pair.strip().partition("=")
                if key.lower() == "for":
                    found = item
            hops.append(found)
    return hops


def _x_forwarded_for(values: Iterable[bytes]) -> list[str]:
    return [hop for value in values for hop in value.decode("latin-1").split(",")]


@dataclass(frozen=True)
class HttpPolicy:
    """Transport settings of the POST endpoints (see ``Settings``)."""

    trusted_proxies: Sequence[_Network] = ()
    proxy_header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for"
    body_timeout: float = 10.0
    reflection_limit: int = 40
    cors_origins: frozenset[bytes] = frozenset()

    def without_cors(self) -> HttpPolicy:
        return dataclasses.replace(self, cors_origins=frozenset())

    def trusts(self, address: _Address | None) -> bool:
        return address is not None and any(address in net for net in self.trusted_proxies)

    def source(self, peer: str, head: RequestHead) -> str:
        """The client's address: the peer's, or the right-most untrusted forwarded hop."""
        if not self.trusted_proxies or not self.trusts(_address(peer)):
            return peer
        if self.proxy_header == "forwarded":
            hops = _forwarded_for(head.forwarded)
        else:
            hops = _x_forwarded_for(head.forwarded_for)
        source = peer
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                break  # the proxy at `source` got this garbage from its client: stop there
            source = str(address)
            if not self.trusts(address):
                break
        return source

    def request_id(self, peer: str, head: RequestHead) -> str:
        """A fresh id, or the one a trusted proxy sent."""
        given = head.request_id
        trusted = bool(self.trusted_proxies) and self.trusts(_address(peer))
        if given is not None and trusted and _REQUEST_ID.fullmatch(given):
            return given.decode("ascii")
        # An id, not a secret: unique and not guessable in advance is enough, so a generator
        # seeded from the OS, without a system call per request.
        return f"{_IDS.getrandbits(64):016x}"


def http_policy(settings: Settings) -> HttpPolicy:
    return HttpPolicy(
        trusted_proxies=tuple(
            ipaddress.ip_network(item.strip(), strict=False) for item in settings.trusted_proxies
        ),
        proxy_header=settings.trusted_proxy_header,
        body_timeout=settings.body_timeout,
        reflection_limit=settings.error_reflection_limit,
        cors_origins=frozenset(
            origin.encode("latin-1") for origin in settings.cors_allowed_origins
        ),
    )


async def _read_all(scope: dict[str, Any], receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            if scope.get(BODY_TIMED_OUT):
                raise RequestTimeout(reason="body not received within body_timeout")
            raise InvalidRequest(reason="client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(reason="body over limit")
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


async def read_body(
    scope: dict[str, Any],
    receive: Receive,
    limit: int = MAX_BODY_BYTES,
    *,
    seconds: float | None = None,
) -> bytes:
    """The whole body, at most ``limit`` bytes, within ``seconds`` (else 408).

    Under ``tokenward serve`` the HTTP protocol keeps that time (``BODY_DEADLINE``). Under
    another ASGI server the time runs from the first body message: a body that came with the
    request (the usual case) needs no timer, and a body that never starts is left to that
    server's own read timeout."""
    if seconds is None or BODY_DEADLINE in scope:
        return await _read_all(scope, receive, limit)
    first = await receive()
    if first["type"] == "http.request" and not first.get("more_body", False):
        body: bytes = first.get("body", b"")
        if len(body) > limit:
            raise BodyTooLarge(reason="body over limit")
        return body
    try:
        async with asyncio.timeout(seconds):
            return await _read_all(scope, _replay(first, receive), limit)
    except TimeoutError:
        raise RequestTimeout(reason="body not received within body_timeout") from None


def _replay(first: dict[str, Any], receive: Receive) -> Receive:
    """``receive``, giving ``first`` once before the messages still to come."""
    pending = [first]

    async def again() -> dict[str, Any]:
        return pending.pop() if pending else await receive()

    return again


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
    scope: dict[str, Any],
    head: RequestHead,
    receive: Receive,
    *,
    json_body: bool,
    body_seconds: float | None = None,
) -> tuple[bytes | None, dict[str, str]]:
    """Validate transport and parse the body of a token, introspection or revocation call.

    The body (at most ``MAX_BODY_BYTES``) is read before any refusal, so the answer comes
    after the request and the connection stays usable: answered while its body was still
    arriving, a connection is closed (``limits.py``), and a client that sent the body
    after the head could read a reset instead of the answer. Only a declared length over
    the limit is refused at once."""
    if head.content_length is not None and head.content_length > MAX_BODY_BYTES:
        raise BodyTooLarge(reason="content-length over limit")
    body = await read_body(scope, receive, seconds=body_seconds)
    query: bytes = scope.get("query_string", b"")
    if query and _credentials_in(query):
        # RFC 6749 §2.3.1: credentials "MUST NOT be included in the request URI".
        raise InvalidRequest("credentials must not be sent in the URL", reason="query creds")
    if head.authorization_count > 1:
        raise InvalidRequest("only one Authorization header", reason="two auth headers")
    media, charset = _media_type(head.content_type)
    if charset not in (None, b"utf-8"):
        raise InvalidRequest("only UTF-8 is accepted", reason="charset")
    if media == b"application/x-www-form-urlencoded":
        return head.authorization, parse_form(body)
    if media == b"application/json" and json_body:
        return head.authorization, parse_json(body)
    raise InvalidRequest(
        "Content-Type must be application/x-www-form-urlencoded", reason="content type"
    )
