"""Sans-IO verification of compact JWS / JWT signatures — RFC 7515, RFC 7517, RFC 7518, RFC 8725.

Used by the resource library (RFC 9068 access tokens) and by the authorization server (RFC 7523
client assertions). Both callers then check claims themselves; this module only answers "was this
exact string signed by one of these public keys, with an algorithm on the allowlist?".

Rules, after RFC 8725 §3.1 ("Libraries MUST enable the caller to specify a supported set of
algorithms and MUST NOT use any other algorithms when performing cryptographic operations") and
§3.10 ("Do Not Trust Received Claims"):

* Only asymmetric algorithms exist here. There is no HMAC code path, so an ``HS256`` token
  "signed" with a public key can never verify (algorithm confusion, RFC 8725 §2.1).
* Keys come only from a :class:`PublicKeySet` built from the issuer's JWKS. The ``jku``, ``x5u``,
  ``jwk`` and ``x5c`` header parameters are never fetched or used.
* A key is bound to the algorithms its type and curve allow and, if the JWK names one, to exactly
  that ``alg`` (RFC 8725 §3.1: "each key MUST be used with exactly one algorithm").
* Only the compact serialization with three base64url segments is accepted (RFC 8725bis §3.14),
  split and parsed by :mod:`tokenward.jose._compact` with the same rules as client assertions.
* The payload is decoded only after the signature has verified.

Public keys are imported once, with joserfc (the only package allowed to import it), into
``cryptography`` key objects; each verification then calls ``cryptography`` directly, which keeps
it within a few microseconds of the bare signature check (see ``bench/bench_verify.py``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from joserfc.errors import JoseError as _JoserfcError
from joserfc.jwk import JWKRegistry

from tokenward.jose._compact import (
    JoseError,
    b64url_decode,
    decode_segment,
    json_object,
    parse_header,
    split,
)

__all__ = [
    "SUPPORTED_ALGORITHMS",
    "JoseError",
    "PublicKey",
    "PublicKeySet",
    "UnknownKeyError",
    "VerifiedJWS",
    "is_numeric_date",
    "verify_jws",
]


class UnknownKeyError(JoseError):
    """No key in the set matches the header's ``kid`` (or, without ``kid``, its ``alg``).

    Callers holding a cached JWKS may refetch it once (rate-limited) and retry.
    """


_MAX_KIDLESS_CANDIDATES: Final = 3  # keys tried when the header carries no "kid"
_MIN_RSA_BITS: Final = 2048  # RFC 7518 §3.3: "A key of size 2048 bits or larger MUST be used"

_Check = Callable[[bytes, bytes], bool]  # (signature, signing input) -> valid?
_CheckFactory = Callable[[Any], _Check]  # cryptography public key -> its bound check


def _ecdsa(hash_algorithm: hashes.HashAlgorithm, size: int) -> _CheckFactory:
    scheme = ec.ECDSA(hash_algorithm)

    def factory(key: ec.EllipticCurvePublicKey) -> _Check:
        verify = key.verify

        def check(signature: bytes, signing_input: bytes) -> bool:
            # RFC 7518 §3.4: the signature is R || S, each exactly `size` octets, big-endian.
            if len(signature) != 2 * size:
                return False
            # cryptography wants DER (X.690): SEQUENCE { INTEGER r, INTEGER s }, minimal
            # encodings. Built inline; about twice as fast as encode_dss_signature on ints.
            r, s = signature[:size].lstrip(b"\0"), signature[size:].lstrip(b"\0")
            if not r or not s:
                return False  # zero is never a valid r or s
            if r[0] & 0x80:
                r = b"\0" + r
            if s[0] & 0x80:
                s = b"\0" + s
            length = len(r) + len(s) + 4
            if length < 0x80:
                der = b"\x30%c\x02%c%b\x02%c%b" % (length, len(r), r, len(s), s)
            else:  # long-form length, only for P-521
                der = b"\x30\x81%c\x02%c%b\x02%c%b" % (length, len(r), r, len(s), s)
            try:
                verify(der, signing_input, scheme)
            except InvalidSignature:
                return False
            return True

        return check

    return factory


def _rsa(pad: padding.AsymmetricPadding, hash_algorithm: hashes.HashAlgorithm) -> _CheckFactory:
    def factory(key: rsa.RSAPublicKey) -> _Check:
        verify, length = key.verify, (key.key_size + 7) // 8

        def check(signature: bytes, signing_input: bytes) -> bool:
            # RFC 8017 §8.1.2, §8.2.2: the signature is exactly k octets, k = modulus length.
            if len(signature) != length:
                return False
            try:
                verify(signature, signing_input, pad, hash_algorithm)
            except InvalidSignature:
                return False
            return True

        return check

    return factory


def _pss(hash_algorithm: hashes.HashAlgorithm) -> _CheckFactory:
    # RFC 7518 §3.5: "The size of the salt value is the same size as the hash function output."
    pad = padding.PSS(mgf=padding.MGF1(hash_algorithm), salt_length=hash_algorithm.digest_size)
    return _rsa(pad, hash_algorithm)


def _eddsa(length: int) -> _CheckFactory:
    def factory(key: Any) -> _Check:
        verify = key.verify

        def check(signature: bytes, signing_input: bytes) -> bool:
            if len(signature) != length:  # RFC 8032: 64 octets (Ed25519), 114 (Ed448)
                return False
            try:
                verify(signature, signing_input)
            except InvalidSignature:
                return False
            return True

        return check

    return factory


@dataclass(frozen=True, slots=True)
class _Algorithm:
    name: str
    kty: str
    curve: str | None  # the "crv" the algorithm requires, None for RSA
    check: _CheckFactory


_ALGORITHM_LIST: Final = (
    _Algorithm("ES256", "EC", "P-256", _ecdsa(hashes.SHA256(), 32)),
    _Algorithm("ES384", "EC", "P-384", _ecdsa(hashes.SHA384(), 48)),
    _Algorithm("ES512", "EC", "P-521", _ecdsa(hashes.SHA512(), 66)),
    _Algorithm("RS256", "RSA", None, _rsa(padding.PKCS1v15(), hashes.SHA256())),
    _Algorithm("RS384", "RSA", None, _rsa(padding.PKCS1v15(), hashes.SHA384())),
    _Algorithm("RS512", "RSA", None, _rsa(padding.PKCS1v15(), hashes.SHA512())),
    _Algorithm("PS256", "RSA", None, _pss(hashes.SHA256())),
    _Algorithm("PS384", "RSA", None, _pss(hashes.SHA384())),
    _Algorithm("PS512", "RSA", None, _pss(hashes.SHA512())),
    # RFC 8037 "EdDSA" covers both curves; RFC 9864 adds the fully specified names.
    _Algorithm("EdDSA", "OKP", "Ed25519", _eddsa(64)),
    _Algorithm("EdDSA", "OKP", "Ed448", _eddsa(114)),
    _Algorithm("Ed25519", "OKP", "Ed25519", _eddsa(64)),
    _Algorithm("Ed448", "OKP", "Ed448", _eddsa(114)),
)

#: Every JWS ``alg`` this module can verify. All asymmetric: ``none`` and ``HS*`` do not exist here.
SUPPORTED_ALGORITHMS: Final[frozenset[str]] = frozenset(a.name for a in _ALGORITHM_LIST)

# Only public members are ever read from a JWK (RFC 7518 §6, RFC 8037 §2); private members such
# as "d", "p", "q" are dropped before import, so no private key object is ever built.
_PUBLIC_MEMBERS: Final[Mapping[str, tuple[str, ...]]] = {
    "RSA": ("kty", "n", "e"),
    "EC": ("kty", "crv", "x", "y"),
    "OKP": ("kty", "crv", "x"),
}


@dataclass(frozen=True, slots=True)
class PublicKey:
    """One imported verification key: a ``cryptography`` public key bound to its algorithms."""

    kid: str | None
    kty: str
    key: Any = field(repr=False)
    checks: Mapping[str, _Check] = field(repr=False, compare=False)  # alg -> bound check

    @property
    def algorithms(self) -> frozenset[str]:
        return frozenset(self.checks)

    def verify(self, alg: str, signature: bytes, signing_input: bytes) -> bool:
        """True when ``signature`` over ``signing_input`` is valid for ``alg`` with this key."""
        check = self.checks.get(alg)
        return check is not None and check(signature, signing_input)


def _import_public_key(jwk: Mapping[str, Any]) -> PublicKey | None:
    """A usable signature key from one JWK, or None when the JWK is not one we can use."""
    kty = jwk.get("kty")
    if not isinstance(kty, str):
        return None
    members = _PUBLIC_MEMBERS.get(kty)
    if members is None or any(not isinstance(jwk.get(m), str) for m in members):
        return None  # "oct" (symmetric) and unknown key types are never usable here
    kid, jwk_alg, key_ops = jwk.get("kid"), jwk.get("alg"), jwk.get("key_ops")
    if (
        jwk.get("use", "sig") != "sig"
        or (key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops))
        or (kid is not None and not isinstance(kid, str))
        or (jwk_alg is not None and not isinstance(jwk_alg, str))
    ):
        return None
    try:
        if kty == "RSA" and _modulus_bits(jwk["n"]) < _MIN_RSA_BITS:
            return None  # checked first: joserfc would warn about it
        native = JWKRegistry.import_key({m: jwk[m] for m in members}).public_key
    except (JoseError, _JoserfcError, ValueError, TypeError, KeyError):  # KeyError: bad "crv"
        return None
    checks = {
        a.name: a.check(native)
        for a in _ALGORITHM_LIST
        if a.kty == kty and a.curve in (None, jwk.get("crv")) and jwk_alg in (None, a.name)
    }
    if not checks:
        return None  # an "alg" the key type cannot do, or a curve we do not support
    return PublicKey(kid, kty, native, MappingProxyType(checks))


def _modulus_bits(n: str) -> int:
    return int.from_bytes(b64url_decode(n), "big").bit_length()


class PublicKeySet:
    """Public keys from one issuer's JWKS (RFC 7517 §5), indexed for verification.

    JWKs that are not usable signature keys (symmetric, encryption-only, unsupported curve, RSA
    under 2048 bits, malformed) are skipped rather than failing the set; ``skipped`` counts them.
    """

    def __init__(self, keys: Iterable[PublicKey], *, skipped: int = 0) -> None:
        self._keys = tuple(keys)
        self.skipped = skipped
        by_kid: dict[str, tuple[PublicKey, ...]] = {}
        for key in self._keys:
            if key.kid is not None:
                by_kid[key.kid] = (*by_kid.get(key.kid, ()), key)
        self._by_kid = by_kid
        # (kid, alg) -> checks to try; filled on success only, so its size is bounded by the
        # keys and algorithms, never by what attackers send. A race only computes twice.
        self._checks: dict[tuple[str | None, str], tuple[tuple[PublicKey, _Check], ...]] = {}

    @classmethod
    def from_jwks(cls, document: Mapping[str, Any]) -> PublicKeySet:
        """Import ``{"keys": [...]}``. Raises :class:`JoseError` if the document is not a JWKS."""
        entries = document.get("keys") if isinstance(document, Mapping) else None
        if not isinstance(entries, list):
            raise JoseError("JWKS has no keys array")
        imported = [_import_public_key(e) if isinstance(e, Mapping) else None for e in entries]
        keys = [k for k in imported if k is not None]
        return cls(keys, skipped=len(imported) - len(keys))

    @property
    def kids(self) -> frozenset[str]:
        return frozenset(self._by_kid)

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[PublicKey]:
        return iter(self._keys)

    def get(self, kid: str) -> tuple[PublicKey, ...]:
        """Every key published under ``kid`` (normally one); empty when unknown."""
        return self._by_kid.get(kid, ())

    def _candidates(self, kid: str | None, alg: str) -> tuple[tuple[PublicKey, _Check], ...]:
        """Select and remember the checks for (kid, alg); verify_jws reads ``_checks`` first."""
        found = self._checks[kid, alg] = tuple((k, k.checks[alg]) for k in self._select(kid, alg))
        return found

    def _select(self, kid: str | None, alg: str) -> tuple[PublicKey, ...]:
        if kid is None:
            usable = tuple(k for k in self._keys if alg in k.checks)
            if not usable:
                raise UnknownKeyError("no key for the token's alg")
            return usable[:_MAX_KIDLESS_CANDIDATES]
        keys = self._by_kid.get(kid)
        if keys is None:
            raise UnknownKeyError("unknown kid")
        usable = tuple(k for k in keys if alg in k.checks)
        if not usable:
            # RFC 8725 §3.1: the key's algorithm is fixed; a different header alg is an attack.
            raise JoseError("alg does not match the key")
        return usable


class VerifiedJWS(NamedTuple):
    """A JWS whose signature verified: its protected header, JSON payload and the key used.

    Immutable. A NamedTuple rather than a frozen dataclass because one is built per verification
    and a tuple is several times cheaper to construct.
    """

    header: Mapping[str, Any]
    claims: Mapping[str, Any]
    key: PublicKey


# NamedTuple.__new__ is a Python function; tuple.__new__ builds the same object in C.
_new_verified: Final = functools.partial(tuple.__new__, VerifiedJWS)


def verify_jws(
    token: str,
    keys: PublicKeySet,
    *,
    algorithms: Collection[str],
    max_length: int = 16384,
) -> VerifiedJWS:
    """Verify a compact JWS; return its protected header and JSON object payload.

    ``algorithms`` is the caller's allowlist (RFC 8725 §3.1); only names that are also in
    :data:`SUPPORTED_ALGORITHMS` can ever succeed. Raises :class:`UnknownKeyError` when no key
    matches the header's ``kid`` (or, without one, its ``alg``), :class:`JoseError` otherwise.
    """
    header_segment, payload_segment, signature_segment = split(token, max_length)
    header = parse_header(header_segment)
    # RFC 8725 §3.1: the algorithm must be on the caller's allowlist; "none" and HS* never pass,
    # because no key in a PublicKeySet has a check for them.
    alg = header.alg
    if alg not in algorithms:
        raise JoseError("alg not allowed")
    candidates = keys._checks.get((header.kid, alg)) or keys._candidates(header.kid, alg)
    signature = decode_segment(signature_segment)
    signing_input = header_segment + b"." + payload_segment
    for key, check in candidates:
        if check(signature, signing_input):
            return _new_verified((header.params, json_object(payload_segment), key))
    raise JoseError("signature verification failed")


def is_numeric_date(value: object) -> bool:
    """RFC 7519 §2 NumericDate: a finite JSON number. ``true`` is not a number."""
    # bool is a subclass of int, hence the exact type checks; a JSON int is always finite.
    return type(value) is int or (type(value) is float and math.isfinite(value))
