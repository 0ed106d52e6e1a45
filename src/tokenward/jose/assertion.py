"""JWS pieces the authorization server needs for client assertions (RFC 7523, RFC 8725).

:mod:`tokenward.jose.verification` answers "did one of these public keys sign this?". Client
authentication needs three more things, all sans-IO:

* :func:`peek_jws`: the header and payload of a compact JWS *before* its signature is checked,
  to learn which client it claims to be (``sub``) and so which keys to verify it with. Nothing
  read here is trusted; it only selects the client whose registered keys then decide.
* :func:`verify_hmac_jws`: ``HS256`` for ``client_secret_jwt`` (RFC 7523 §2.2 with RFC 7518
  §3.2). Kept apart from the asymmetric verifier, so an HMAC can never be checked with a public
  key's bytes (algorithm confusion, RFC 8725 §2.1): the caller chooses this function only for
  clients registered for ``client_secret_jwt``, with their secrets.
* :func:`check_client_jwks`: what a client may register as its public keys (RFC 8725 §3.2 and
  §3.10): public keys only, RSA 2048-4096 bits, EC P-256, Ed25519, at most 20 keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from tokenward.jose.verification import JoseError, PublicKeySet

__all__ = [
    "ASSERTION_SIGNING_ALGORITHMS",
    "MAX_CLIENT_KEYS",
    "ClientKeysError",
    "UnverifiedJWS",
    "check_client_jwks",
    "peek_jws",
    "verify_hmac_jws",
]

#: Asymmetric algorithms a client may register for private_key_jwt, with the key they need.
ASSERTION_SIGNING_ALGORITHMS: Final[Mapping[str, tuple[str, str | None]]] = {
    "ES256": ("EC", "P-256"),
    "RS256": ("RSA", None),
    "PS256": ("RSA", None),
    "EdDSA": ("OKP", "Ed25519"),
    "Ed25519": ("OKP", "Ed25519"),  # RFC 9864's fully specified name for EdDSA on Ed25519
}
MAX_CLIENT_KEYS: Final = 20
_RSA_BITS: Final = (2048, 4096)
_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_B64URL: Final = re.compile(rb"[A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class UnverifiedJWS:
    """Header and claims of a JWS whose signature has *not* been checked (or has, by HMAC)."""

    header: Mapping[str, Any]
    claims: Mapping[str, Any]


class ClientKeysError(ValueError):
    """A JWKS a client registered (or serves at its jwks_uri) is not acceptable. Safe text."""


def _b64decode(segment: bytes) -> bytes:
    # RFC 7515 §2: unpadded base64url, no whitespace. Decoding must be canonical: re-encoding
    # gives the same text, so one JWS has exactly one spelling.
    if not _B64URL.fullmatch(segment) or len(segment) % 4 == 1:
        raise JoseError("invalid base64url")
    try:
        raw = base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))
    except binascii.Error:
        raise JoseError("invalid base64url") from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=") != segment:
        raise JoseError("invalid base64url")
    return raw


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # RFC 7515 §5.2: reject duplicate member names rather than keep the last one.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate member name")
    return obj


def _not_json(name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


_DECODER: Final = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_not_json)


def _json_object(segment: bytes) -> dict[str, Any]:
    try:
        value = _DECODER.decode(_b64decode(segment).decode("utf-8"))
    except (ValueError, RecursionError):
        raise JoseError("segment is not base64url UTF-8 JSON") from None
    if type(value) is not dict:
        raise JoseError("segment is not a JSON object")
    return value


def _split(token: str, max_length: int) -> tuple[bytes, bytes, bytes]:
    if type(token) is not str or len(token) > max_length or not token.isascii():
        raise JoseError("not a compact JWS of acceptable size")
    parts = token.encode("ascii").split(b".")
    if len(parts) != 3 or not all(parts):
        raise JoseError("not a compact JWS")
    return parts[0], parts[1], parts[2]


def peek_jws(token: str, *, max_length: int = 8192) -> UnverifiedJWS:
    """Parse a compact JWS without checking its signature. Never trust the result alone."""
    header_segment, payload_segment, signature_segment = _split(token, max_length)
    header = _json_object(header_segment)
    if type(header.get("alg")) is not str:
        raise JoseError("header has no alg")
    if "crit" in header:
        # RFC 7515 §4.1.11: no extension is understood here, so any "crit" is invalid.
        raise JoseError("crit header parameter not supported")
    _b64decode(signature_segment)
    return UnverifiedJWS(header, _json_object(payload_segment))


def verify_hmac_jws(
    token: str, secrets: Sequence[bytes], *, max_length: int = 8192
) -> tuple[int, UnverifiedJWS]:
    """Verify an ``HS256`` JWS against each secret; return the index of the one that matches.

    Every secret is tried (rotation with overlap) and compared in constant time. RFC 7518 §3.2:
    "A key of the same size as the hash output (for instance, 256 bits for "HS256") or larger
    MUST be used" - shorter secrets never verify.
    """
    header_segment, payload_segment, signature_segment = _split(token, max_length)
    header = _json_object(header_segment)
    if header.get("alg") != "HS256" or "crit" in header:
        raise JoseError("alg not allowed")
    signature = _b64decode(signature_segment)
    signing_input = header_segment + b"." + payload_segment
    matched = -1
    for index, secret in enumerate(secrets):
        expected = hmac.new(secret, signing_input, hashlib.sha256).digest()
        if hmac.compare_digest(expected, signature) and len(secret) >= 32:
            matched = index
    if matched < 0:
        raise JoseError("signature verification failed")
    return matched, UnverifiedJWS(header, _json_object(payload_segment))


def _rsa_bits(jwk: Mapping[str, Any]) -> int:
    try:
        return int.from_bytes(_b64decode(str(jwk.get("n", "")).encode("ascii")), "big").bit_length()
    except (JoseError, UnicodeEncodeError):
        raise ClientKeysError("RSA key has a malformed modulus") from None


def _key_algorithms(jwk: Mapping[str, Any]) -> frozenset[str]:
    """The assertion algorithms one registered JWK may be used with."""
    if not isinstance(jwk, Mapping):
        raise ClientKeysError("every key must be a JSON object")
    if _PRIVATE_MEMBERS & jwk.keys():
        raise ClientKeysError("the JWKS contains private or symmetric key material")
    kty, crv, alg = jwk.get("kty"), jwk.get("crv"), jwk.get("alg")
    if jwk.get("use", "sig") != "sig":
        raise ClientKeysError("keys must be signature keys (use=sig)")
    if kty == "RSA" and not _RSA_BITS[0] <= _rsa_bits(jwk) <= _RSA_BITS[1]:
        raise ClientKeysError("RSA keys must have 2048 to 4096 bits")
    fits = frozenset(
        name
        for name, (key_type, curve) in ASSERTION_SIGNING_ALGORITHMS.items()
        if key_type == kty and curve in (None, crv) and alg in (None, name)
    )
    if not fits:
        raise ClientKeysError("keys must be RSA (RS256, PS256), EC P-256 (ES256) or Ed25519")
    return fits


def check_client_jwks(document: object) -> frozenset[str]:
    """Validate a client's JWKS; return the algorithms its keys can be used with (the client's
    registered algorithm must be one of them)."""
    keys = document.get("keys") if isinstance(document, Mapping) else None
    if not isinstance(keys, list) or not keys:
        raise ClientKeysError('a JWKS is a JSON object with a non-empty "keys" array')
    if len(keys) > MAX_CLIENT_KEYS:
        raise ClientKeysError(f"at most {MAX_CLIENT_KEYS} keys")
    usable = [_key_algorithms(jwk) for jwk in keys]
    try:
        imported = PublicKeySet.from_jwks(document)  # type: ignore[arg-type]
    except JoseError:
        raise ClientKeysError("the JWKS could not be imported") from None
    if imported.skipped:
        raise ClientKeysError("a key in the JWKS could not be imported")
    return frozenset.union(*usable)
