"""Client configuration and the one policy object for lifetimes, renewal and retries.

Sans-IO: no HTTP import here. Every number the client uses to decide *when* lives in
`TokenPolicy`; docs/client.md explains each default.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple
from urllib.parse import urlsplit

from tokenward.client._assertion import ClientKey

AuthMethod = Literal[
    "client_secret_basic", "client_secret_post", "private_key_jwt", "client_secret_jwt"
]
AUTH_METHODS: tuple[AuthMethod, ...] = (
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "client_secret_jwt",
)
#: Methods that send a JWT assertion (RFC 7523 §2.2) rather than the secret itself.
JWT_METHODS = frozenset({"private_key_jwt", "client_secret_jwt"})

# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


class Secret:
    """A string that never shows itself in `repr`, `str` or formatted output."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__


@dataclass(frozen=True, kw_only=True)
class TokenPolicy:
    """When to renew, how long to trust a token, how to retry. All durations in seconds.

    A token obtained at `t` with lifetime `L` is renewed in the background from
    `t + L * (refresh_fraction ± refresh_jitter)`, and at the latest `min_margin` before it
    expires (but never before `t + L / 2`); callers wait only once it has expired.
    """

    refresh_fraction: float = 0.8
    refresh_jitter: float = 0.05
    min_margin: float = 30.0
    default_lifetime: float = 300.0
    max_attempts: int = 4
    backoff_initial: float = 0.5
    backoff_max: float = 8.0
    timeout: float = 10.0

    def __post_init__(self) -> None:
        low, high = (
            self.refresh_fraction - self.refresh_jitter,
            self.refresh_fraction + self.refresh_jitter,
        )
        if not (self.refresh_jitter >= 0 and low > 0 and high < 1):
            raise ValueError("refresh_fraction ± refresh_jitter must stay inside (0, 1)")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        durations = (self.min_margin, self.backoff_initial, self.backoff_max, self.timeout)
        if min(durations) < 0 or not all(map(math.isfinite, durations)):
            raise ValueError("durations must be finite and not negative")
        if not (0 < self.default_lifetime < math.inf):
            raise ValueError("default_lifetime must be positive and finite")

    def refresh_at(self, obtained_at: float, lifetime: float, unit: float) -> float:
        """When to start renewing; `unit` is uniform in [0, 1) and spreads the instances."""
        fraction = self.refresh_fraction + self.refresh_jitter * (2 * unit - 1)
        ahead = min(lifetime * fraction, lifetime - self.min_margin)
        return obtained_at + max(ahead, lifetime / 2)

    def backoff(self, attempt: int, unit: float, retry_after: float | None) -> float:
        """Delay before retry number `attempt` (1-based): exponential with equal jitter,
        at least the server's `Retry-After`, never above `backoff_max`."""
        ceiling = min(self.backoff_max, self.backoff_initial * 2.0 ** (attempt - 1))
        delay = ceiling / 2 + unit * ceiling / 2
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, self.backoff_max)


class CacheKey(NamedTuple):
    """One cached token per (authorization server, client, scope set, resource)."""

    issuer: str
    client_id: str
    scopes: tuple[str, ...]
    resource: str | None


@dataclass(frozen=True, kw_only=True)
class ClientConfig:
    """Who the client is and where it gets tokens; validated once, at construction."""

    issuer: str | None
    token_endpoint: str | None
    client_id: str
    client_secret: Secret
    scopes: tuple[str, ...]
    resource: str | None
    auth_method: AuthMethod
    client_key: ClientKey | None = None
    #: The ``aud`` of JWT assertions: the issuer identifier (RFC 7523bis).
    assertion_audience: str | None = None

    @classmethod
    def build(
        cls,
        *,
        issuer: str | None,
        token_endpoint: str | None,
        client_id: str,
        client_secret: str | None,
        scopes: Sequence[str],
        resource: str | None,
        auth_method: str | None,
        client_key: ClientKey | None = None,
        assertion_audience: str | None = None,
    ) -> ClientConfig:
        if issuer is None and token_endpoint is None:
            raise ValueError("give the issuer (for discovery) or the token_endpoint")
        for url in (issuer, token_endpoint):
            if url is not None:
                _check_absolute(url, "issuer or token_endpoint")
        if not client_id:
            raise ValueError("client_id must not be empty")
        method = check_auth_method(
            auth_method or ("private_key_jwt" if client_key else "client_secret_basic")
        )
        _check_credentials(method, client_secret, client_key)
        audience = assertion_audience or issuer
        if method in JWT_METHODS and audience is None:
            raise ValueError(f"{method} needs the issuer (the assertion's audience)")
        return cls(
            issuer=issuer,
            token_endpoint=token_endpoint,
            client_id=client_id,
            client_secret=Secret(client_secret or ""),
            scopes=normalize_scopes(scopes),
            resource=check_resource(resource),
            auth_method=method,
            client_key=client_key,
            assertion_audience=audience,
        )

    def key(self, scopes: Sequence[str] | None, resource: str | None) -> CacheKey:
        """The cache key for a request; None means this client's configured default."""
        return CacheKey(
            issuer=self.issuer or self.token_endpoint or "",
            client_id=self.client_id,
            scopes=self.scopes if scopes is None else normalize_scopes(scopes),
            resource=self.resource if resource is None else check_resource(resource),
        )


def normalize_scopes(scopes: Sequence[str]) -> tuple[str, ...]:
    """Sorted and deduplicated, so `["b", "a"]` and `["a", "b", "a"]` share one cache entry."""
    if isinstance(scopes, str):
        raise TypeError("scopes is a sequence of scope names, not one space-separated string")
    for scope in scopes:
        if not _SCOPE_TOKEN.fullmatch(scope):
            raise ValueError(f"invalid scope name {scope!r} (RFC 6749 §3.3)")
    return tuple(sorted(set(scopes)))


def check_resource(resource: str | None) -> str | None:
    """RFC 8707 §2: "an absolute URI ... MUST NOT include a fragment component"."""
    if resource is not None:
        _check_absolute(resource, "resource")
        if "#" in resource:
            raise ValueError("resource must not include a fragment (RFC 8707 §2)")
    return resource


def check_auth_method(method: str) -> AuthMethod:
    for known in AUTH_METHODS:
        if method == known:
            return known
    raise ValueError(f"auth_method must be one of {', '.join(AUTH_METHODS)}")


def _check_credentials(method: AuthMethod, secret: str | None, key: ClientKey | None) -> None:
    if method == "private_key_jwt":
        if key is None:
            raise ValueError("private_key_jwt needs client_key (a ClientKey)")
        if secret is not None:
            raise ValueError("give client_key or client_secret, not both")
    elif not secret:
        raise ValueError(f"{method} needs client_secret")
    elif key is not None:
        raise ValueError("client_key is for private_key_jwt")


def _check_absolute(url: str, what: str) -> None:
    parts = urlsplit(url)
    if not (parts.scheme and parts.netloc):
        raise ValueError(f"{what} must be an absolute URL, got {url!r}")
