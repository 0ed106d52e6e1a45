"""Client authentication at the token endpoint (RFC 6749 §2.3, RFC 7521 §4.2, RFC 7523 §2.2).

Step one, here: find out which single method the request uses and what it presents.
Step two: check what it presents against the registered client. Every failure of step two is
one and the same ``invalid_client`` (no client enumeration); the cause goes to ``reason``.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tokenward.protocol.errors import InvalidClient, InvalidRequest
from tokenward.protocol.model import Client
from tokenward.protocol.params import parse_basic

__all__ = [
    "ASSERTION_TYPE",
    "PresentedCredentials",
    "check_client_state",
    "check_secret",
    "extract_credentials",
]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_MAX_CLIENT_ID = 255


@dataclass(frozen=True, slots=True)
class PresentedCredentials:
    """What the request presents. ``method`` is one of the RFC 8414 method names, or
    ``jwt_assertion`` (private_key_jwt or client_secret_jwt, decided by the registration)."""

    method: str
    client_id: str | None
    secret: str | None = None
    assertion: str | None = None
    used_basic: bool = False

    def __repr__(self) -> str:
        return f"PresentedCredentials(method={self.method!r}, client_id={self.client_id!r})"


def _check_client_id(client_id: str) -> str:
    if len(client_id) > _MAX_CLIENT_ID or not client_id.isprintable():
        raise InvalidRequest("client_id is malformed", reason="client_id not printable")
    return client_id


def extract_credentials(
    authorization: bytes | None, params: Mapping[str, str], *, realm: str
) -> PresentedCredentials:
    """Decide the one authentication method a request uses (RFC 6749 §2.3: "The client MUST
    NOT use more than one authentication method in each request")."""
    body_id = params.get("client_id")
    has_secret = "client_secret" in params
    has_assertion = "client_assertion" in params or "client_assertion_type" in params
    if authorization is not None:
        return _from_header(authorization, body_id, has_secret or has_assertion, realm)
    if has_assertion:
        return _from_assertion(params, body_id, has_secret)
    if has_secret:
        if body_id is None:
            raise InvalidRequest("client_id is required with client_secret", reason="no id")
        secret = params["client_secret"]
        return PresentedCredentials("client_secret_post", _check_client_id(body_id), secret)
    raise InvalidClient(reason="no client authentication", basic_realm=realm)


def _from_header(
    authorization: bytes, body_id: str | None, body_credentials: bool, realm: str
) -> PresentedCredentials:
    # RFC 7235 §2.1: the scheme is case-insensitive; a bare "Basic" is malformed Basic.
    if authorization[:6].lower() != b"basic " and authorization.strip().lower() != b"basic":
        raise InvalidClient(reason="unsupported authorization scheme", basic_realm=realm)
    if body_credentials:
        raise InvalidRequest(
            "use only one client authentication method", reason="basic plus body credentials"
        )
    creds = parse_basic(authorization)
    client_id = _check_client_id(creds.client_id)
    if body_id is not None and body_id != client_id:
        # The body's client_id must name the client that authenticates (RFC 7521 §4.2 spirit).
        raise InvalidRequest("client_id does not match the credentials", reason="id mismatch")
    return PresentedCredentials(
        "client_secret_basic", client_id, creds.client_secret, used_basic=True
    )


def _from_assertion(
    params: Mapping[str, str], body_id: str | None, has_secret: bool
) -> PresentedCredentials:
    if has_secret:
        raise InvalidRequest(
            "use only one client authentication method", reason="assertion plus secret"
        )
    # RFC 7521 §4.2: client_assertion_type REQUIRED, with the RFC 7523 value.
    if params.get("client_assertion_type") != ASSERTION_TYPE:
        raise InvalidRequest("unsupported client_assertion_type", reason="bad assertion type")
    assertion = params.get("client_assertion")
    if assertion is None:
        raise InvalidRequest("client_assertion is required", reason="no assertion")
    client_id = _check_client_id(body_id) if body_id is not None else None
    return PresentedCredentials("jwt_assertion", client_id, assertion=assertion)


def check_client_state(client: Client | None, creds: PresentedCredentials, realm: str) -> Client:
    """The client exists, is enabled, may use this grant and this authentication method."""
    basic = realm if creds.used_basic else None
    if client is None:
        raise InvalidClient(reason="unknown client", basic_realm=basic)
    if not client.enabled:
        raise InvalidClient(reason="client disabled", basic_realm=basic)
    if creds.method != "jwt_assertion" and creds.method not in client.auth_methods:
        # RFC 6749 §2.3.2: the server maps each client to its authentication scheme.
        raise InvalidClient(reason=f"method {creds.method} not allowed", basic_realm=basic)
    return client


def check_secret(
    client: Client,
    creds: PresentedCredentials,
    *,
    digest: Callable[[str, str], str | None],
    now: int,
    realm: str,
) -> str:
    """Compare the presented secret with every usable secret; return the matching secret id.

    ``digest(secret, stored)`` computes the keyed digest of the presented secret in the
    format of ``stored`` (None if the format is unknown). Comparison is constant-time.
    """
    assert creds.secret is not None
    matched: str | None = None
    for record in client.secrets:
        candidate = digest(creds.secret, record.digest)
        ok = candidate is not None and hmac.compare_digest(candidate, record.digest)
        if ok and record.usable_at(now):
            matched = record.id
    if matched is None:
        raise InvalidClient(
            reason="wrong or expired secret", basic_realm=realm if creds.used_basic else None
        )
    return matched
