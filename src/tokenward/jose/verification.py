"""Sans-IO verification of compact JWS / JWT signatures — RFC 7515, RFC 7517, RFC 7518, RFC 8725.

Used by the resource library (RFC 9068 access tokens) and by the authorization server (RFC 7523
client assertions). Both callers then check claims themselves; this module only answers "was this
exact byte string signed by one of these public keys, with an algorithm on the allowlist?".

Design, after RFC 8725 §3.1 ("Libraries MUST enable the caller to specify a supported set of
algorithms and MUST NOT use any other algorithms when performing cryptographic operations") and
§3.10 ("Do Not Trust Received Claims"):

* Only asymmetric algorithms exist here. There is no HMAC code path, so an ``HS256`` token
  "signed" with a public key can never verify (algorithm confusion, RFC 8725 §2.1).
* Keys come only from a :class:`PublicKeySet` built from the issuer's JWKS. The ``jku``, ``x5u``,
  ``jwk`` and ``x5c`` header parameters are never fetched or used.
* A key is bound to the algorithms its type allows and, if the JWK names one, to exactly that
  ``alg`` (RFC 8725 §3.1: "each key MUST be used with exactly one algorithm").
* Only the compact serialization with three base64url segments is accepted (RFC 8725bis §3.14).
* The payload is decoded only after the signature has verified.

Public keys are imported once, with joserfc (the only package allowed to import it), into
``cryptography`` key objects; verification then calls ``cryptography`` directly.
"""

from __future__ import annotations

import binascii
import functools
import json
import math
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc.errors import JoseError as _JoserfcError
from joserfc.jwk import JWKRegistry

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


