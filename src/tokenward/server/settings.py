"""All server settings in one typed object, read from ``TOKENWARD_*`` environment variables.

docs/configuration.md is generated from this class (``python -m tokenward.server.settings``)
and a test fails when the two disagree.

Every problem with the settings is a :class:`ConfigError`: one line naming the setting and what
is allowed, which the command line prints with exit status 2 (never a traceback). Secrets may
come from files (``TOKENWARD_PEPPER_FILE``...), for Kubernetes secrets and systemd credentials.
The server's local state (the SQLite database, the generated development secrets) lives in one
directory, ``TOKENWARD_HOME``, resolved to an absolute path, so every command finds the same
state from any working directory.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin
from urllib.parse import urlsplit

import annotated_types
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from tokenward.protocol.transport import is_loopback_host

__all__ = [
    "FILE_SETTINGS",
    "ConfigError",
    "Settings",
    "default_home",
    "load_settings",
    "render_reference",
    "unknown_variables",
]

#: Settings that may also be read from a file named by ``TOKENWARD_<NAME>_FILE``.
FILE_SETTINGS = ("database_url", "pepper", "previous_peppers", "key_encryption_key")
#: ``TOKENWARD_*`` variables read by other parts of tokenward (not server settings).
OTHER_VARIABLES = frozenset(
    {"TOKENWARD_CLIENT_ID", "TOKENWARD_CLIENT_SECRET", "TOKENWARD_SKIP_APT"}
)
#: Variables with this prefix belong to the test suite and are never warned about.
TEST_PREFIX = "TOKENWARD_TEST_"
DEFAULT_DATABASE_URL = "sqlite:///tokenward.db"
DEFAULT_SECRETS_FILE = Path("secrets.json")
#: Database URL schemes tokenward can use, and the driver each needs.
DATABASE_SCHEMES = ("sqlite", "sqlite+aiosqlite", "postgresql", "postgres", "postgresql+psycopg")
#: Least length of a pepper or key-encryption key off loopback: 256 bits.
MIN_SECRET_BYTES = 32


class ConfigError(ValueError):
    """A setting is missing, invalid or inconsistent. The message is one line that names the
    setting and never contains a secret."""


def env_name(field: str) -> str:
    return f"TOKENWARD_{field.upper()}"


def is_loopback(host: str) -> bool:
    """The one loopback rule (``protocol.transport``), for a host as given to ``--host``."""
    return is_loopback_host(host)


def default_home() -> Path:
    """``$XDG_DATA_HOME/tokenward``, else ``~/.local/share/tokenward``."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(os.path.abspath(base)) / "tokenward"


def _resolve_home(value: object) -> Path:
    if value is None or value == "":
        return default_home()
    return Path(os.path.abspath(os.path.expanduser(str(value))))


def _sqlite_in_home(url: str, home: Path) -> str:
    """A relative SQLite path is taken inside the home; absolute ones and ``:memory:`` stay."""
    scheme, sep, rest = url.partition(":///")
    if not sep or not scheme.startswith("sqlite"):
        return url
    path, query_sep, query = rest.partition("?")
    if not path or path == ":memory:" or path.startswith("/"):
        return url
    absolute = home / os.path.expanduser(path)
    return f"{scheme}:///{absolute}{query_sep}{query}"


