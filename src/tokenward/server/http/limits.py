"""Limits on what a client may make the server hold before the application sees a request.

uvicorn's httptools protocol accepts a request head of any size (a 32 MiB header line was
buffered and served) and waits forever for a slow one. :class:`LimitedHttpToolsProtocol`
adds, per connection:

* ``max_header_bytes``: request line plus header fields; past it ``431 Request Header Fields
  Too Large`` (RFC 6585 §5) and the connection closes. The head is counted while it arrives,
  so at most the limit plus one read (64 KiB) is ever buffered;
* ``max_headers``: header fields; past it the same 431;
* ``header_timeout``: from the connection (or the first byte of a later request on it) to the
  end of the head; then ``408 Request Timeout`` (RFC 9110 §15.5.9), or a silent close if
  nothing was sent. Idle keep-alive connections stay governed by uvicorn's keep-alive timeout;
* ``body_timeout``: from the end of the head to the end of the body; then ``408`` and the
  connection closes. The timer is armed only when the body did not arrive with the head, so a
  request in one packet (the token endpoint's usual case) costs nothing. The request's scope
  says so (``BODY_DEADLINE``), and the POST endpoints then skip their own timer and audit the
  timeout (``transport.read_body``);
* a body nobody waits for: once the answer is sent, a request whose body has not fully
  arrived closes the connection (a lingering close, below) instead of reading the rest;
* a full server: past uvicorn's ``limit_concurrency`` (``max_concurrent_connections``) uvicorn
  answers ``503`` in plain text; here the answer is ``503 temporarily_unavailable`` in JSON
  with ``Retry-After`` (RFC 9110 §15.6.4: the server "MAY send a Retry-After header field").

A refused connection, and one answered while its body was still arriving, is closed the way
nginx does it ("lingering close"): the answer is sent, then the write side is shut and
whatever the client still sends is read and dropped for up to ``LINGER_SECONDS``, so the
client reads the answer instead of a connection reset (a socket closed with unread input
sends a reset, which can reach the client before it has read the answer).

Answers are JSON, ``{"error": "invalid_request", "error_description": ...}``, like every
error of the POST endpoints. The limits are the settings of the application uvicorn serves
(``TokenwardApp.transport_limits``); serve with ``http=UVICORN_HTTP`` (``cli/serve.py``).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from tokenward.server.http.transport import BODY_DEADLINE, BODY_TIMED_OUT

__all__ = [
    "BODY_DEADLINE",
    "BODY_TIMED_OUT",
    "LINGER_SECONDS",
    "OVERLOAD_RETRY_AFTER",
    "UVICORN_HTTP",
    "LimitedHttpToolsProtocol",
    "TransportLimits",
]


#: How long a refused connection still reads (and drops) what the client sends.
LINGER_SECONDS = 2.0

#: The ``Retry-After`` (seconds) of the 503 a full server answers.
OVERLOAD_RETRY_AFTER = 1

#: The ``http`` option of uvicorn's config that serves with these limits.
UVICORN_HTTP = "tokenward.server.http.limits:LimitedHttpToolsProtocol"


@dataclass(frozen=True, slots=True)
class TransportLimits:
    """The defaults are the settings' defaults (``settings.py``)."""

    max_header_bytes: int = 16384
    max_headers: int = 100
    header_timeout: float = 10.0
    body_timeout: float = 10.0

    @classmethod
    def of(cls, app: Any) -> TransportLimits:
        """The limits in the settings of ``app`` (through any ASGI middleware wrapping it)."""
        for _ in range(8):
            settings = getattr(app, "transport_limits", None)
            if settings is not None:
                return cls(
                    settings.max_header_bytes,
                    settings.max_headers,
                    settings.header_timeout,
                    settings.body_timeout,
                )
            app = getattr(app, "app", None)
        return cls()


class _Rejected(Exception):
    """Stops the parser once a limit has answered."""


def _answer(status: int, description: str) -> bytes:
    document = {"error": "invalid_request", "error_description": description}
    body = json.dumps(document, separators=(",", ":")).encode()
    return b"".join(
        [
            STATUS_LINE[status],
            b"content-type: application/json\r\ncache-control: no-store\r\n",
            b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body),
            body,
        ]
    )