class JoseError(Exception):
    """A JWS could not be verified. ``reason`` is short, fixed text: safe for logs, no input."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownKeyError(JoseError):
    """No key in the set matches the header's ``kid`` (or, without ``kid``, its ``alg``).

    Callers holding a cached JWKS may refetch it once (rate-limited) and retry.
    """


_MAX_KIDLESS_CANDIDATES: Final = 3  # keys tried when the header carries no "kid"
_MIN_RSA_BITS: Final = 2048  # RFC 7518 §3.3: "A key of size 2048 bits or larger MUST be used"
_CACHED_HEADER_MAX: Final = 512  # header segments up to this length are memoised

_Verify = Callable[[Any, bytes, bytes], None]  # (public key, signature, signing input)


@dataclass(frozen=True, slots=True)
class _Algorithm:
    name: str
    kty: str
    verify: _Verify
    curve: str | None = None  # EC / OKP curve name ("crv") the algorithm requires
    signature_length: int | None = None  # fixed length in octets, when the algorithm has one


def _ecdsa(hash_algorithm: hashes.HashAlgorithm, size: int) -> _Verify:
    scheme = ec.ECDSA(hash_algorithm)

    def verify(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> None:
        # RFC 7518 §3.4: the JWS signature is R || S, each a fixed-size big-endian integer;
        # cryptography wants the DER encoding.
        r = int.from_bytes(signature[:size], "big")
        s = int.from_bytes(signature[size:], "big")
        key.verify(encode_dss_signature(r, s), data, scheme)

    return verify


def _rsa(pad: padding.AsymmetricPadding, hash_algorithm: hashes.HashAlgorithm) -> _Verify:
    def verify(key: rsa.RSAPublicKey, signature: bytes, data: bytes) -> None:
        key.verify(signature, data, pad, hash_algorithm)

    return verify


def _pss(hash_algorithm: hashes.HashAlgorithm) -> _Verify:
    # RFC 7518 §3.5: "The size of the salt value is the same size as the hash function output."
    pad = padding.PSS(mgf=padding.MGF1(hash_algorithm), salt_length=hash_algorithm.digest_size)
    return _rsa(pad, hash_algorithm)


def _eddsa(key: ed25519.Ed25519PublicKey | ed448.Ed448PublicKey, sig: bytes, data: bytes) -> None:
    key.verify(sig, data)


_ALGORITHMS: Final[Mapping[str, tuple[_Algorithm, ...]]] = {
    a[0].name: a
    for a in (
        (_Algorithm("ES256", "EC", _ecdsa(hashes.SHA256(), 32), "P-256", 64),),
        (_Algorithm("ES384", "EC", _ecdsa(hashes.SHA384(), 48), "P-384", 96),),
        (_Algorithm("ES512", "EC", _ecdsa(hashes.SHA512(), 66), "P-521", 132),),
        (_Algorithm("RS256", "RSA", _rsa(padding.PKCS1v15(), hashes.SHA256())),),
        (_Algorithm("RS384", "RSA", _rsa(padding.PKCS1v15(), hashes.SHA384())),),
        (_Algorithm("RS512", "RSA", _rsa(padding.PKCS1v15(), hashes.SHA512())),),
        (_Algorithm("PS256", "RSA", _pss(hashes.SHA256())),),
        (_Algorithm("PS384", "RSA", _pss(hashes.SHA384())),),
        (_Algorithm("PS512", "RSA", _pss(hashes.SHA512())),),
        # RFC 8037 "EdDSA" covers both curves; RFC 9864 adds the fully specified names.
        (
            _Algorithm("EdDSA", "OKP", _eddsa, "Ed25519", 64),
            _Algorithm("EdDSA", "OKP", _eddsa, "Ed448", 114),
        ),
        (_Algorithm("Ed25519", "OKP", _eddsa, "Ed25519", 64),),
        (_Algorithm("Ed448", "OKP", _eddsa, "Ed448", 114),),
    )
}

#: Every JWS ``alg`` this module can verify. All asymmetric: ``none`` and ``HS*`` do not exist here.
SUPPORTED_ALGORITHMS: Final[frozenset[str]] = frozenset(_ALGORITHMS)

# Only public members are ever read from a JWK (RFC 7518 §6, RFC 8037 §2); private members such
# as "d", "p", "q" are dropped before import so no private key object is ever built.
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
    algorithms: frozenset[str]
    key: Any = field(repr=False)
    _modes: Mapping[str, _Algorithm] = field(repr=False, compare=False)

    def verify(self, alg: str, signature: bytes, signing_input: bytes) -> bool:
        """True when ``signature`` over ``signing_input`` is valid for ``alg`` with this key."""
        mode = self._modes.get(alg)
        return mode is not None and self._checker(mode)(signature, signing_input)

    def _checker(self, mode: _Algorithm) -> _Check:
        verify, key = mode.verify, self.key
        # RFC 7518 §3.3, §3.4, RFC 8037 §3.1: every signature has an exact length; anything
        # else is refused before any big-number work.
        length = mode.signature_length or (key.key_size + 7) // 8

        def check(signature: bytes, signing_input: bytes) -> bool:
            if len(signature) != length:
                return False
            try:
                verify(key, signature, signing_input)
            except InvalidSignature:
                return False
            return True

        return check


_Check = Callable[[bytes, bytes], bool]


def _import_public_key(jwk: Mapping[str, Any]) -> PublicKey | None:
    """A usable signature key from one JWK, or None when the JWK is not one we can use."""
    kty = jwk.get("kty")
    members = _PUBLIC_MEMBERS.get(kty) if isinstance(kty, str) else None
    if members is None or any(not isinstance(jwk.get(m), str) for m in members):
        return None  # "oct" (symmetric) and unknown key types are never usable here
    if jwk.get("use", "sig") != "sig":
        return None
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        return None
    kid, jwk_alg = jwk.get("kid"), jwk.get("alg")
    if (kid is not None and not isinstance(kid, str)) or (
        jwk_alg is not None and not isinstance(jwk_alg, str)
    ):
        return None
    try:
        native = JWKRegistry.import_key({m: jwk[m] for m in members}).public_key
    except (_JoserfcError, ValueError, TypeError, KeyError):
        return None
    return _bind(native, kty, kid, jwk_alg, jwk.get("crv"))


def _bind(native: Any, kty: str, kid: str | None, jwk_alg: str | None, crv: Any) -> PublicKey | None:
    if isinstance(native, rsa.RSAPublicKey) and native.key_size < _MIN_RSA_BITS:
        return None
    modes = {
        mode.name: mode
        for modes_for_alg in _ALGORITHMS.values()
        for mode in modes_for_alg
        if mode.kty == kty
        and mode.curve in (None, crv)
        and (jwk_alg is None or mode.name == jwk_alg)
    }
    if not modes:
        return None  # e.g. an "alg" the key type cannot do, or a curve we do not support
    return PublicKey(kid, kty, frozenset(modes), native, MappingProxyType(modes))


class PublicKeySet:
    """Public keys from one issuer's JWKS (RFC 7517 §5), indexed for verification.

    JWKs that are not usable signature keys (symmetric, encryption, unsupported curve, RSA under
    2048 bits, malformed) are skipped rather than failing the whole set; ``skipped`` counts them.
    """

    def __init__(self, keys: Iterable[PublicKey], *, skipped: int = 0) -> None:
        self._keys = tuple(keys)
        self.skipped = skipped
        by_kid: dict[str, list[PublicKey]] = {}
        for key in self._keys:
            if key.kid is not None:
                by_kid.setdefault(key.kid, []).append(key)
        self._by_kid = {kid: tuple(keys) for kid, keys in by_kid.items()}
        # (kid, alg) -> bound signature checks, filled on first use; a race only computes twice.
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

    def _checks_for(self, kid: str | None, alg: str) -> tuple[tuple[PublicKey, _Check], ...]:
        """The keys to try for a header, or raise :class:`UnknownKeyError` / :class:`JoseError`."""
        found = self._checks.get((kid, alg))
        if found is None:
            keys = self._select(kid, alg)
            found = tuple((k, k._checker(k._modes[alg])) for k in keys)
            self._checks[kid, alg] = found
        return found

    def _select(self, kid: str | None, alg: str) -> tuple[PublicKey, ...]:
        if kid is None:
            # No "kid": try the few keys that can do this alg.
            usable = tuple(k for k in self._keys if alg in k.algorithms)
            if not usable:
                raise UnknownKeyError("no key for the token's alg")
            return usable[:_MAX_KIDLESS_CANDIDATES]
        keys = self._by_kid.get(kid)
        if keys is None:
            raise UnknownKeyError("unknown kid")
        usable = tuple(k for k in keys if alg in k.algorithms)
        if not usable:
            # RFC 8725 §3.1: the key's algorithm is fixed; a different header alg is an attack.
            raise JoseError("alg does not match the key")
        return usable


class VerifiedJWS(NamedTuple):
    """A JWS whose signature verified: its protected header, JSON payload and the key used.

    A NamedTuple rather than a frozen dataclass: it is built on every verification and tuple
    construction is several times cheaper.
    """

    header: Mapping[str, Any]
    claims: Mapping[str, Any]
    key: PublicKey


@dataclass(frozen=True, slots=True)
class _Header:
    alg: str
    kid: str | None
    params: Mapping[str, Any]


# base64url alphabet (RFC 4648 §5) without padding: RFC 7515 §2 "with all trailing '='
# characters omitted ... and without the inclusion of any line breaks, whitespace, or other
# additional characters".
_B64URL: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_TO_STANDARD: Final = bytes.maketrans(b"-_", b"+/")
# Last character of a canonical encoding whose length is 2 or 3 (mod 4): the unused low bits
# must be zero, otherwise several strings would decode to the same bytes.
_CANONICAL_LAST: Final = {2: frozenset(b"AQgw"), 3: frozenset(b"AEIMQUYcgkosw048")}


def _b64decode(segment: bytes) -> bytes:
    remainder = len(segment) % 4
    if remainder == 1 or (remainder and segment[-1] not in _CANONICAL_LAST[remainder]):
        raise JoseError("invalid base64url")
    return binascii.a2b_base64(segment.translate(_TO_STANDARD) + b"=" * (-remainder % 4))


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # RFC 7515 §5.2 / RFC 7519 §4: parsers MUST either reject duplicate member names or use the
    # last one; rejecting removes any ambiguity between this verifier and other parsers.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate member")
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


_JSON = json.JSONDecoder(
    object_pairs_hook=_object_without_duplicates, parse_constant=_reject_constant
)


_scan_json = _JSON.scan_once  # the C scanner: skips JSONDecoder.decode's Python wrapper
_JSON_WHITESPACE: Final = " \t\n\r"


def _json_object(segment: bytes) -> dict[str, Any]:
    try:
        text = _b64decode(segment).decode("utf-8")  # RFC 7515: UTF-8 only, never UTF-16/32
        try:
            value, end = _scan_json(text, 0)
        except StopIteration:  # leading whitespace or no JSON value at all
            value, end = _JSON.decode(text), len(text)
        if end != len(text) and text[end:].strip(_JSON_WHITESPACE):
            raise ValueError("data after the JSON value")
        if "\\u" in text:
            _reject_lone_surrogates(value)
    except (ValueError, RecursionError) as exc:  # binascii.Error, UnicodeError are ValueErrors
        raise JoseError("segment is not a base64url UTF-8 JSON object") from exc
    if not isinstance(value, dict):
        raise JoseError("segment is not a base64url UTF-8 JSON object")
    return value


def _reject_lone_surrogates(value: Any) -> None:
    """Only reached when the text had a \\u escape: JSON can spell unpaired surrogates."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            item.encode("utf-8")  # UnicodeEncodeError (a ValueError) on a lone surrogate
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _parse_header(segment: bytes) -> _Header:
    params = _json_object(segment)
    alg = params.get("alg")
    if not isinstance(alg, str):
        raise JoseError("header has no alg")
    # RFC 7515 §4.1.11: if any listed extension "is not understood and/or supported by the
    # recipient, then the JWS is invalid". This verifier supports none, and "crit":[] is itself
    # invalid ("MUST NOT" be empty), so any "crit" rejects the token.
    if "crit" in params:
        raise JoseError("crit header parameter not supported")
    kid = params.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise JoseError("kid is not a string")
    # "jku", "x5u", "jwk", "x5c": deliberately never read (RFC 8725 §3.10). Keys come only from
    # the caller's PublicKeySet.
    return _Header(alg, kid, MappingProxyType(params))