class _SettingsFiles(PydanticBaseSettingsSource):
    """``TOKENWARD_<NAME>_FILE``: a setting's value read from a file (one trailing newline
    dropped), for Kubernetes secrets and systemd credentials (``%d/pepper``)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in FILE_SETTINGS:
            variable = env_name(name)
            path = os.environ.get(variable + "_FILE")
            if not path:
                continue
            if os.environ.get(variable) is not None:
                raise ConfigError(f"{variable} and {variable}_FILE are both set: keep one")
            values[name] = _read_setting_file(variable + "_FILE", Path(path), name)
        return values


def _read_setting_file(variable: str, path: Path, name: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"{variable}: cannot read {path}: {reason}") from None
    value = text.removesuffix("\n").removesuffix("\r")
    if not value:
        raise ConfigError(f"{variable}: {path} is empty")
    if name == "previous_peppers":
        try:
            return json.loads(value)
        except ValueError:
            raise ConfigError(f"{variable}: {path} is not a JSON object") from None
    return value


class Settings(BaseSettings):
    """tokenward server configuration."""

    model_config = SettingsConfigDict(
        env_prefix="TOKENWARD_", env_file=".env", extra="ignore", frozen=True
    )

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL. `sqlite:///path` (default, embedded; a relative path is "
        "inside `TOKENWARD_HOME`) or `postgresql://user:pass@host:port/db` (psycopg 3) to run "
        "several instances.",
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
        DEFAULT_SECRETS_FILE,
        description="Where the development pepper and key-encryption key are generated when not "
        "set (SQLite only; mode 0600; a relative path is inside `TOKENWARD_HOME`). Keep it with "
        "the database: without it, no secret verifies and no signing key decrypts.",
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
    # -- console --
    console_enabled: bool = Field(
        True,
        description="Serve the web console under `{issuer}/admin` (operators sign in with "
        "accounts made by `tokenward admins create`).",
    )
    console_session_idle_seconds: int = Field(
        1800, ge=60, le=86400, description="A console session ends after this long unused."
    )
    console_session_max_seconds: int = Field(
        43200,
        ge=300,
        le=7 * 86400,
        description="A console session ends this long after sign-in, however busy.",
    )
    console_lockout_failures: int = Field(
        5,
        ge=1,
        le=100,
        description="Consecutive wrong passwords that lock an operator account.",
    )
    console_lockout_seconds: int = Field(
        900,
        ge=1,
        le=86400,
        description="How long a locked operator account stays locked (an admin, `tokenward "
        "admins unlock` or `reset-password` lifts it at once).",
    )
    usage_retention_days: int = Field(
        8, ge=1, le=400, description="Days of per-minute token usage statistics kept."
    )
    # -- admin REST API --
    admin_api: bool = Field(
        True,
        description="Serve the admin REST API at `{issuer}/admin/api` (docs/admin-api.md). On "
        "its first start `tokenward serve` registers its audience and a first admin client.",
    )
    admin_credentials_file: Path = Field(
        Path("admin-client.json"),
        description="Where `tokenward serve` writes the first admin client's credentials (mode "
        "0600) when it has no terminal to print them on (a relative path is inside "
        "`TOKENWARD_HOME`); read them, then delete the file.",
    )
    # -- processes --
    shutdown_drain_seconds: int = Field(
        10,
        ge=0,
        le=3600,
        description="On SIGTERM each worker stops accepting connections at once, lets in-flight "
        "requests finish for up to this long, then closes the rest and flushes the audit buffer "
        "and the secrets' last-used stamps. Keep it below the orchestrator's grace period "
        "(Kubernetes `terminationGracePeriodSeconds`, 30 s by default).",
    )

    # -- configuration: one home, checked values --
    home: Path | None = Field(
        None,
        description="Directory of the server's local state: the SQLite database and the "
        "development secrets. Unset: `$XDG_DATA_HOME/tokenward` (`~/.local/share/tokenward`). "
        "Resolved to an absolute path, so every command finds the same state from any "
        "working directory.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        files = _SettingsFiles(settings_cls)
        return init_settings, env_settings, dotenv_settings, files, file_secret_settings

    @model_validator(mode="before")
    @classmethod
    def _paths_in_home(cls, data: Any) -> Any:
        """Resolve the home, then the SQLite database and the secrets file inside it."""
        if not isinstance(data, dict):
            return data
        home = _resolve_home(data.get("home"))
        url = data.get("database_url", DEFAULT_DATABASE_URL)
        secrets_file = Path(os.path.expanduser(str(data.get("secrets_file") or "secrets.json")))
        credentials = data.get("admin_credentials_file") or "admin-client.json"
        return {
            **data,
            "home": home,
            "database_url": _sqlite_in_home(url, home) if isinstance(url, str) else url,
            "secrets_file": home / secrets_file,
            "admin_credentials_file": home / Path(os.path.expanduser(str(credentials))),
        }

    @field_validator("database_url")
    @classmethod
    def _database_scheme(cls, value: str) -> str:
        scheme = value.partition(":")[0]
        if ":" not in value or scheme not in DATABASE_SCHEMES:
            raise ValueError(
                f"unsupported database {scheme!r}: use sqlite:///PATH or "
                "postgresql://USER:PASSWORD@HOST:PORT/NAME"
            )
        return value

    @model_validator(mode="after")
    def _strong_secrets(self) -> Settings:
        """Off loopback, a pepper or key-encryption key must hold at least 256 bits."""
        if self.is_loopback_issuer:
            return self
        for name, secret in (
            ("pepper", self.pepper),
            ("key_encryption_key", self.key_encryption_key),
        ):
            if secret is not None and len(secret.get_secret_value().encode()) < MIN_SECRET_BYTES:
                raise ValueError(
                    f"{env_name(name)} is shorter than {MIN_SECRET_BYTES} bytes, which is only "
                    "allowed with a loopback issuer: generate one with `openssl rand -hex 32`"
                )
        return self

    @property
    def home_dir(self) -> Path:
        """The resolved ``TOKENWARD_HOME`` (always absolute)."""
        return self.home or default_home()

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite database file, if the database is a SQLite file."""
        scheme, sep, rest = self.database_url.partition(":///")
        path = rest.partition("?")[0]
        if not sep or not scheme.startswith("sqlite") or not path or path == ":memory:":
            return None
        return Path(path)

    @property
    def is_loopback_issuer(self) -> bool:
        return is_loopback(urlsplit(self.issuer).hostname or "")

    # -- observability and consistency --
    metrics: bool = Field(
        False,
        description="Serve Prometheus metrics (docs/metrics.md): at `/metrics` on the main port, "
        "or on `metrics_port`. Computed from the audit stream, off the request path.",
    )
    metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Serve `/metrics` on this port of `metrics_host` instead of the main port "
        "(every worker listens with SO_REUSEPORT; any of them answers for all).",
    )
    metrics_host: str = Field(
        "127.0.0.1", description="Interface of the separate metrics port (`metrics_port`)."
    )
    metrics_dir: Path | None = Field(
        None,
        description="Directory where the workers share their metric values (prometheus-client "
        "multiprocess mode); emptied at start. Unset: a fresh temporary directory per start.",
    )
    registry_notify: bool = Field(
        True,
        description="On PostgreSQL, every registry change sends a NOTIFY and every worker "
        "LISTENs, reloading at once; the poll (`cache_refresh_seconds`) stays as the fallback.",
    )
    write_batch_delay_ms: float = Field(
        0.0,
        ge=0,
        le=100,
        description="Group commit of the token path's writes (used assertion `jti`s, opaque "
        "tokens): the longest a write waits for others to share its transaction. At 0 it does "
        "not wait: the rows that arrive while a transaction is in flight form the next one.",
    )
    write_batch_max_rows: int = Field(
        256, ge=1, le=10_000, description="Most rows one group-commit transaction writes."
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
        if self.insecure_issuer and not self.is_loopback_issuer and not self.allow_insecure_http:
            raise ConfigError(
                "TOKENWARD_ISSUER: an http:// issuer is only allowed on a loopback host; use "
                "https or set TOKENWARD_ALLOW_INSECURE_HTTP=true for a closed test network"
            )


def load_settings(**overrides: Any) -> Settings:
    """The settings from the environment (and ``overrides``), or one :class:`ConfigError`."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_settings_error(exc)) from None


_BOUNDS = (
    ("ge", ">=", annotated_types.Ge),
    ("gt", ">", annotated_types.Gt),
    ("le", "<=", annotated_types.Le),
    ("lt", "<", annotated_types.Lt),
)
_SECRET_FIELDS = frozenset({"pepper", "previous_peppers", "key_encryption_key", "database_url"})


def describe_settings_error(error: ValidationError) -> str:
    """One line: each refused setting, why, and what is allowed (never a secret's value)."""
    parts = []
    for item in error.errors(include_url=False):
        message = str(item["msg"]).removeprefix("Value error, ")
        if not item["loc"]:
            parts.append(message)
            continue
        name = str(item["loc"][0])
        shown = "" if name in _SECRET_FIELDS else f"={item.get('input')}"
        allowed = "" if item["type"] == "literal_error" else _allowed(name)
        parts.append(
            f"invalid {env_name(name)}{shown}: {message[:1].lower()}{message[1:]}"
            + (f" (allowed: {allowed})" if allowed else "")
        )
    return "; ".join(parts)


def _allowed(name: str) -> str:
    """What a setting accepts, from its type and bounds."""
    field = Settings.model_fields.get(name)
    if field is None:
        return ""
    annotation = field.annotation
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(str(a) for a in get_args(annotation))
    if annotation is bool:
        return "true or false"
    if annotation in (int, float):
        kind = "an integer" if annotation is int else "a number"
        bounds = [
            f"{word} {getattr(rule, attr)}"
            for rule in field.metadata
            for attr, word, kind_of in _BOUNDS
            if isinstance(rule, kind_of)
        ]
        return " ".join([kind, " and ".join(bounds)]).strip()
    if get_origin(annotation) is dict:
        return 'a JSON object, e.g. {"p0": "..."}'
    return ""


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """A warning for each ``TOKENWARD_*`` variable tokenward does not read, with the closest
    valid name: a misspelt setting is otherwise silently ignored."""
    environ = os.environ if environ is None else environ
    known = {env_name(name) for name in Settings.model_fields}
    known |= {env_name(name) + "_FILE" for name in FILE_SETTINGS} | OTHER_VARIABLES
    warnings = []
    for variable in sorted(environ):
        upper = variable.upper()
        if not upper.startswith("TOKENWARD_") or upper in known or upper.startswith(TEST_PREFIX):
            continue
        names = {name.removeprefix("TOKENWARD_"): name for name in known}
        close = difflib.get_close_matches(upper.removeprefix("TOKENWARD_"), names, n=1, cutoff=0.6)
        hint = f"; did you mean {names[close[0]]}?" if close else ""
        warnings.append(f"unknown variable {variable} is ignored{hint}")
    return warnings


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
    files = ", ".join(f"`{env_name(name)}_FILE`" for name in FILE_SETTINGS)
    lines += [
        "",
        "## Settings read from files",
        "",
        f"{files} name a file holding the value (one trailing newline is dropped): a "
        "Kubernetes secret mounted as a file, or a systemd credential "
        "(`LoadCredential=pepper:/etc/tokenward/pepper` and "
        "`Environment=TOKENWARD_PEPPER_FILE=%d/pepper`). Setting both a variable and its "
        "`_FILE` form is an error.",
        "",
        "A `TOKENWARD_*` variable that is not listed here is reported with the closest valid "
        "name, and otherwise ignored.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_reference())
