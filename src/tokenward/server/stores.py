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
  audit record and a registry-version bump (so every worker reloads);
* :class:`OperatorStore`: the console's operator accounts, their lockout state and their
  server-side sessions (each account change written with its audit record);
* :class:`UsageStore`: per-minute token counts per client, added in one batch per audit flush
  by the usage-statistics sink (``server/usage.py``), read by the console's overview;
* :class:`RegistryChanges`: changes pushed as they commit (PostgreSQL NOTIFY), so workers
  reload at once rather than at their next poll.

:data:`store_health` (a :class:`StoreHealth`) is this process's view of its database: every
store operation on a request's path (:func:`or_unavailable`) and every background loop reports
to it; it logs one line when the database goes away and one when it returns, and ``/readyz``
reports it.
"""

from __future__ import annotations

import logging
import time
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
    "ConcurrentChangeError",
    "ConflictError",
    "CountIncrement",
    "CounterStore",
    "KeyRow",
    "KeyStore",
    "NewSecretRow",
    "NotFoundError",
    "OperatorRow",
    "OperatorStore",
    "RegistryChanges",
    "RegistryStore",
    "ReplayStore",
    "SessionRow",
    "StoreHealth",
    "Stores",
    "TokenStore",
    "UsageCount",
    "UsageStore",
    "describe_failure",
    "or_unavailable",
    "store_health",
]

log = logging.getLogger("tokenward.stores")
T = TypeVar("T")


class NotFoundError(LookupError):
    """The named record does not exist."""


class ConflictError(ValueError):
    """The change conflicts with what is stored (a duplicate name or id). Safe text."""


class StoreHealth:
    """Whether this process reaches its database, as the latest store operation found.

    Fed by :func:`or_unavailable` (the request path) and the runtime's loops; read by
    ``/readyz``. It logs one line when the database goes away and one when it returns, rather
    than a traceback per refused request. There is one per process (``store_health``): a
    process talks to one database, and the components that report to it need no wiring.
    """

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self.reachable = True
        self.changed_at = monotonic()
        self.failures = 0  # failed operations since the database went away

    def failed(self, what: str, exc: BaseException) -> None:
        """A store operation failed: the first failure of an outage is logged, the rest not."""
        self.failures += 1
        if not self.reachable:
            log.debug(
                "%s failed while the database is unreachable: %s", what, describe_failure(exc)
            )
            return
        self.reachable = False
        self.changed_at = self._monotonic()
        log.warning(
            "database unreachable (%s failed: %s): known clients get tokens from the cache; "
            "what needs the database answers 503 until it returns",
            what,
            describe_failure(exc),
            extra={"store": "unreachable"},
        )

    def succeeded(self) -> None:
        if self.reachable:
            return
        down = self._monotonic() - self.changed_at
        log.warning(
            "database reachable again after %.1f s (%d operations failed meanwhile)",
            down,
            self.failures,
            extra={"store": "reachable"},
        )
        self.reachable = True
        self.changed_at = self._monotonic()
        self.failures = 0

    async def observe(self, operation: Awaitable[T], what: str) -> T:
        """Await ``operation``, recording whether the store answered; re-raises its failure."""
        try:
            result = await operation
        except Exception as exc:
            self.failed(what, exc)
            raise
        self.succeeded()
        return result

    def seconds_in_state(self) -> float:
        return self._monotonic() - self.changed_at


def describe_failure(exc: BaseException) -> str:
    """One short line naming a store failure: the driver's error when SQLAlchemy wraps one
    (its first line only: the rest names the statement and parameters)."""
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"{type(cause).__name__}: {text[:200]}" if text else type(cause).__name__


#: This process's view of its database.
store_health = StoreHealth()


class ConcurrentChangeError(RuntimeError):
    """The record changed since it was read (its revision moved): read it again and retry."""


async def or_unavailable(operation: Awaitable[T], what: str = "token store") -> T:
    """Await a store operation on a request's path: a store failure is a 503
    ``temporarily_unavailable`` with ``Retry-After``, never a guess and never a 500."""
    try:
        return await store_health.observe(operation, what)
    except Exception:
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


class RegistryChanges(Protocol):
    """Pushed registry changes (PostgreSQL LISTEN/NOTIFY); the poll remains the fallback."""

    async def listen(self, changed: Callable[[], Awaitable[None]]) -> None:
        """Call ``changed`` after committed registry changes, until cancelled; reconnects by
        itself."""
        ...


class KeyStore(Protocol):
    async def list_keys(self) -> list[KeyRow]: ...

    async def insert_key(self, row: KeyRow) -> bool:
        """Insert; False when another process inserted that (alg, generation) first."""
        ...

    async def delete_keys(self, kids: Iterable[str]) -> None: ...

    async def set_key_activation(self, kid: str, activates_at: int) -> None:
        """Move a key's activation time (a ``next`` key brought forward when the active key
        is retired). Raises :class:`NotFoundError` for an unknown ``kid``."""
        ...


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
        descriptions: Mapping[str, str] | None = None,
    ) -> None:
        """``descriptions``: of added scopes, and replacing those of existing ones."""
        ...

    async def delete_api(self, identifier: str, *, audit: AuditRecord) -> None: ...

    async def list_clients(self) -> list[Client]: ...

    async def get_client(self, client_id: str) -> Client: ...

    async def create_client(
        self, client: Client, *, now: int, secret: NewSecretRow | None, audit: AuditRecord
    ) -> None: ...

    async def save_client(self, client: Client, *, now: int, audit: AuditRecord) -> None:
        """Write ``client`` if the stored row is still at ``client.revision`` (and move it on);
        ``ConcurrentChangeError`` when another change came first, so none is lost."""
        ...

    async def delete_client(self, client_id: str, *, audit: AuditRecord) -> None: ...

    async def add_secret(
        self, client_id: str, secret: NewSecretRow, *, audit: AuditRecord
    ) -> ClientSecret: ...

    async def revoke_secret(
        self, client_id: str, secret_id: str, *, expires_at: int | None, audit: AuditRecord
    ) -> None:
        """Delete the secret now (``expires_at`` None) or let it expire then."""
        ...


@dataclass(frozen=True, slots=True)
class OperatorRow:
    """A console operator as stored: the argon2id hash, never the password."""

    name: str
    password_hash: str = field(repr=False)
    role: str
    enabled: bool
    failed_logins: int
    locked_until: int | None
    created_at: int
    password_changed_at: int
    last_login_at: int | None


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A console session: the SHA-256 of its cookie value (never the value) and the per-session
    CSRF token every form carries."""

    id_digest: str
    operator: str
    csrf_token: str = field(repr=False)
    created_at: int
    expires_at: int
    seen_at: int


