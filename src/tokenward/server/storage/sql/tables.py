"""SQLAlchemy Core tables. Alembic migrations in ``migrations/`` create exactly these."""

from __future__ import annotations

import sqlalchemy as sa

__all__ = [
    "apis",
    "audit_events",
    "client_secrets",
    "clients",
    "metadata",
    "opaque_tokens",
    "operator_sessions",
    "operators",
    "rate_counts",
    "registry_state",
    "revoked_tokens",
    "scopes",
    "secret_fingerprints",
    "signing_keys",
    "usage_minutes",
    "used_assertions",
]

metadata = sa.MetaData()

apis = sa.Table(
    "apis",
    metadata,
    sa.Column("identifier", sa.String(512), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("token_ttl", sa.Integer, nullable=True),
    sa.Column("signing_alg", sa.String(16), nullable=False),
    sa.Column("token_format", sa.String(16), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

scopes = sa.Table(
    "scopes",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column(
        "api_identifier",
        sa.String(512),
        sa.ForeignKey("apis.identifier", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("description", sa.String(500), nullable=False, server_default=""),
)

clients = sa.Table(
    "clients",
    metadata,
    sa.Column("client_id", sa.String(255), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("auth_methods", sa.JSON, nullable=False),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("default_scopes", sa.JSON, nullable=True),
    sa.Column("apis", sa.JSON, nullable=False),
    sa.Column("token_ttl", sa.Integer, nullable=True),
    sa.Column("token_format", sa.String(16), nullable=True),
    sa.Column("grant_types", sa.JSON, nullable=False),
    sa.Column("jwks", sa.JSON, nullable=True),
    sa.Column("jwks_uri", sa.String(2048), nullable=True),
    sa.Column("assertion_alg", sa.String(16), nullable=True),
    sa.Column("not_before", sa.BigInteger, nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    # Migration 0002: APIs whose tokens this client may introspect (RFC 7662 §4).
    sa.Column("introspect_apis", sa.JSON, nullable=True),
    # Migration 0005: moved by every change; a write applies only to the revision it read.
    sa.Column("revision", sa.Integer, nullable=False, server_default="0"),
    # Migration 0004: optional issuance quotas (tokens per minute, per hour).
    sa.Column("quota_per_minute", sa.Integer, nullable=True),
    sa.Column("quota_per_hour", sa.Integer, nullable=True),
)

client_secrets = sa.Table(
    "client_secrets",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column(
        "client_id",
        sa.String(255),
        sa.ForeignKey("clients.client_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("label", sa.String(200), nullable=False, server_default=""),
    sa.Column("digest", sa.String(200), nullable=False),
    # Only for client_secret_jwt clients: the secret itself, AES-GCM encrypted (HMAC needs it).
    sa.Column("encrypted_secret", sa.Text, nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=True),
    sa.Column("last_used_at", sa.BigInteger, nullable=True),
)

signing_keys = sa.Table(
    "signing_keys",
    metadata,
    sa.Column("kid", sa.String(100), primary_key=True),
    sa.Column("alg", sa.String(16), nullable=False),
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("private_key", sa.Text, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("activates_at", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("alg", "generation", name="uq_signing_keys_alg_generation"),
)

registry_state = sa.Table(
    "registry_state",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.BigInteger, nullable=False, index=True),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
)

revoked_tokens = sa.Table(
    "revoked_tokens",
    metadata,
    sa.Column("jti", sa.String(100), primary_key=True),
    sa.Column("client_id", sa.String(255), nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False, index=True),
)

opaque_tokens = sa.Table(
    "opaque_tokens",
    metadata,
    sa.Column("digest", sa.String(100), primary_key=True),
    sa.Column("client_id", sa.String(255), nullable=False, index=True),
    sa.Column("claims", sa.JSON, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False, index=True),
)

used_assertions = sa.Table(
    "used_assertions",
    metadata,
    sa.Column("client_id", sa.String(255), primary_key=True),
    sa.Column("jti", sa.String(255), primary_key=True),
    sa.Column("expires_at", sa.BigInteger, nullable=False, index=True),
)

# Migration 0004: shared counts of the failure throttle and the issuance quotas, written behind
# by every worker (server/counters.py). ``key`` is a digest, never a client id or an address.
rate_counts = sa.Table(
    "rate_counts",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("window", sa.BigInteger, primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False, index=True),
)

# -- console (migration 0007) --------------------------------------------------------------

operators = sa.Table(
    "operators",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("failed_logins", sa.Integer, nullable=False, server_default="0"),
    sa.Column("locked_until", sa.BigInteger, nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("password_changed_at", sa.BigInteger, nullable=False),
    sa.Column("last_login_at", sa.BigInteger, nullable=True),
)

operator_sessions = sa.Table(
    "operator_sessions",
    metadata,
    sa.Column("id_digest", sa.String(64), primary_key=True),
    sa.Column(
        "operator",
        sa.String(100),
        sa.ForeignKey("operators.name", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("csrf_token", sa.String(100), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Column("seen_at", sa.BigInteger, nullable=False),
)

usage_minutes = sa.Table(
    "usage_minutes",
    metadata,
    sa.Column("minute", sa.BigInteger, primary_key=True),
    sa.Column("client_id", sa.String(255), primary_key=True),
    sa.Column("event", sa.String(64), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
)

# Migration 0003: a fingerprint of each pepper and of the key-encryption key (never the value:
# HMAC-SHA-256 of a fixed label under the secret), recorded on first use, so a process started
# with other values is refused before it writes anything.
secret_fingerprints = sa.Table(
    "secret_fingerprints",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("fingerprint", sa.String(128), nullable=False),
    sa.Column("recorded_at", sa.BigInteger, nullable=False),
)
