"""OAuth 2.0 error responses as data (RFC 6749 §5.2, RFC 8707 §2, RFC 7009 §2.2.1).

One class per wire error code. Each carries the HTTP status and a *safe* description chosen by
the server; the precise reason (which may name the client or the failed check) travels in
``reason`` and goes to the audit log only, never to the response.

RFC 6749 §5.2: "Values for the "error_description" parameter MUST NOT include characters
outside the set %x20-21 / %x23-5B / %x5D-7E."

Anything taken from the request and shown in a description (a parameter name) is passed as
``reflected`` and fills the description's ``{}``; :meth:`OAuthError.body` cuts it to
``reflection_limit`` characters (the ``error_reflection_limit`` setting), so a client can never
make the server echo more than that. :func:`clip` bounds request text in a ``reason`` (logs).
"""

from __future__ import annotations

import re
from typing import ClassVar

__all__ = [
    "RETRY_AFTER_SECONDS",
    "AccessDenied",
    "InvalidClient",
    "InvalidRequest",
    "InvalidScope",
    "InvalidTarget",
    "OAuthError",
    "RequestTimeout",
    "ServerError",
    "SlowDown",
    "TemporarilyUnavailable",
    "UnauthorizedClient",
    "UnsupportedGrantType",
    "UnsupportedTokenType",
    "clip",
    "safe_description",
]

#: ``Retry-After`` of a 503: short, so a client is served soon after the database returns.
RETRY_AFTER_SECONDS = 1

_UNSAFE = re.compile(r"[^\x20\x21\x23-\x5B\x5D-\x7E]")
#: Default longest reflected text in an error_description (setting error_reflection_limit).
REFLECTION_LIMIT = 40
#: Longest request text kept in a ``reason`` (audit log).
_REASON_TEXT = 64


def safe_description(text: str) -> str:
    """Drop every character RFC 6749 §5.2 forbids in ``error_description``."""
    return _UNSAFE.sub("", text)


def clip(text: str, limit: int = _REASON_TEXT) -> str:
    """Request text bounded to ``limit`` characters, marked when cut."""
    return text if len(text) <= limit else text[:limit] + "..."


class OAuthError(Exception):
    """Base of every wire error. ``reason`` is for logs; ``description`` is for the client."""

    error: ClassVar[str] = "invalid_request"
    status: ClassVar[int] = 400
    default_description: ClassVar[str | None] = None

    def __init__(
        self,
        description: str | None = None,
        *,
        reason: str | None = None,
        reflected: str | None = None,
    ) -> None:
        text = description if description is not None else self.default_description
        self._template = text
        self.reflected = reflected
        self.description = self.describe(REFLECTION_LIMIT)
        self.reason = reason or self.description or self.error
        super().__init__(self.reason)

    def describe(self, reflection_limit: int) -> str | None:
        """The ``error_description``, with request text cut to ``reflection_limit``."""
        text = self._template
        if text and self.reflected is not None:
            text = text.replace("{}", clip(safe_description(self.reflected), reflection_limit))
        return safe_description(text) if text else None

    def body(self, *, reflection_limit: int = REFLECTION_LIMIT) -> dict[str, str]:
        """The JSON object of RFC 6749 §5.2."""
        out = {"error": self.error}
        description = (
            self.description
            if self.reflected is None or reflection_limit == REFLECTION_LIMIT
            else self.describe(reflection_limit)
        )
        if description:
            out["error_description"] = description
        return out

    def headers(self) -> dict[str, str]:
        """Extra response headers this error requires."""
        return {}


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    """Client authentication failed. One description for every cause (no enumeration)."""

    error = "invalid_client"
    status = 401
    default_description = "client authentication failed"

    def __init__(self, *, reason: str, basic_realm: str | None = None) -> None:
        super().__init__(None, reason=reason)
        self.basic_realm = basic_realm

    def headers(self) -> dict[str, str]:
        # RFC 6749 §5.2: with the Authorization header the server "MUST respond with an
        # HTTP 401 ... and include the WWW-Authenticate response header field matching the
        # authentication scheme used by the client".
        if self.basic_realm is None:
            return {}
        return {"WWW-Authenticate": f'Basic realm="{self.basic_realm}"'}


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"
    default_description = "client is not allowed to use this grant type"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"
    default_description = "only grant_type=client_credentials is supported"


class InvalidScope(OAuthError):
    error = "invalid_scope"


class InvalidTarget(OAuthError):
    error = "invalid_target"
    default_description = "the requested resource is not available to this client"


class UnsupportedTokenType(OAuthError):
    error = "unsupported_token_type"


class AccessDenied(OAuthError):
    error = "access_denied"
    status = 403


class SlowDown(OAuthError):
    """Too many requests: failed authentications (RFC 6749 §2.3.1 brute force) or a client's
    issuance quota. ``slow_down`` is the one registered OAuth error code that means "you ask too
    often, wait" (RFC 8628 §3.5, IANA OAuth Extensions Error registry); 429 and ``Retry-After``
    (RFC 6585 §4, RFC 9110 §10.2.3) say the same in HTTP terms."""

    error = "slow_down"
    status = 429
    default_description = "too many failed attempts, retry later"

    def __init__(self, *, retry_after: int, reason: str, description: str | None = None) -> None:
        super().__init__(description, reason=reason)
        self.retry_after = max(1, retry_after)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class RequestTimeout(OAuthError):
    """The request body did not arrive in time (RFC 9110 §15.5.9 408). The connection is
    closed after the answer."""

    error = "invalid_request"
    status = 408
    default_description = "request body not received in time"

    def headers(self) -> dict[str, str]:
        return {"Connection": "close"}


class TemporarilyUnavailable(OAuthError):
    """A dependency (the database, a signing key) is away for now: 503 with ``Retry-After``
    (RFC 9110 §15.6.4: the server "MAY send a Retry-After header field" to suggest how long
    the client should wait; tokenward always does, so clients back off instead of hammering)."""

    error = "temporarily_unavailable"
    status = 503
    default_description = "the service is temporarily unavailable"

    def __init__(
        self, *, reason: str | None = None, retry_after: int = RETRY_AFTER_SECONDS
    ) -> None:
        super().__init__(None, reason=reason)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class ServerError(OAuthError):
    error = "server_error"
    status = 500
    default_description = "internal error"
