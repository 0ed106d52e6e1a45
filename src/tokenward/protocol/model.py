"""The registry as frozen values: APIs (resource servers), their scopes, clients, secrets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "AUTH_METHODS",
    "SECRET_METHODS",
    "Api",
    "AuthMethod",
    "Client",
    "ClientSecret",
    "Registry",
    "SigningAlg",
    "TokenFormat",
]

TokenFormat = Literal["jwt", "opaque"]
#: Algorithms access tokens are signed with (asymmetric only; RFC 9068 §2.1 requires RS256 support).
SigningAlg = Literal["ES256", "RS256", "PS256", "EdDSA"]
#: Client authentication methods tokenward implements (RFC 8414 names).
AuthMethod = Literal[
    "client_secret_basic", "client_secret_post", "private_key_jwt", "client_secret_jwt"
]

SECRET_METHODS: frozenset[AuthMethod] = frozenset({"client_secret_basic", "client_secret_post"})
AUTH_METHODS: frozenset[AuthMethod] = SECRET_METHODS | {"private_key_jwt", "client_secret_jwt"}


@dataclass(frozen=True, slots=True)
class Api:
    """A resource server: its identifier is the ``aud`` of the tokens issued for it."""

    identifier: str
    name: str
    scopes: frozenset[str]
    token_ttl: int | None = None
    signing_alg: SigningAlg = "ES256"
    token_format: TokenFormat = "jwt"


@dataclass(frozen=True, slots=True)
class ClientSecret:
    """One active secret. Only its keyed digest is known; never the secret itself, except
    for client_secret_jwt clients, whose secret is also kept AES-GCM encrypted (``encrypted``)
    because verifying an HMAC needs the key itself (docs/client-authentication.md)."""

    id: str
    digest: str
    label: str = ""
    created_at: int = 0
    expires_at: int | None = None
    last_used_at: int | None = None
    encrypted: str | None = field(default=None, repr=False)

    def usable_at(self, now: int) -> bool:
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True, slots=True)
class Client:
    client_id: str
    name: str
    enabled: bool = True
    auth_methods: frozenset[AuthMethod] = SECRET_METHODS
    scopes: frozenset[str] = frozenset()
    default_scopes: frozenset[str] | None = None
    apis: frozenset[str] = frozenset()
    token_ttl: int | None = None
    token_format: TokenFormat | None = None
    secrets: tuple[ClientSecret, ...] = ()
    grant_types: frozenset[str] = frozenset({"client_credentials"})
    jwks: Mapping[str, object] | None = None
    jwks_uri: str | None = None
    assertion_alg: str | None = None
    not_before: int | None = None
    created_at: int = 0
    #: APIs whose tokens this client may introspect (a resource server), RFC 7662 §4.
    introspect_apis: frozenset[str] = frozenset()
    metadata: Mapping[str, str] = field(default_factory=dict)
    #: The stored row's revision, moved by every change: an admin write applies only to the
    #: revision it read (optimistic concurrency), so two changes cannot overwrite each other.
    revision: int = field(default=0, compare=False)
    #: Optional issuance quotas: tokens per minute and per hour (429 ``slow_down`` past them).
    quota_per_minute: int | None = None
    quota_per_hour: int | None = None

    def effective_default_scopes(self) -> frozenset[str]:
        """Scopes used when a request omits ``scope``: all granted ones unless configured."""
        return self.scopes if self.default_scopes is None else self.default_scopes


@dataclass(frozen=True, slots=True)
class Registry:
    """A consistent in-memory snapshot of APIs and clients, as the hot path reads it."""

    apis: Mapping[str, Api]
    clients: Mapping[str, Client]
    version: int = 0
    scope_api: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, apis: list[Api], clients: list[Client], version: int = 0) -> Registry:
        scope_api = {scope: api.identifier for api in apis for scope in api.scopes}
        return cls(
            apis={api.identifier: api for api in apis},
            clients={client.client_id: client for client in clients},
            version=version,
            scope_api=scope_api,
        )

    def client_apis(self, client: Client) -> frozenset[str]:
        """Every API the client may get tokens for: granted explicitly or through a scope."""
        from_scopes = {self.scope_api[s] for s in client.scopes if s in self.scope_api}
        return frozenset(from_scopes) | client.apis
