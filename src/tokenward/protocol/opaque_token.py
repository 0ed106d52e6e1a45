"""Opaque access tokens: random handles whose meaning lives in the database.

RFC 6749 §10.10: "The probability of an attacker guessing generated tokens ... MUST be less
than or equal to 2^(-128) and SHOULD be less than or equal to 2^(-160)." An opaque token is
:data:`PREFIX` followed by 32 random bytes in base64url (256 bits). The prefix makes a leaked
token recognisable to secret scanners and tells the resource library it is not a JWT (it has
no ``.``). Only the SHA-256 digest is stored: a database dump yields no usable token, and with
256 random bits a plain (unkeyed, fast) digest is as strong as any password hash.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["PREFIX", "is_opaque_token", "opaque_digest", "opaque_token"]

PREFIX = "tw_at_"
_SHAPE = re.compile(r"tw_at_[A-Za-z0-9_-]{43}")


def opaque_token(random_part: str) -> str:
    """The token for 43 base64url characters of randomness (``secrets.token_urlsafe(32)``)."""
    token = PREFIX + random_part
    if not _SHAPE.fullmatch(token):
        raise ValueError("an opaque token needs 32 random bytes in base64url")
    return token


def is_opaque_token(token: str) -> bool:
    return _SHAPE.fullmatch(token) is not None


def opaque_digest(token: str) -> str:
    """Hex SHA-256 of the whole token: the database key."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()
