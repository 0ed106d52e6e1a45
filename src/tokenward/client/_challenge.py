"""Reading a resource server's refusal: RFC 6750 §3 and §3.1.

The client retries a call once with a fresh token only when the API says the token itself is
bad: "invalid_token ... The access token provided is expired, revoked, malformed, or invalid
for other reasons." A 403 `insufficient_scope` is not cured by a new token of the same scope.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# An auth-param `name=value` (value a token or a quoted-string), or a bare token that starts a
# new challenge (the auth-scheme). RFC 9110 §11.6.1. Commas and spaces between them are skipped.
_ITEM = re.compile(
    r"""(?P<name>[!#$%&'*+.^_`|~0-9A-Za-z-]+)
        (?:\s*=\s*(?P<value>"(?:[^"\\]|\\.)*"|[!#$%&'*+.^_`|~0-9A-Za-z-]+))?""",
    re.VERBOSE,
)


def bearer_error(challenges: Iterable[str]) -> str | None:
    """The `error` of the Bearer challenge among `WWW-Authenticate` values, if any."""
    for header in challenges:
        scheme = None
        for item in _ITEM.finditer(header):
            name, value = item.group("name"), item.group("value")
            if value is None:
                scheme = name.lower()
            elif scheme == "bearer" and name.lower() == "error":
                return _unquote(value)
    return None


def should_retry_with_new_token(status: int, challenges: Iterable[str]) -> bool:
    """401 with `Bearer error="invalid_token"`: drop the token, fetch another, retry once."""
    return status == 401 and bearer_error(challenges) == "invalid_token"


def _unquote(value: str) -> str:
    if value.startswith('"'):
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value
