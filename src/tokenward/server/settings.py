"""All server settings in one typed object, read from ``TOKENWARD_*`` environment variables.

docs/configuration.md is generated from this class (``python -m tokenward.server.settings``)
and a test fails when the two disagree.
"""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "render_reference"]


class Settings(BaseSettings):
    """tokenward server configuration."""

    model_config = SettingsConfigDict(
        env_prefix="TOKENWARD_", env_file=".env", extra="ignore", frozen=True
    )

    database_url: str = Field(
        "sqlite:///var/tokenward.db",
        description="SQLAlchemy URL. `sqlite:///path` (default, embedded) or "
        "`postgresql://user:pass@host/db` (psycopg 3) to run several instances.",
    )
    issuer: str = Field(
        "http://127.0.0.1:8000",
        description="Issuer identifier (RFC 8414): the `iss` of every token and the base URL of "
        "every endpoint. Must be https, except on a loopback host (development, with a warning).",
    )
    allow_insecure_http: bool = Field(
        False, description="Allow an `http://` issuer on a non-loopback host. Never in production."
    )
    pepper: SecretStr | None = Field(
        None,
        description="Server pepper for HMAC-SHA-256 client-secret digests (32+ random bytes, any "
        "string). Never stored in the database. Unset on SQLite: generated into `secrets_file`.",
    )
    pepper_id: str = Field("p1", description="Label stored with each digest, for pepper rotation.")
    previous_peppers: dict[str, SecretStr] = Field(
        default_factory=dict,
        description='Older peppers by id, as JSON (`{"p0": "..."}`): their digests still verify.',
    )
    key_encryption_key: SecretStr | None = Field(
        None,
        description="Key that encrypts signing keys at rest (AES-256-GCM), as 64 hex chars or any "
        "string (hashed to 32 bytes). Unset on SQLite: generated into `secrets_file`.",
    )
    secrets_file: Path = Field(
        Path("var/secrets.json"),
        description="Where development peppers and key-encryption keys are generated when not set "
        "(SQLite only). Mode 0600.",
    )
    token_ttl: int = Field(
        900, ge=30, le=86400, description="Default access-token lifetime in seconds (15 min)."
    )
    max_token_ttl: int = Field(
        86400,
        ge=60,
        le=7 * 86400,
        description="Upper bound on any API or client lifetime override; also how long a retired "
        "key stays published.",
    )
    signing_alg: Literal["ES256", "RS256", "PS256", "EdDSA"] = Field(
        "ES256", description="Default signing algorithm of new APIs."
    )
    key_publication_delay: int = Field(
        600,
        ge=0,
        description="Seconds a rotated-in key is published in the JWKS before it signs, so every "
        "verifier's cached JWKS (max-age `jwks_max_age`) has it.",
    )
    key_rotation_days: float = Field(
        30, ge=0, description="Rotate signing keys automatically this often (0 turns it off)."
    )
    jwks_max_age: int = Field(300, ge=0, description="`Cache-Control: max-age` of the JWKS.")
    cache_refresh_seconds: float = Field(
        2.0,
        gt=0,
        le=60,
        description="Each worker re-reads the registry when it changed, checking this often: the "
        "bound on how long a disabled client or revoked secret keeps working.",
    )
    auto_migrate: bool = Field(
        True,
        description="Upgrade the schema on start. Turn off when several instances share "
        "PostgreSQL and run `tokenward migrate` in the deploy step instead.",
    )
    json_body: bool = Field(
        True, description="Accept `application/json` token requests (seed 002's extension)."
    )
    failed_auth_limit: int = Field(
        20,
        ge=1,
        description="Failed client authentications per (client id, source address) per minute "
        "before that address gets 429 for that client id (shared by every worker and instance).",
    )
    audit_log: bool = Field(True, description="Write one JSON audit event per token request.")
    log_format: Literal["json", "console"] = Field("json", description="Log rendering.")
    log_level: str = Field("INFO", description="Log level of the tokenward loggers.")
    assertion_max_lifetime: int = Field(
        300, ge=10, description="Longest accepted lifetime (exp - iat) of a client assertion."
    )
    assertion_allow_token_endpoint_audience: bool = Field(
        False,
        description="Also accept the token endpoint URL as a client assertion `aud` (legacy "
        "clients; weakens the 2025 audience-injection fix, logged when used).",
    )
    jwks_uri_allow_private: bool = Field(
        False,
        description="Let client `jwks_uri` resolve to loopback or private addresses (tests only).",
    )
    jwks_uri_timeout: float = Field(
        5.0,
        gt=0,
        le=30,
        description="Whole-request time limit for fetching a client's `jwks_uri` (64 KiB max).",
    )
    jwks_uri_cache_seconds: int = Field(
        300, ge=0, description="How long a client's fetched `jwks_uri` document is used."
    )
    jwks_uri_refetch_cooldown: int = Field(
        30,
        ge=0,
        description="Least time between two fetches of one `jwks_uri` when an assertion names an "
        "unknown `kid` (key rotation), so assertions cannot drive a fetch storm.",
    )
    opaque_token_purge_seconds: int = Field(
        300, ge=10, description="How often expired opaque tokens and revocations are purged."
    )

    # -- client authentication hardening (docs/security.md) --
    failed_auth_limit_per_address: int = Field(
        100,
        ge=1,
        description="Failed client authentications per source address per minute, whatever the "
        "client id, before that address gets 429 (an IPv6 address counts by its /64).",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Reverse proxies whose forwarding header names the client, as a JSON list of "
        'addresses or networks (`["10.0.0.0/8"]`). Empty: the socket peer is the client.',
    )
    trusted_proxy_header: Literal["x-forwarded-for", "forwarded"] = Field(
        "x-forwarded-for",
        description="The header the trusted proxies set (`X-Forwarded-For` or RFC 7239 "
        "`Forwarded`); the other is ignored. Read from the right, skipping trusted hops.",
    )
    auth_failure_lookup_timeout: float = Field(
        0.25,
        gt=0,
        le=5,
        description="Longest wait, in seconds, for the single-row read of a client id after a "
        "failed authentication (a client created a moment ago on another instance works at "
        "once); past it the read is skipped until the database answers again.",
    )
    max_header_bytes: int = Field(
        16384,
        ge=1024,
        le=1048576,
        description="Largest request line plus headers, in bytes; larger gets 431.",
    )
    max_headers: int = Field(
        100, ge=8, le=1000, description="Most request header fields; more gets 431."
    )
    header_timeout: float = Field(
        10.0,
        gt=0,
        le=300,
        description="Seconds a client has to send the request line and headers once it starts "
        "(or once it connects); then 408 and the connection is closed.",
    )
    body_timeout: float = Field(
        10.0,
        gt=0,
        le=300,
        description="Seconds the token, introspection and revocation endpoints wait for a whole "
        "request body; then 408 `invalid_request` and the connection is closed.",
    )
    error_reflection_limit: int = Field(
        40,
        ge=0,
        le=200,
        description="Most characters of request input (a parameter name) reflected in an "
        "`error_description`.",
    )
    cors_allowed_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed to call the token endpoint from a browser, as a JSON list "
        '(`["https://docs.example.com"]`); empty: no CORS. Never `*`.',
    )
    max_concurrent_connections: int = Field(
        4096,
        ge=1,
        le=1_000_000,
        description="Open connections (or requests in progress) per worker process before a "
        "new request gets 503 `temporarily_unavailable` with `Retry-After: 1` and is closed.",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item.strip(), strict=False)
            except ValueError:
                raise ValueError(f"not an IP address or network: {item!r}") from None
        return value

    @field_validator("cors_allowed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            parts = urlsplit(origin)
            if parts.scheme not in ("https", "http") or not parts.netloc or parts.path:
                raise ValueError(f"not an origin (scheme://host[:port]): {origin!r}")
        return value

    @field_validator("issuer")
    @classmethod
    def _issuer_shape(cls, value: str) -> str:
        parts = urlsplit(value)
        # RFC 8414 §2: "a case-sensitive URL that uses the https scheme and has no query or
        # fragment components".
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ValueError("issuer must be an absolute https URL")
        if parts.query or parts.fragment or "#" in value or "?" in value:
            raise ValueError("issuer must not have a query or fragment")
        return value.rstrip("/") if parts.path in ("", "/") else value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def insecure_issuer(self) -> bool:
        return urlsplit(self.issuer).scheme == "http"

    def check_transport(self) -> None:
        """RFC 6749 §3.2: TLS is required; plain http only on loopback or when allowed."""
        host = urlsplit(self.issuer).hostname or ""
        loopback = host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")
        if self.insecure_issuer and not loopback and not self.allow_insecure_http:
            raise ValueError(
                "an http:// issuer is only allowed on a loopback host; use https or set "
                "TOKENWARD_ALLOW_INSECURE_HTTP=true for a closed test network"
            )


def render_reference() -> str:
    """The configuration reference, in Markdown, from the field descriptions."""
    lines = [
        "# Configuration reference",
        "",
        "Generated from `tokenward.server.settings.Settings` by "
        "`python -m tokenward.server.settings > docs/configuration.md`; a test keeps it current.",
        "Every setting is read from the environment variable shown (or a `.env` file).",
        "",
        "| variable | default | description |",
        "|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = "(unset)" if default is None else f"`{default}`"
        if isinstance(default, dict) and not default:
            shown = "`{}`"
        lines.append(f"| `TOKENWARD_{name.upper()}` | {shown} | {field.description} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_reference())
