"""`httpx.Auth` for bearer tokens from a token manager: `httpx.Client(auth=HttpxAuth(tokens))`."""

from __future__ import annotations

import httpx

from tokenward.client._bearer import BearerFlows

__all__ = ["HttpxAuth"]


class HttpxAuth(BearerFlows[httpx.Request, httpx.Response], httpx.Auth):
    """Bearer auth for `httpx.Client` (with a `TokenManager`) or `httpx.AsyncClient` (with an
    `AsyncTokenManager`); retries a request once when the API answers 401 `invalid_token`.

    `scopes` and `resource` pick the token (default: the manager's).
    """