_OVERLOADED_BODY = json.dumps(
    {"error": "temporarily_unavailable", "error_description": "server busy, retry later"},
    separators=(",", ":"),
).encode()


async def overloaded(scope: Any, receive: Any, send: Any) -> None:
    """The answer past ``limit_concurrency``, in place of uvicorn's plain-text 503."""
    headers = [
        (b"content-type", b"application/json"),
        (b"cache-control", b"no-store"),
        (b"retry-after", b"%d" % OVERLOAD_RETRY_AFTER),
        (b"content-length", b"%d" % len(_OVERLOADED_BODY)),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": _OVERLOADED_BODY, "more_body": False})


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = TransportLimits.of(self.app)
        self._in_head = True
        self._head_started = False
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._rejected = False
        # uvicorn answers past limit_concurrency in plain text; this protocol answers instead.
        self._max_concurrent, self.limit_concurrency = self.limit_concurrency, None

    # -- the head: its size, its field count, its time ---------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head()

    def _start_head(self) -> None:
        self._in_head, self._head_bytes = True, 0
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        self._cancel_body_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._rejected:
            return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if not self._rejected:
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self._reject(431, "request header fields too large")
        elif self._body_timer is None and self.cycle is not None and self.cycle.more_body:
            timeout = self.limits.body_timeout
            self._body_timer = self.loop.call_later(timeout, self._body_timed_out)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_started = True
        if not self._in_head:  # a later request on a kept-alive connection
            self._start_head()

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self.headers) >= self.limits.max_headers:
            self._reject(431, "too many request header fields")
            raise _Rejected
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.limits.max_header_bytes:
            self._reject(431, "request header fields too large")
            raise _Rejected
        self._in_head, self._head_started = False, False
        self._cancel_head_timer()
        self.scope[BODY_DEADLINE] = self.limits.body_timeout  # type: ignore[literal-required]
        if not self._full():
            super().on_headers_complete()
            return
        self.logger.warning("Exceeded concurrency limit.")
        app, self.app = self.app, overloaded  # the app uvicorn starts (or queues) for this one
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def on_message_complete(self) -> None:
        self._cancel_body_timer()
        super().on_message_complete()

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._in_head or self.transport.is_closing():
            return
        if self._head_started or self._head_bytes:
            self._reject(408, "request headers not received in time")
        else:
            self._rejected = True
            self.transport.close()

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_timed_out(self) -> None:
        self._body_timer = None
        cycle = self.cycle
        if cycle is None or not cycle.more_body or self.transport.is_closing():
            return
        cycle.scope[BODY_TIMED_OUT] = True  # type: ignore[literal-required]
        if cycle.response_started:
            self.transport.close()
            return
        cycle.disconnected = True  # the application hears a disconnect; this is the answer
        self._reject(408, "request body not received in time", mid_request=True)

    def _reject(self, status: int, description: str, *, mid_request: bool = False) -> None:
        self._rejected = True
        self._cancel_head_timer()
        if not mid_request and self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # an answer is under way: no second one
            return
        self.transport.write(_answer(status, description))
        self._close_lingering()

    def _close_lingering(self) -> None:
        """Shut the write side after what was written; drop what still arrives (``_rejected``)
        until the client closes or ``LINGER_SECONDS`` have passed."""
        self._rejected = True
        self.flow.resume_reading()  # drained, not left to fill the socket and end in a reset
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    # -- a full server -------------------------------------------------------------------------

    def _full(self) -> bool:
        """uvicorn's own test for ``limit_concurrency``, made here instead (see ``__init__``)."""
        limit = self._max_concurrent
        return limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit)

    # -- a body nobody waits for ---------------------------------------------------------------

    def on_response_complete(self) -> None:
        if self.cycle is not None and self.cycle.more_body and not self.transport.is_closing():
            self._cancel_body_timer()
            self._close_lingering()
            return
        super().on_response_complete()