_parse_header_cached = functools.lru_cache(maxsize=64)(_parse_header)


def verify_jws(
    token: str,
    keys: PublicKeySet,
    *,
    algorithms: Collection[str],
    max_length: int = 16384,
) -> VerifiedJWS:
    """Verify a compact JWS and return its header and JSON payload.

    ``algorithms`` is the caller's allowlist (RFC 8725 §3.1); only names in
    :data:`SUPPORTED_ALGORITHMS` can ever succeed. Raises :class:`UnknownKeyError` when no key
    matches the header's ``kid``, :class:`JoseError` for every other failure.
    """
    # RFC 8725bis §3.13: bound the work before decoding anything.
    if type(token) is not str or len(token) > max_length or not token.isascii():
        raise JoseError("not a compact JWS of acceptable size")
    raw = token.encode("ascii")
    # Exactly three non-empty segments of the base64url alphabet: rejects JWE (five parts),
    # the JSON serializations, padding, whitespace and "h.p." (a stripped signature).
    if raw.translate(None, _B64URL) != b"..":
        raise JoseError("not a compact JWS")
    header_segment, payload_segment, signature_segment = raw.split(b".")
    if not (header_segment and payload_segment and signature_segment):
        raise JoseError("not a compact JWS")
    if len(header_segment) <= _CACHED_HEADER_MAX:
        header = _parse_header_cached(header_segment)
    else:
        header = _parse_header(header_segment)
    # RFC 8725 §3.1: the algorithm comes from the caller's allowlist; "none" and HS* can never
    # pass because no such verifier exists in this module.
    alg = header.alg
    if alg not in algorithms or alg not in _ALGORITHMS:
        raise JoseError("alg not allowed")
    checks = keys._checks_for(header.kid, alg)
    signature = _b64decode(signature_segment)
    signing_input = raw[: len(header_segment) + 1 + len(payload_segment)]
    for key, check in checks:
        if check(signature, signing_input):
            return VerifiedJWS(header.params, _json_object(payload_segment), key)
    raise JoseError("signature verification failed")


def is_numeric_date(value: object) -> bool:
    """RFC 7519 §2 NumericDate: a finite JSON number (``true`` is not a number)."""
    # bool is a subclass of int, hence the exact type checks; ints of any size are finite.
    return type(value) is int or (type(value) is float and math.isfinite(value))
