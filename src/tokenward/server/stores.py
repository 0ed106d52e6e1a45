"""The storage ports: what each server component may read and write.

Components depend on these Protocols, never on SQL; ``storage/sql`` implements all of them
over one SQLAlchemy engine (SQLite or PostgreSQL). Each Protocol is small on purpose, so a
reader can see at a glance what a component touches:

* :class:`RegistryStore`: the registry cache reads the snapshot and its version, and one
  client's row on a failed authentication (no writes);
* :class:`KeyStore`: the key ring's rows (insert by rotation, delete when expired);
* :class:`TokenStore`: **every write the token path may do**: an opaque token's row, the
  write-behind "last used" stamps of secrets; plus the revocation and introspection lookups
  and the purge of expired rows. Issuing a JWT writes nothing;
* :class:`ReplayStore`: one row per accepted client assertion ``jti`` (RFC 7523 §3 item 7);
* :class:`AuditStore`: the administrative audit trail;
* :class:`CounterStore`: the shared counts of the failure throttle and the issuance quotas,
  written behind in one statement a second per worker (``server/counters.py``);
* :class:`AdminStore`: registry changes, each written in one transaction together with its
  audit record and a registry-version bump (so every worker reloads).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from tokenward.protocol.errors import TemporarilyUnavailable
from tokenward.protocol.introspection import ClientFacts
from tokenward.protocol.model import Api, Client, ClientSecret, Registry

__all__ = [
    "AdminStore",
    "AuditQuery",
    "AuditRecord",
    "AuditStore",
    "ConflictError",
    "CountIncrement",
    "CounterStore",
    "KeyRow",
    "KeyStore",
    "NewSecretRow",
    "NotFoundError",
    "RegistryStore",
    "ReplayStore",
    "Stores",
    "TokenStore",
    "or_unavailable",
]

log = logging.getLogger("tokenward.stores")
T = TypeVar("T")


class NotFoundError(LookupError):
    """The named record does not exist."""


class ConflictError(ValueError):
    """The change conflicts with what is stored (a duplicate name or id). Safe text."""


async def or_unavailable(operation: Awaitable[T], what: str = "token store") -> T:
    """Await a store operation on a request's path: a store failure is a 503
    ``temporarily_unavailable``, never a guess and never a 500."""
    try:
        return await operation
    except Exception:
        log.exception("%s unavailable", what)
        raise TemporarilyUnavailable(reason=f"{what} unavailable") from None


@dataclass(frozen=True, slots=True)
class KeyRow:
    """A signing key as stored: the private key is AES-GCM sealed (``server/secrets.py``)."""

    kid: str
    alg: str
    generation: int
    private_key: str
    created_at: int
    activates_at: int

    def __repr__(self) -> str:
        return f"KeyRow(kid={self.kid!r}, alg={self.alg!r}, generation={self.generation})"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One administrative event: who (``actor``) did what (``event``) to what (``data``)."""

    at: int
    event: str
    actor: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters of the audit trail; ``before_id`` pages backwards (newest first)."""

    limit: int = 50
    before_id: int | None = None
    client_id: str | None = None
    event: str | None = None
    actor: str | None = None
    since: int | None = None
    until: int | None = None


@dataclass(frozen=True, slots=True)
class NewSecretRow:
    """A client secret about to be stored: its keyed digest, never its value (except the
    sealed copy a client_secret_jwt client needs for HMAC)."""

    id: str
    digest: str
    label: str
    created_at: int
    expires_at: int | None = None
    encrypted_secret: str | None = field(default=None, repr=False)


class RegistryStore(Protocol):
    async def version(self) -> int: ...

    async def load_registry(self) -> Registry: ...

    async def client_record(self, client_id: str) -> tuple[int, Client | None]:
        """The registry version and one client with its secrets, read together (one row)."""
        ...


@dataclass(frozen=True, slots=True)
class CountIncrement:
    """``amount`` more events for ``key`` in the window starting at ``window``; the row may be
    deleted from ``expires_at`` on."""

    key: str
    window: int
    amount: int
    expires_at: int


class CounterStore(Protocol):
    async def exchange_counts(
        self,
        increments: Sequence[CountIncrement],
        *,
        read: Iterable[str],
        hot: int,
        now: int,
    ) -> dict[tuple[str, int], int]:
        """Add ``increments`` (one statement), then return the shared totals by (key, window)
        of the ``read`` keys and of every live row counting at least ``hot``."""
        ...

    async def purge_counts(self, now: int) -> int:
        """Delete expired rows; how many."""
        ...


class KeyStore(Protocol):
    async def list_keys(self) -> list[KeyRow]: ...

    async def insert_key(self, row: KeyRow) -> bool:
        """Insert; False when another process inserted that (alg, generation) first."""
        ...

    async def delete_keys(self, kids: Iterable[str]) -> None: ...


class TokenStore(Protocol):
    async def store_opaque(
        self, digest: str, *, client_id: str, claims: Mapping[str, Any], expires_at: int
    ) -> None: ...

    async def touch_secrets(self, last_used: Mapping[str, int]) -> None: ...

    async def find_opaque(self, digest: str) -> dict[str, Any] | None: ...

    async def delete_opaque(self, digest: str, *, client_id: str) -> bool: ...

    async def revoke_jti(self, jti: str, *, client_id: str, expires_at: int) -> None: ...

    async def token_facts(self, client_id: str, jti: str) -> tuple[ClientFacts | None, bool]: ...

    async def purge_expired(self, now: int) -> dict[str, int]: ...


class ReplayStore(Protocol):
    async def use_assertion(self, client_id: str, jti: str, *, expires_at: int) -> bool:
        """Record a ``jti``; False when it was already used (atomic across processes)."""
        ...


class AuditStore(Protocol):
    async def add_audit(self, records: Sequence[AuditRecord]) -> None: ...

    async def list_audit(self, query: AuditQuery) -> list[dict[str, Any]]: ...


class AdminStore(Protocol):
    """Registry reads and writes for the admin layer. Every write takes its audit record and
    stores it in the same transaction as the change."""

    async def list_apis(self) -> list[Api]: ...

    async def get_api(self, identifier: str) -> Api: ...

    async def scope_descriptions(self) -> dict[str, str]: ...

    async def create_api(
        self, api: Api, *, now: int, descriptions: Mapping[str, str], audit: AuditRecord
    ) -> None: ...

    async def update_api(
        self,
        identifier: str,
        *,
        add_scopes: Iterable[str],
        remove_scopes: Iterable[str],
        values: Mapping[str, Any],
        audit: AuditRecord,
    ) -> None: ...

    async def delete_api(self, identifier: str, *, audit: AuditRecord) -> None: ...

    async def list_clients(self) -> list[Client]: ...

    async def get_client(self, client_id: str) -> Client: ...

    async def create_client(
        self, client: Client, *, now: int, secret: NewSecretRow | None, audit: AuditRecord
    ) -> None: ...

    async def save_client(self, client: Client, *, now: int, audit: AuditRecord) -> None: ...

    async def delete_client(self, client_id: str, *, audit: AuditRecord) -> None: ...

    async def add_secret(
        self, client_id: str, secret: NewSecretRow, *, audit: AuditRecord
    ) -> ClientSecret: ...

    async def revoke_secret(
        self, client_id: str, secret_id: str, *, expires_at: int | None, audit: AuditRecord
    ) -> None:
        """Delete the secret now (``expires_at`` None) or let it expire then."""
        ...


@dataclass(frozen=True)
class Stores:
    """Every port, as the composition root hands them to the components."""

    registry: RegistryStore
    keys: KeyStore
    tokens: TokenStore
    replay: ReplayStore
    audit: AuditStore
    admin: AdminStore
    close: Callable[[], Awaitable[None]]
    counters: CounterStore
