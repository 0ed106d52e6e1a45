"""Scope grammar (RFC 6749 §3.3).

    scope       = scope-token *( SP scope-token )
    scope-token = 1*( %x21 / %x23-5B / %x5D-7E )

Scopes are case-sensitive. ``*`` is a tokenward convention (seed 002): every scope granted to
the client.
"""

from __future__ import annotations

import re

from tokenward.protocol.errors import InvalidScope

__all__ = ["ALL_SCOPES", "format_scope", "is_scope_token", "parse_scope"]

ALL_SCOPES = "*"
_TOKEN = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+")
MAX_SCOPES = 64


def is_scope_token(value: str) -> bool:
    """True when ``value`` is one RFC 6749 §3.3 scope-token."""
    return _TOKEN.fullmatch(value) is not None


def parse_scope(value: str | None) -> frozenset[str] | None:
    """Parse a ``scope`` parameter; None when omitted (or empty, RFC 6749 §3.2)."""
    if value is None or value == "":
        return None
    parts = value.split(" ")
    if len(parts) > MAX_SCOPES:
        raise InvalidScope("too many scopes requested", reason="too many scopes")
    for part in parts:
        # Empty parts come from leading, trailing or doubled spaces: the grammar has exactly
        # one SP between tokens.
        if not is_scope_token(part):
            raise InvalidScope("scope is malformed", reason="scope grammar")
    return frozenset(parts)


def format_scope(scopes: frozenset[str] | set[str]) -> str:
    """Render scopes space-delimited, sorted so the result is stable."""
    return " ".join(sorted(scopes))
