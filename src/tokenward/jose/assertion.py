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

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from tokenward.jose._compact import (
    JoseError,
    b64url_decode,
    decode_segment,
    json_object,
    parse_header,
    split,
)
from tokenward.jose.verification import PublicKeySet

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


@dataclass(frozen=True, slots=True)
class UnverifiedJWS:
    """Header and claims of a JWS whose signature has *not* been checked (or has, by HMAC)."""

    header: Mapping[str, Any]
    claims: Mapping[str, Any]


class ClientKeysError(ValueError):
    """A JWKS a client registered (or serves at its jwks_uri) is not acceptable. Safe text."""


def peek_jws(token: str, *, max_length: int = 8192) -> UnverifiedJWS:
    """Parse a compact JWS without checking its signature. Never trust the result alone.

    The rules are exactly those :func:`~tokenward.jose.verification.verify_jws` applies before
    it checks a signature (:mod:`tokenward.jose._compact`).
    """
    header_segment, payload_segment, signature_segment = split(token, max_length)
    header = parse_header(header_segment)
    decode_segment(signature_segment)
    return UnverifiedJWS(header.params, json_object(payload_segment))


def verify_hmac_jws(
    token: str, secrets: Sequence[bytes], *, max_length: int = 8192
) -> tuple[int, UnverifiedJWS]:
    """Verify an ``HS256`` JWS against each secret; return the index of the one that matches.

    Every secret is tried (rotation with overlap) and compared in constant time. RFC 7518 §3.2:
    "A key of the same size as the hash output (for instance, 256 bits for "HS256") or larger
    MUST be used" - shorter secrets never verify.
    """
    header_segment, payload_segment, signature_segment = split(token, max_length)
    header = parse_header(header_segment)
    if header.alg != "HS256":
        raise JoseError("alg not allowed")
    signature = decode_segment(signature_segment)
    signing_input = header_segment + b"." + payload_segment
    matched = -1
    for index, secret in enumerate(secrets):
        expected = hmac.new(secret, signing_input, hashlib.sha256).digest()
        if hmac.compare_digest(expected, signature) and len(secret) >= 32:
            matched = index
    if matched < 0:
        raise JoseError("signature verification failed")
    return matched, UnverifiedJWS(header.params, json_object(payload_segment))


def _rsa_bits(jwk: Mapping[str, Any]) -> int:
    try:
        return int.from_bytes(b64url_decode(str(jwk.get("n", ""))), "big").bit_length()
    except JoseError:
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
    if not isinstance(document, Mapping) or not isinstance(keys, list) or not keys:
        raise ClientKeysError('a JWKS is a JSON object with a non-empty "keys" array')
    if len(keys) > MAX_CLIENT_KEYS:
        raise ClientKeysError(f"at most {MAX_CLIENT_KEYS} keys")
    usable = [_key_algorithms(jwk) for jwk in keys]
    # Cannot raise: "keys" is a list, the only thing from_jwks itself requires.
    imported = PublicKeySet.from_jwks(document)
    if imported.skipped:
        raise ClientKeysError("a key in the JWKS could not be imported")
    return frozenset.union(*usable)
