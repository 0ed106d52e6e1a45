"""One request to a POST endpoint (token, introspection, revocation) as the components see it.

The HTTP layer fills ``authorization`` and ``params`` after the transport checks; the client
authenticator records what the caller presented in ``credentials``, so that a failure at any
later step is audited with the client id and method it concerns. ``source`` (the client's
address, ``http/transport.py``) and ``request_id`` come from the HTTP layer; ``audit`` holds
the fields every audit event of this request carries (``events.bind_request``): the
authenticator adds which secret or assertion key authenticated the client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tokenward.protocol.client_auth import PresentedCredentials

__all__ = ["Exchange"]


@dataclass(slots=True)
class Exchange:
    endpoint: str
    authorization: bytes | None
    params: Mapping[str, str]
    now: int
    credentials: PresentedCredentials | None = None
    #: Set by the client authenticator once the caller is authenticated (metrics label a
    #: failure with its client id only then).
    authenticated: bool = False
    source: str = "-"
    request_id: str = ""
    audit: dict[str, Any] = field(default_factory=dict)

    @property
    def client_id(self) -> str | None:
        return self.credentials.client_id if self.credentials is not None else None

    @property
    def method(self) -> str | None:
        return self.credentials.method if self.credentials is not None else None

    def __repr__(self) -> str:
        return f"Exchange(endpoint={self.endpoint!r}, client_id={self.client_id!r})"
