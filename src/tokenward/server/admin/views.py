"""What the admin layer shows: one set of view models for the CLI (``--json``), the admin REST
API and the console. No view has a field for a secret's value or digest, except
:class:`NewSecretView`, which exists only in the answer that created the secret."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from tokenward.protocol.model import Api, AuthMethod, Client, ClientSecret, SigningAlg, TokenFormat
from tokenward.server.keys import KeyState
from tokenward.server.stores import OperatorRow

__all__ = [
    "AdminApiSetup",
    "ApiView",
    "AuditEventView",
    "AuditPage",
    "ClientCreated",
    "ClientView",
    "KeyView",
    "NewSecretView",
    "OperatorView",
    "SecretView",
    "TokensRevokedView",
    "UsageOverview",
    "UsageSeries",
    "timestamp",
]


def timestamp(value: int | None) -> datetime | None:
    """Seconds since the epoch as an aware UTC datetime (JSON: ``2026-11-30T12:00:00Z``)."""
    return None if value is None else datetime.fromtimestamp(value, UTC)


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class ApiView(_View):
    identifier: str
    name: str
    scopes: list[str]
    token_ttl: int | None
    signing_alg: SigningAlg
    token_format: TokenFormat

    @classmethod
    def of(cls, api: Api) -> ApiView:
        return cls(
            identifier=api.identifier,
            name=api.name,
            scopes=sorted(api.scopes),
            token_ttl=api.token_ttl,
            signing_alg=api.signing_alg,
            token_format=api.token_format,
        )


class SecretView(_View):
    id: str
    label: str
    created_at: datetime | None
    expires_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, secret: ClientSecret) -> SecretView:
        return cls(
            id=secret.id,
            label=secret.label,
            created_at=timestamp(secret.created_at),
            expires_at=timestamp(secret.expires_at),
            last_used_at=timestamp(secret.last_used_at),
        )


class ClientView(_View):
    client_id: str
    name: str
    enabled: bool
    auth_methods: list[AuthMethod]
    scopes: list[str]
    default_scopes: list[str] | None
    apis: list[str]
    token_ttl: int | None
    token_format: TokenFormat | None
    jwks_uri: str | None
    #: How many public keys are registered inline (private_key_jwt), if any.
    jwks_keys: int | None
    assertion_alg: str | None
    introspect_apis: list[str]
    quota_per_minute: int | None
    quota_per_hour: int | None
    not_before: datetime | None
    created_at: datetime | None
    secrets: list[SecretView]

    @classmethod
    def of(cls, client: Client) -> ClientView:
        keys = client.jwks.get("keys") if client.jwks is not None else None
        defaults = client.default_scopes
        return cls(
            client_id=client.client_id,
            name=client.name,
            enabled=client.enabled,
            auth_methods=sorted(client.auth_methods),
            scopes=sorted(client.scopes),
            default_scopes=None if defaults is None else sorted(defaults),
            apis=sorted(client.apis),
            token_ttl=client.token_ttl,
            token_format=client.token_format,
            jwks_uri=client.jwks_uri,
            jwks_keys=len(keys) if isinstance(keys, list) else None,
            assertion_alg=client.assertion_alg,
            introspect_apis=sorted(client.introspect_apis),
            quota_per_minute=client.quota_per_minute,
            quota_per_hour=client.quota_per_hour,
            not_before=timestamp(client.not_before),
            created_at=timestamp(client.created_at or None),
            secrets=[SecretView.of(s) for s in client.secrets],
        )


class NewSecretView(_View):
    """A secret just created: the only answer that ever carries its value."""

    client_id: str
    secret_id: str
    client_secret: str
    label: str
    expires_at: datetime | None
    #: Set when an operator-chosen secret looks weak.
    warning: str | None = None

    def __repr__(self) -> str:
        return f"NewSecretView(client_id={self.client_id!r}, secret_id={self.secret_id!r})"

    __str__ = __repr__


class ClientCreated(_View):
    client: ClientView
    secret: NewSecretView | None


class KeyView(_View):
    kid: str
    alg: str
    state: Literal["next", "active", "retired"]
    activates_at: datetime | None
    retires_at: datetime | None
    removed_at: datetime | None

    @classmethod
    def of(cls, state: KeyState) -> KeyView:
        return cls(
            kid=state.kid,
            alg=state.alg,
            state=state.state,
            activates_at=timestamp(state.activates_at),
            retires_at=timestamp(state.retires_at),
            removed_at=timestamp(state.removable_at),
        )


class AuditEventView(_View):
    id: int
    at: datetime | None
    event: str
    actor: str
    data: dict[str, Any]

    @classmethod
    def of(cls, row: dict[str, Any]) -> AuditEventView:
        return cls(
            id=row["id"],
            at=timestamp(row["at"]),
            event=row["event"],
            actor=row["actor"],
            data=dict(row["data"]),
        )


# -- console operators and usage statistics -------------------------------------------------


class OperatorView(_View):
    name: str
    role: str
    enabled: bool
    #: Set while the account is locked after repeated wrong passwords.
    locked_until: datetime | None
    created_at: datetime | None
    last_login_at: datetime | None

    @classmethod
    def of(cls, row: OperatorRow, *, now: int) -> OperatorView:
        locked = row.locked_until if row.locked_until and row.locked_until > now else None
        return cls(
            name=row.name,
            role=row.role,
            enabled=row.enabled,
            locked_until=timestamp(locked),
            created_at=timestamp(row.created_at),
            last_login_at=timestamp(row.last_login_at),
        )


class UsageSeries(_View):
    """Counts in equal buckets: ``issued[i]`` tokens and ``failed[i]`` failures in the bucket
    starting at ``start + i * bucket_seconds``."""

    start: datetime
    bucket_seconds: int
    issued: list[int]
    failed: list[int]

    @property
    def total_issued(self) -> int:
        return sum(self.issued)

    @property
    def total_failed(self) -> int:
        return sum(self.failed)


class UsageOverview(_View):
    last_hour: UsageSeries
    last_day: UsageSeries
    #: (client id, failures in the last day), most first.
    top_failing: list[tuple[str, int]]


class AuditPage(_View):
    """One page of the audit trail, newest first."""

    events: list[AuditEventView]
    #: Where the next (older) page starts: pass it back as ``cursor``; null on the last page.
    next_cursor: str | None


class TokensRevokedView(_View):
    client_id: str
    #: Every token of the client issued before this moment is inactive.
    not_before: datetime

    @classmethod
    def of(cls, client_id: str, not_before: int) -> TokensRevokedView:
        return cls(client_id=client_id, not_before=datetime.fromtimestamp(not_before, UTC))


class AdminApiSetup(_View):
    """The admin REST API's audience and clients, as ``tokenward init`` found or made them."""

    api: ApiView
    token_endpoint: str
    #: Clients granted the read-write admin scope.
    admin_clients: list[str]
    #: The admin client created just now, with its secret (shown once); null if one existed.
    created: ClientCreated | None
