"""tokenward.client: get, cache and renew Client Credentials tokens (RFC 6749 §4.4).

The adapters for optional libraries live in their own modules:
`tokenward.client.requests.RequestsAuth` and `tokenward.client.httpx2.Httpx2Auth`.
See docs/client.md.
"""

from tokenward.client._assertion import ClientKey
from tokenward.client._cache import Token
from tokenward.client._config import TokenPolicy
from tokenward.client.errors import (
    DiscoveryError,
    TokenEndpointUnavailable,
    TokenError,
    TokenRequestError,
    TokenResponseError,
)
from tokenward.client.httpx import HttpxAuth
from tokenward.client.manager import AsyncTokenManager, TokenManager

__all__ = [
    "AsyncTokenManager",
    "ClientKey",
    "DiscoveryError",
    "HttpxAuth",
    "Token",
    "TokenEndpointUnavailable",
    "TokenError",
    "TokenManager",
    "TokenPolicy",
    "TokenRequestError",
    "TokenResponseError",
]
