"""JWT client authentication: the rules of RFC 7523 §3 with draft-ietf-oauth-rfc7523bis.

Used for ``private_key_jwt`` and ``client_secret_jwt`` (OpenID Connect Core §9) at every
endpoint that authenticates clients (token, introspection, revocation). Every failure is the
same ``invalid_client`` (RFC 7523 §3.2: "the value of the error parameter MUST be the
invalid_client error code"); the precise cause travels in ``reason`` to the audit log.

Order of work (cheap first, RFC 8725bis §3.13): :func:`assertion_subject` and
:func:`check_assertion_header` run on the unverified JWS; the signature is verified with the
keys of the client named there; :func:`check_assertion_claims` then checks the verified claims;
the ``jti`` is finally recorded, once, in the shared replay store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tokenward.jose.verification import is_numeric_date
from tokenward.protocol.errors import InvalidClient

__all__ = [
    "ACCEPTED_TYPES",
    "AcceptedAssertion",
    "AssertionPolicy",
    "assertion_subject",
    "check_assertion_claims",
    "check_assertion_header",
]

#: ``typ`` values accepted on a client assertion (compared case-insensitively, with or without
#: ``application/``). 7523bis: clients SHOULD send ``client-authentication+jwt``, servers are
#: NOT RECOMMENDED to reject untyped ones; ``JWT`` is what most JOSE libraries add by default.
#: Any other type (``at+jwt``, ``dpop+jwt``, ...) belongs to a different kind of JWT and is
#: rejected (RFC 8725 §3.11-§3.12: mutually exclusive validation rules).
ACCEPTED_TYPES = frozenset({"client-authentication+jwt", "jwt"})
_MAX_JTI = 255


@dataclass(frozen=True, slots=True)
class AssertionPolicy:
    """Audience, lifetime and clock-skew rules for client assertions (one place, STYLE §7)."""

    issuer: str
    token_endpoint: str
    allow_token_endpoint_audience: bool = False
    max_lifetime: int = 300
    leeway: int = 60
    max_length: int = 8192


@dataclass(frozen=True, slots=True)
class AcceptedAssertion:
    """What the replay store needs, and whether the legacy audience was used."""

    jti: str
    expires_at: int
    legacy_audience: bool


def _fail(reason: str) -> InvalidClient:
    return InvalidClient(reason=f"assertion: {reason}")


def assertion_subject(claims: Mapping[str, Any], body_client_id: str | None) -> str:
    """The client the (unverified) assertion speaks for: the body ``client_id`` when present,
    else ``sub``. RFC 7521 §4.2: ``client_id`` "is unnecessary ... However, if present, the
    value of the client_id parameter MUST identify the same client" - checked after the
    signature, by :func:`check_assertion_claims`, against ``iss`` and ``sub``."""
    if body_client_id is not None:
        return body_client_id
    subject = claims.get("sub")
    if type(subject) is not str or not subject or len(subject) > 255:
        raise _fail("no usable sub")
    return subject


def check_assertion_header(header: Mapping[str, Any]) -> str:
    """Return the header's ``alg`` after checking its ``typ``."""
    typ = header.get("typ")
    if typ is not None:
        if type(typ) is not str:
            raise _fail("typ is not a string")
        name = typ.lower().removeprefix("application/")
        if name not in ACCEPTED_TYPES:
            raise _fail(f"typ {typ[:40]!r} is not a client assertion type")
    alg = header.get("alg")
    if type(alg) is not str or alg.lower() == "none":
        # RFC 7523 §3 item 9: "The JWT MUST be digitally signed or have a Message
        # Authentication Code (MAC) applied by the issuer."
        raise _fail("unsigned")
    return alg


def _numeric(claims: Mapping[str, Any], name: str, *, required: bool) -> int | None:
    if name not in claims and not required:
        return None
    value: Any = claims.get(name)
    # RFC 7519 §2 NumericDate: a finite JSON number (``true`` is not one); the rule shared with
    # access tokens.
    if not is_numeric_date(value):
        raise _fail(f"{name} missing or not a NumericDate")
    return int(value)


def _check_audience(aud: object, policy: AssertionPolicy) -> bool:
    """7523bis: "the audience value MUST be the issuer identifier of the authorization server
    ... as its sole value"; "the token endpoint URL ... MUST NOT be used". Returns True when
    the legacy token-endpoint audience was accepted."""
    if type(aud) is list and len(aud) == 1:
        aud = aud[0]
    if type(aud) is not str:
        raise _fail("aud must be the issuer as a string or a one-element array")
    # RFC 7523 §3 item 3: "The authorization server MUST reject any JWT that does not contain
    # its own identity as the intended audience"; comparison is simple string comparison.
    if aud == policy.issuer:
        return False
    if policy.allow_token_endpoint_audience and aud == policy.token_endpoint:
        return True
    raise _fail("aud is not this server's issuer")


def _check_times(claims: Mapping[str, Any], policy: AssertionPolicy, now: int) -> int:
    # RFC 7523 §3 item 4: "The JWT MUST contain an "exp" (expiration time) claim ... The
    # authorization server MUST reject any JWT with an expiration time that has passed, subject
    # to allowable clock skew"; it "MAY reject JWTs with an "exp" claim value that is
    # unreasonably far in the future".
    exp = _numeric(claims, "exp", required=True)
    assert exp is not None
    if exp + policy.leeway <= now:
        raise _fail("expired")
    iat = _numeric(claims, "iat", required=False)
    if iat is not None and iat > now + policy.leeway:
        raise _fail("iat in the future")
    if exp - (now if iat is None else min(iat, now)) > policy.max_lifetime:
        # Item 6: the server "MAY reject JWTs with an "iat" claim value that is unreasonably
        # far in the past"; a bounded lifetime also bounds the replay store.
        raise _fail("lifetime over the maximum")
    nbf = _numeric(claims, "nbf", required=False)
    if nbf is not None and nbf > now + policy.leeway:
        # Item 5: "The authorization server MUST reject any JWT that is not yet valid."
        raise _fail("not yet valid")
    return exp


def _check_jti(claims: Mapping[str, Any]) -> str:
    # OIDC Core §9: "jti REQUIRED ... The JWT MUST only be used once" (RFC 7523 §3 item 7
    # makes replay protection a MAY; tokenward always does it).
    jti = claims.get("jti")
    if type(jti) is not str or not jti or len(jti) > _MAX_JTI:
        raise _fail("jti missing or malformed")
    return jti


def check_assertion_claims(
    claims: Mapping[str, Any], *, client_id: str, policy: AssertionPolicy, now: int
) -> AcceptedAssertion:
    """RFC 7523 §3 items 1-7 on a verified assertion from ``client_id``."""
    # Items 1-2: "iss" MUST be present; for client authentication "sub" MUST be the client_id
    # (OIDC Core §9: iss and sub are both the client_id).
    if claims.get("iss") != client_id:
        raise _fail("iss is not the client_id")
    if claims.get("sub") != client_id:
        raise _fail("sub is not the client_id")
    legacy = _check_audience(claims.get("aud"), policy)
    exp = _check_times(claims, policy, now)
    jti = _check_jti(claims)
    return AcceptedAssertion(jti=jti, expires_at=exp + policy.leeway, legacy_audience=legacy)