class OperatorStore(Protocol):
    """Operator accounts and sessions. Disabling an operator or changing a password deletes
    their sessions in the same transaction."""

    async def list_operators(self) -> list[OperatorRow]: ...

    async def get_operator(self, name: str) -> OperatorRow: ...

    async def create_operator(self, row: OperatorRow, *, audit: AuditRecord) -> None: ...

    async def update_operator(
        self, name: str, values: Mapping[str, Any], *, end_sessions: bool, audit: AuditRecord
    ) -> None: ...

    async def login_failed(
        self,
        name: str,
        *,
        limit: int,
        lock_until: int,
        audit: AuditRecord,
        lock_audit: AuditRecord,
    ) -> bool:
        """Count one failure (atomically); at ``limit`` lock the account until ``lock_until``
        (recording ``lock_audit`` too) and start counting again. True when this one locked it."""
        ...

    async def login_succeeded(self, name: str, session: SessionRow, *, audit: AuditRecord) -> None:
        """Reset the failure count, stamp the login and store the new session."""
        ...

    async def find_session(self, id_digest: str) -> tuple[SessionRow, OperatorRow] | None: ...

    async def touch_session(self, id_digest: str, *, seen_at: int) -> None: ...

    async def end_session(self, id_digest: str, *, audit: AuditRecord | None) -> None: ...

    async def purge_sessions(self, now: int, *, idle: int) -> int:
        """Delete sessions past their end or idle longer than ``idle`` seconds."""
        ...


@dataclass(frozen=True, slots=True)
class UsageCount:
    """Token-endpoint events of one client in one minute (``minute``: epoch seconds, a
    multiple of 60; ``event``: ``token.issued``, ``token.failed``, ``introspection.failed``...)."""

    minute: int
    client_id: str
    event: str
    count: int


class UsageStore(Protocol):
    async def add_usage(self, counts: Sequence[UsageCount]) -> None:
        """Add each count to its (minute, client, event) row, in one transaction."""
        ...

    async def usage_series(self, since: int, *, client_id: str | None = None) -> list[UsageCount]:
        """Per minute and event from minute ``since`` on, summed over every client (``client_id``
        ``"*"``) or for one client."""
        ...

    async def top_clients(self, since: int, *, suffix: str, limit: int) -> list[tuple[str, int]]:
        """The ``limit`` clients with the most events ending in ``suffix`` since ``since``."""
        ...

    async def purge_usage(self, before: int) -> int: ...


@dataclass(frozen=True)
class Stores:
    """Every port, as the composition root hands them to the components."""

    registry: RegistryStore
    keys: KeyStore
    tokens: TokenStore
    replay: ReplayStore
    audit: AuditStore
    admin: AdminStore
    operators: OperatorStore
    usage: UsageStore
    counters: CounterStore
    close: Callable[[], Awaitable[None]]
    #: None where the database cannot push changes (SQLite): the poll alone then.
    changes: RegistryChanges | None = None
