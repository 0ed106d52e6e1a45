"""Validating access-token claims — RFC 9068 §4 (JWT) and RFC 7662 §2.2 (introspection).

Pure functions over a frozen :class:`VerificationPolicy`; the clock is an argument. Every
failure is an :class:`InvalidToken` whose ``reason`` names the check (for logs), because
RFC 9068 §4: "If any of the checks fail, the resource server MUST reject ... invalid_token".
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tokenward.jose.verification import SUPPORTED_ALGORITHMS, is_numeric_date
from tokenward.protocol.scopes import is_scope_token
from tokenward.resource.errors import InsufficientScope, InvalidToken

__all__ = [
    "DEFAULT_ALGORITHMS",
    "AccessToken",
    "VerificationPolicy",
    "access_token_from_introspection",
    "access_token_from_jwt",
]

#: RFC 9068 §4 requires RS256 support; ES256 is tokenward's default signing algorithm.
DEFAULT_ALGORITHMS = ("ES256", "RS256", "PS256", "EdDSA", "Ed25519")

# RFC 9068 §2.2: "iss", "exp", "aud", "sub", "client_id", "iat" and "jti" are REQUIRED.
_REQUIRED_JWT_CLAIMS = frozenset({"iss", "exp", "aud", "sub", "client_id", "iat", "jti"})
# RFC 9068 §2.1 / §4: typ "at+jwt"; media types compare case-insensitively (RFC 7515 §4.1.9).
_ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
# 9999-12-31T23:59:59Z: beyond it a NumericDate cannot be a datetime (and is no real date).
_MAX_DATE = 253402300799


@dataclass(frozen=True, slots=True, kw_only=True)
class VerificationPolicy:
    """Everything security-relevant about accepting a token, in one place."""

    issuer: str
    audience: str
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    leeway: float = 30.0
    max_token_length: int = 16384

    def __post_init__(self) -> None:
        if not self.issuer or not self.audience:
            raise ValueError("issuer and audience are required")
        unsupported = set(self.algorithms) - SUPPORTED_ALGORITHMS
        if unsupported or not self.algorithms:
            # "none" and HS* are refused here, at configuration time (RFC 8725 §3.1).
            raise ValueError(f"unsupported algorithms: {sorted(unsupported)}")
        if not 0 <= self.leeway <= 300:
            raise ValueError("leeway must be between 0 and 300 seconds")


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A verified access token. Immutable; ``claims`` holds every claim as received."""

    client_id: str
    subject: str
    scopes: frozenset[str]
    audience: tuple[str, ...]
    issuer: str
    expires_at: datetime
    jti: str | None
    claims: Mapping[str, Any] = field(repr=False, compare=False)

    def has_scopes(self, *scopes: str) -> bool:
        return self.scopes.issuperset(scopes)

    def require_scopes(self, *scopes: str) -> None:
        """Raise :class:`InsufficientScope` (403) unless every one of ``scopes`` was granted."""
        if not self.scopes.issuperset(scopes):
            raise InsufficientScope(scopes)


def _fail(reason: str) -> InvalidToken:
    return InvalidToken(reason)


def _check_typ(header: Mapping[str, Any]) -> None:
    # RFC 9068 §4: "Resource servers receiving a JWT access token MUST validate that the typ
    # header value is at+jwt or application/at+jwt and reject tokens carrying any other value."
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in _ACCESS_TOKEN_TYPES:
        raise _fail("typ is not at+jwt")


def _check_issuer(claims: Mapping[str, Any], policy: VerificationPolicy) -> str:
    # RFC 9068 §4: "The issuer identifier ... MUST exactly match the value of the iss claim."
    # Exact string equality: no prefix, case or trailing-slash tolerance (CVE-2024-53861).
    issuer = claims.get("iss")
    if type(issuer) is not str or issuer != policy.issuer:
        raise _fail("iss mismatch")
    return issuer


def _check_audience(claims: Mapping[str, Any], policy: VerificationPolicy) -> tuple[str, ...]:
    # RFC 9068 §4: "The resource server MUST validate that the aud claim contains a resource
    # indicator value corresponding to an identifier the resource server expects for itself."
    aud: Any = claims.get("aud")
    audience = (aud,) if type(aud) is str else aud
    if type(audience) not in (tuple, list) or not all(type(a) is str for a in audience):
        raise _fail("aud is not a string or an array of strings")
    if policy.audience not in audience:
        raise _fail("aud does not contain this resource")
    return tuple(audience)


