"""Bearer-token errors at the resource server, as data — RFC 6750 §3 and §3.1.

One class per outcome. Each knows its status, its ``error`` code and a fixed, safe description,
and renders the ``WWW-Authenticate`` challenge and JSON body itself. The precise reason (which
check failed) travels in ``reason`` for logs only; it never reaches the response, and no error
ever carries the token.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import ClassVar

from tokenward.protocol.errors import safe_description

__all__ = [
    "BearerError",
    "InsufficientScope",
    "InvalidRequest",
    "InvalidToken",
    "MissingToken",
    "VerifierUnavailable",
]

Header = tuple[str, str]


def _quoted(value: str) -> str:
    # RFC 6750 §3: error, error_description and scope values use %x20-21 / %x23-5B / %x5D-7E,
    # so a quoted-string never needs escaping: no '"', no '\' and no control characters.
    return '"' + safe_description(value) + '"'


class BearerError(Exception):
    """A request the resource server refuses. ``reason`` is for logs; the rest goes on the wire."""

    status: ClassVar[int] = 401
    error: ClassVar[str | None] = None
    description: ClassVar[str] = ""

    def __init__(self, reason: str = "") -> None:
        self.reason = reason or self.error or "no credentials"
        super().__init__(self.reason)

    def challenge_params(self) -> list[tuple[str, str]]:
        params = []
        if self.error:
            params.append(("error", self.error))
            params.append(("error_description", self.description))
        return params

    def www_authenticate(self, realm: str) -> str | None:
        """RFC 6750 §3: ``Bearer`` with ``realm`` and, if any, the error attributes, once each."""
        params = [("realm", realm), *self.challenge_params()]
        return "Bearer " + ", ".join(f"{name}={_quoted(value)}" for name, value in params)

    def body(self) -> dict[str, str]:
        if self.error is None:
            return {"error_description": self.description}
        return {"error": self.error, "error_description": self.description}

    def response_headers(self, realm: str) -> list[Header]:
        headers = [("content-type", "application/json"), ("cache-control", "no-store")]
        challenge = self.www_authenticate(realm)
        if challenge is not None:
            headers.append(("www-authenticate", challenge))
        return headers

    def render(self, realm: str) -> tuple[int, list[Header], bytes]:
        """Status, headers and body of the HTTP response, for any framework."""
        body = json.dumps(self.body(), separators=(",", ":")).encode()
        return self.status, self.response_headers(realm), body


class MissingToken(BearerError):
    """RFC 6750 §3.1: "If the request lacks any authentication information (e.g., the client
    was unaware that authentication is necessary or attempted using an unsupported
    authentication method), the resource server SHOULD NOT include an error code"."""

    description = "This resource requires a Bearer access token"


class InvalidRequest(BearerError):
    """RFC 6750 §3.1: malformed request, or more than one method of sending the token."""

    status = 400
    error = "invalid_request"
    description = "The request carries a malformed or repeated access token"


class InvalidToken(BearerError):
    """RFC 6750 §3.1 and RFC 9068 §4: expired, revoked, malformed or otherwise invalid."""

    error = "invalid_token"
    description = "The access token is invalid or has expired"


class InsufficientScope(BearerError):
    """RFC 6750 §3.1: "The request requires higher privileges than provided by the access
    token." The challenge MAY carry the scope needed; tokenward always sends it."""

    status = 403
    error = "insufficient_scope"
    description = "The access token lacks a scope this resource requires"

    def __init__(self, required: Iterable[str], reason: str = "") -> None:
        self.required = tuple(dict.fromkeys(required))
        super().__init__(reason or "insufficient scope")

    def challenge_params(self) -> list[tuple[str, str]]:
        return [*super().challenge_params(), ("scope", " ".join(self.required))]


class VerifierUnavailable(BearerError):
    """Keys or the introspection endpoint cannot be reached and nothing usable is cached.

    The token may well be valid, so this is a 503 rather than ``invalid_token``: clients would
    otherwise fetch new tokens and pile load onto an authorization server that is already down.
    """

    status = 503
    error = "temporarily_unavailable"
    description = "The access token cannot be verified right now"

    def www_authenticate(self, realm: str) -> str | None:
        return None

    def response_headers(self, realm: str) -> list[Header]:
        return [*super().response_headers(realm), ("retry-after", "10")]
