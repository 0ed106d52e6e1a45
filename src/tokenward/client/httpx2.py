"""`httpx2.Auth` for bearer tokens: the same as `HttpxAuth`, for the httpx2 fork.

httpx2's clients accept only `httpx2.Auth` instances (and httpx's only `httpx.Auth`), so each
library gets its own class. Needs `pip install httpx2`.
"""

from __future__ import annotations

# The ignores keep mypy quiet on machines without httpx2 (an optional dependency).
import httpx2  # type: ignore[import-not-found, unused-ignore]

from tokenward.client._bearer import BearerFlows

__all__ = ["Httpx2Auth"]


class Httpx2Auth(BearerFlows[httpx2.Request, httpx2.Response], httpx2.Auth):  # type: ignore[misc, unused-ignore]
    """Bearer auth for `httpx2.Client` / `httpx2.AsyncClient`; see `HttpxAuth`."""
