"""What an administrative change may say, as typed values: parsed once, at the boundary.

Every surface (CLI, admin REST API, console, ``tokenward apply``) builds one of these models
from its own input, and the operations in ``admin/operations.py`` accept nothing else. A field
that appears in both a *create* and an *update* model has the same type in both (one
annotated type below), so the two can never accept different values; a test holds that.

Updates follow JSON merge-patch semantics: a field left out is unchanged, a nullable field set
to ``null`` clears its override (``token_ttl``, ``token_format``, ``default_scopes``,
``quota_per_minute``, ``quota_per_hour``).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, ValidationError

from tokenward.protocol.model import AuthMethod, SigningAlg, TokenFormat
from tokenward.protocol.scopes import ALL_SCOPES, is_scope_token

__all__ = [
    "ApiCreate",
    "ApiIdentifier",
    "ApiUpdate",
    "AssertionAlg",
    "AuthMethod",
    "ClientCreate",
    "ClientId",
    "ClientUpdate",
    "KeyRotate",
    "Name",
    "OperatorCreate",
    "OperatorName",
    "OperatorRole",
    "Password",
    "PasswordReset",
    "Quota",
    "ScopeDescriptions",
    "ScopeName",
    "SecretCreate",
    "SecretRevoke",
    "SigningAlg",
    "TokenFormat",
    "TokenTtl",
    "describe",
]

#: Algorithms a private_key_jwt client may sign its assertions with.
AssertionAlg = Literal["ES256", "RS256", "PS256", "EdDSA", "Ed25519"]

#: The longest a new key may wait before it signs: a year (the automatic rotation is 30 days).
MAX_ACTIVATION_DELAY = 365 * 86400
_CLIENT_ID = re.compile(r"[A-Za-z0-9._~:@+\-]{1,255}")


def _scope_name(value: str) -> str:
    # RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ); "*" is tokenward's
    # "every granted scope" and cannot be a scope of its own.
    if not is_scope_token(value) or value == ALL_SCOPES or len(value) > 200:
        raise ValueError("not a scope name (RFC 6749 §3.3 scope-token, at most 200 characters)")
    return value


def _api_identifier(value: str) -> str:
    if not urlsplit(value).scheme or "#" in value or not value.isprintable() or len(value) > 512:
        raise ValueError("must be an absolute URI without a fragment (at most 512 characters)")
    return value


def _client_id(value: str) -> str:
    if not _CLIENT_ID.fullmatch(value):
        raise ValueError("may use letters, digits and . _ ~ : @ + - (1 to 255 characters)")
    return value


ScopeName = Annotated[str, AfterValidator(_scope_name)]
ApiIdentifier = Annotated[str, AfterValidator(_api_identifier)]
ClientId = Annotated[str, AfterValidator(_client_id)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Label = Annotated[str, Field(max_length=200)]
#: Seconds; the server's ``max_token_ttl`` is the tighter bound, checked by the operations.
TokenTtl = Annotated[int, Field(ge=30, le=7 * 86400)]
JwksUri = Annotated[str, Field(min_length=1, max_length=2048)]
#: Scope name -> what it allows, shown to operators.
ScopeDescriptions = dict[ScopeName, Annotated[str, Field(max_length=500)]]
#: Tokens per window (an issuance quota); ``null`` in an update removes it.
Quota = Annotated[int, Field(ge=1, le=10_000_000)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApiCreate(_Input):
    identifier: ApiIdentifier
    name: Name
    scopes: list[ScopeName] = []
    scope_descriptions: ScopeDescriptions = {}
    token_ttl: TokenTtl | None = None
    signing_alg: SigningAlg | None = None
    token_format: TokenFormat = "jwt"


class ApiUpdate(_Input):
    name: Name | None = None
    add_scopes: list[ScopeName] = []
    remove_scopes: list[ScopeName] = []
    token_ttl: TokenTtl | None = None
    signing_alg: SigningAlg | None = None
    token_format: TokenFormat | None = None
    #: Set the descriptions of these scopes (defined already, or added by ``add_scopes``).
    scope_descriptions: ScopeDescriptions | None = None


class ClientCreate(_Input):
    name: Name
    client_id: ClientId | None = None
    scopes: list[ScopeName] = []
    default_scopes: list[ScopeName] | None = None
    apis: list[ApiIdentifier] = []
    #: Empty: both secret methods (client_secret_basic and client_secret_post).
    auth_methods: list[AuthMethod] = []
    token_ttl: TokenTtl | None = None
    token_format: TokenFormat | None = None
    #: An operator-chosen secret; omitted, one is generated (256 bits) and shown once.
    secret: SecretStr | None = None
    jwks: dict[str, Any] | None = None
    jwks_uri: JwksUri | None = None
    assertion_alg: AssertionAlg | None = None
    introspect_apis: list[ApiIdentifier] = []
    quota_per_minute: Quota | None = None
    quota_per_hour: Quota | None = None


class ClientUpdate(_Input):
    name: Name | None = None
    #: Replace the granted scopes; ``add_scopes`` and ``remove_scopes`` then apply.
    scopes: list[ScopeName] | None = None
    add_scopes: list[ScopeName] = []
    remove_scopes: list[ScopeName] = []
    default_scopes: list[ScopeName] | None = None
    apis: list[ApiIdentifier] | None = None
    auth_methods: list[AuthMethod] | None = None
    token_ttl: TokenTtl | None = None
    token_format: TokenFormat | None = None
    enabled: bool | None = None
    jwks: dict[str, Any] | None = None
    jwks_uri: JwksUri | None = None
    assertion_alg: AssertionAlg | None = None
    introspect_apis: list[ApiIdentifier] | None = None
    quota_per_minute: Quota | None = None
    quota_per_hour: Quota | None = None


class SecretCreate(_Input):
    label: Label = ""
    secret: SecretStr | None = None
    expires_in: Annotated[int, Field(ge=1)] | None = None


class SecretRevoke(_Input):
    #: Seconds the secret keeps working (rotation with overlap); 0 revokes it now.
    grace: Annotated[int, Field(ge=0, le=30 * 86400)] = 0


class KeyRotate(_Input):
    alg: SigningAlg | None = None
    #: Seconds before the new key signs; default: the publication delay.
    activate_in: Annotated[int, Field(ge=0, le=MAX_ACTIVATION_DELAY)] | None = None
    #: Allow an activation sooner than verifiers can have fetched the key (a compromised key:
    #: tokens signed in the gap fail at verifiers still holding the old JWKS).
    force: bool = False


# -- console operators ----------------------------------------------------------------------

_OPERATOR_NAME = re.compile(r"[A-Za-z0-9._@\-]{1,100}")
#: admin changes everything; read-only sees everything and changes nothing.
OperatorRole = Literal["admin", "read-only"]


def _operator_name(value: str) -> str:
    if not _OPERATOR_NAME.fullmatch(value):
        raise ValueError("may use letters, digits and . _ @ - (1 to 100 characters)")
    return value


def _password(value: SecretStr) -> SecretStr:
    # NIST SP 800-63B §3.1.1.2: a minimum length, a generous maximum, no composition rules.
    if not 12 <= len(value.get_secret_value()) <= 1024:
        raise ValueError("must be 12 to 1024 characters long")
    return value


OperatorName = Annotated[str, AfterValidator(_operator_name)]
Password = Annotated[SecretStr, AfterValidator(_password)]


class OperatorCreate(_Input):
    name: OperatorName
    role: OperatorRole = "admin"
    password: Password


class PasswordReset(_Input):
    password: Password


def describe(error: ValidationError) -> str:
    """One line naming each refused field and why (never the value: it may be a secret)."""
    parts = []
    for item in error.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in item["loc"]) or "body"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)