def _check_times(claims: Mapping[str, Any], policy: VerificationPolicy, now: float) -> float:
    exp: Any = claims.get("exp")
    nbf: Any = claims.get("nbf", 0)
    iat: Any = claims.get("iat", 0)
    if not all(is_numeric_date(t) and abs(t) <= _MAX_DATE for t in (exp, nbf, iat)):
        raise _fail("exp, nbf or iat is not a NumericDate")
    # RFC 7519 §4.1.4: "the current date/time MUST be before the expiration date/time";
    # RFC 9068 §4 allows "some small leeway ... to account for clock skew".
    if now >= exp + policy.leeway:
        raise _fail("token expired")
    # RFC 7519 §4.1.5: "MUST NOT be accepted for processing" before nbf.
    if nbf > now + policy.leeway:
        raise _fail("token not yet valid")
    if iat > now + policy.leeway:
        raise _fail("token issued in the future")
    return float(exp)


def _check_not_bound(claims: Mapping[str, Any]) -> None:
    # RFC 9449 §7.2: a DPoP-bound token (cnf.jkt) MUST NOT be accepted as a bearer token; the
    # same goes for any other confirmation method (mTLS, RFC 8705 §3) tokenward does not check.
    if "cnf" in claims:
        raise _fail("sender-constrained token presented as bearer")


def _string(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if type(value) is not str or not value:
        raise _fail(f"{name} is not a non-empty string")
    return value


@functools.lru_cache(maxsize=256)  # tokens of one client carry the same few scope strings
def _parse_scope(scope: str) -> frozenset[str] | None:
    scopes = frozenset(scope.split(" ")) - {""}
    return scopes if all(is_scope_token(s) for s in scopes) else None


def _scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    # RFC 9068 §2.2.3 / RFC 8693 §4.2: "scope" is a space-separated list of scope-tokens.
    scope = claims.get("scope", "")
    if type(scope) is not str:
        raise _fail("scope is not a string")
    scopes = _parse_scope(scope) if len(scope) <= 1024 else None
    if scopes is None:
        raise _fail("scope is not a list of scope-tokens, or too long")
    return scopes


def _access_token(
    claims: Mapping[str, Any], *, policy: VerificationPolicy, now: float, subject: str | None
) -> AccessToken:
    audience = _check_audience(claims, policy)
    expires = _check_times(claims, policy, now)
    _check_not_bound(claims)
    client_id = _string(claims, "client_id")
    jti = claims.get("jti")
    if jti is not None and (type(jti) is not str or not jti):
        raise _fail("jti is not a non-empty string")
    return AccessToken(
        client_id=client_id,
        subject=subject or client_id,
        scopes=_scopes(claims),
        audience=audience,
        issuer=policy.issuer,
        expires_at=datetime.fromtimestamp(expires, UTC),
        jti=jti,
        claims=claims,
    )


def access_token_from_jwt(
    header: Mapping[str, Any],
    claims: Mapping[str, Any],
    *,
    policy: VerificationPolicy,
    now: float,
) -> AccessToken:
    """RFC 9068 §4 checks on a JWT whose signature has already been verified."""
    _check_typ(header)
    if not claims.keys() >= _REQUIRED_JWT_CLAIMS:
        missing = sorted(_REQUIRED_JWT_CLAIMS - claims.keys())
        raise _fail(f"missing claims: {', '.join(missing)}")
    _check_issuer(claims, policy)
    return _access_token(claims, policy=policy, now=now, subject=_string(claims, "sub"))


def access_token_from_introspection(
    response: Mapping[str, Any], *, policy: VerificationPolicy, now: float
) -> AccessToken:
    """Map an RFC 7662 §2.2 introspection response to the same :class:`AccessToken`.

    Stricter than RFC 7662 requires, so that both paths accept the same tokens: ``exp``,
    ``aud`` and ``client_id`` are required; ``iss``, when present, must match exactly.
    """
    # RFC 7662 §2.2: "active" is REQUIRED; anything but the JSON literal true is inactive.
    if response.get("active") is not True:
        raise _fail("introspection: token not active")
    token_type = response.get("token_type", "Bearer")
    if type(token_type) is not str or token_type.lower() != "bearer":
        raise _fail("introspection: not a bearer token")  # RFC 9449 §6.2 uses "DPoP"
    if "iss" in response:
        _check_issuer(response, policy)
    missing = [name for name in ("exp", "aud", "client_id") if name not in response]
    if missing:
        raise _fail(f"introspection: missing {', '.join(missing)}")
    subject = response.get("sub")
    if subject is not None:
        subject = _string(response, "sub")
    return _access_token(response, policy=policy, now=now, subject=subject)
