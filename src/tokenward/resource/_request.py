"""Finding the bearer token in a request — RFC 6750 §2, shared by every adapter.

Only the ``Authorization: Bearer`` header is a credential (§2.1). The URI query method "SHOULD
NOT be used" (§2.3) and the form-body method is not enabled (§2.2), so an ``access_token``
parameter alone counts as no credentials; next to a header it is "more than one method"
(§2: "Clients MUST NOT use more than one method"), which is ``invalid_request``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import parse_qsl

from tokenward.resource.errors import InvalidRequest, MissingToken

__all__ = [
    "FORM_BODY_LIMIT",
    "bearer_credentials",
    "has_access_token_param",
    "is_form_body",
]

#: Form bodies up to this size are inspected for an ``access_token`` parameter.
FORM_BODY_LIMIT = 64 * 1024

# RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token. Credentials that are not one run of
# visible ASCII ("Bearer", "Bearer a b", two joined headers) make a malformed request:
# invalid_request. One run outside the b64token alphabet is a malformed *token* (RFC 6750 §3.1
# "invalid_token ... malformed"), e.g. a JWS in JSON serialization; the verifier rejects it.
_CREDENTIALS = re.compile(r"[\x21-\x7E]+")
# Two Authorization headers that a WSGI server joined with a comma, the second one Bearer.
_JOINED_BEARER = re.compile(r",\s*bearer(?:\s|$)", re.IGNORECASE)


def _token_from_header(value: str) -> str | None:
    scheme, _, rest = value.strip(" \t").partition(" ")
    # RFC 9110 §11.1: "It uses a case-insensitive token to identify the authentication scheme".
    if scheme.lower() != "bearer":
        if _JOINED_BEARER.search(value):
            raise InvalidRequest("several Authorization headers")
        return None  # another scheme (Basic, DPoP, ...): no Bearer credentials at all
    token = rest.lstrip(" ")
    if _CREDENTIALS.fullmatch(token) is None:
        raise InvalidRequest("malformed Bearer credentials")  # empty, "a b", "a, Bearer b"
    return token


def bearer_credentials(
    authorization: Sequence[str], *, token_in_query: bool = False, token_in_form: bool = False
) -> str:
    """The bearer token, or :class:`MissingToken` (401) / :class:`InvalidRequest` (400)."""
    if len(authorization) > 1:
        raise InvalidRequest("several Authorization headers")
    token = _token_from_header(authorization[0]) if authorization else None
    if token is None:
        raise MissingToken("no Bearer credentials")
    if token_in_query or token_in_form:
        raise InvalidRequest("access token sent by more than one method")
    return token


def has_access_token_param(encoded: str | bytes) -> bool:
    """Whether an ``application/x-www-form-urlencoded`` string has an ``access_token`` name."""
    text = encoded.decode("latin-1") if isinstance(encoded, bytes) else encoded
    return any(name == "access_token" for name, _ in parse_qsl(text, keep_blank_values=True))


def is_form_body(method: str, content_type: str | None) -> bool:
    """RFC 6750 §2.2's conditions on where a form-encoded token could be: not GET, form type."""
    if method in ("GET", "HEAD") or content_type is None:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/x-www-form-urlencoded"
