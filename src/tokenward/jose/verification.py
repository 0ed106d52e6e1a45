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
* Only the compact serialization with three base64url segments is accepted (RFC 8725bis §3.14).
* The payload is decoded only after the signature has verified.

Public keys are imported once, with joserfc (the only package allowed to import it), into
``cryptography`` key objects; each verification then calls ``cryptography`` directly, which keeps
it within a few microseconds of the bare signature check (see ``bench/bench_verify.py``).
"""

from __future__ import annotations

import binascii
import functools
import json
import math
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from json.scanner import make_scanner
from types import MappingProxyType
from typing import Any, Final, NamedTuple, cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
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
    return int.from_bytes(_b64decode(n.encode("ascii")), "big").bit_length()


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
        found = self._checks.get((kid, alg))
        if found is None:
            keys = self._select(kid, alg)
            found = self._checks[kid, alg] = tuple((k, k.checks[alg]) for k in keys)
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


# RFC 7515 §2: base64url "with all trailing '=' characters omitted ... and without the inclusion
# of any line breaks, whitespace, or other additional characters".
_B64URL: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_TO_STANDARD: Final = bytes.maketrans(b"-_", b"+/")
# The last character of an encoding of length 2 or 3 (mod 4) carries unused low bits, which must
# be zero; otherwise several strings would decode to the same octets.
_CANONICAL_LAST: Final = {0: None, 2: frozenset(b"AQgw"), 3: frozenset(b"AEIMQUYcgkosw048")}


def _b64decode(segment: bytes) -> bytes:
    """Decode an unpadded base64url segment already checked to use only its alphabet."""
    remainder = len(segment) % 4
    last = _CANONICAL_LAST.get(remainder, frozenset())  # remainder 1 is never valid
    if last is not None and segment[-1] not in last:
        raise JoseError("invalid base64url")
    return binascii.a2b_base64(segment.translate(_TO_STANDARD) + b"=" * (-remainder % 4))


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # RFC 7515 §5.2 / RFC 7519 §4: a parser MUST either reject duplicate member names or keep
    # the last one. Rejecting removes any disagreement between this parser and others.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate member name")
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


_STRICT_JSON: Final = json.JSONDecoder(
    object_pairs_hook=_object_without_duplicates, parse_constant=_reject_constant
)
# The C scanners, without JSONDecoder.decode's Python layer. The plain one builds dicts directly
# and is much cheaper than going through object_pairs_hook.
# (typeshed types make_scanner's argument as a scanner; any JSONDecoder is what it reads.)
_scan_plain: Final = make_scanner(cast(Any, json.JSONDecoder(parse_constant=_reject_constant)))
_scan_strict: Final = make_scanner(cast(Any, _STRICT_JSON))
_JSON_WHITESPACE: Final = " \t\n\r"


def _parse_json(text: str) -> Any:
    """``text`` as JSON, rejecting NaN/Infinity, duplicate member names and trailing data."""
    try:
        value, end = _scan_plain(text, 0)
    except StopIteration:  # leading whitespace, or no JSON value at all
        return _STRICT_JSON.decode(text)
    # Duplicate names could hide in an object the plain parse collapsed. Every object member
    # after the first needs a comma, so an object with N distinct top-level names and any
    # duplicate, anywhere, has at least N commas in its text. With exactly N - 1 there is none;
    # otherwise (arrays, nested objects, commas in strings) parse again, rejecting duplicates.
    if type(value) is dict and text.count(",") + 1 != len(value):
        value, end = _scan_strict(text, 0)
    if end != len(text) and text[end:].strip(_JSON_WHITESPACE):
        raise ValueError("data after the JSON value")
    return value


def _json_object(segment: bytes) -> dict[str, Any]:
    """A base64url segment holding a UTF-8 JSON object (RFC 7515 §5.2 steps 2-3, 7-8)."""
    try:
        text = _b64decode(segment).decode("utf-8")  # UTF-8 only, never UTF-16/32 detection
        value = _parse_json(text)
        if "\\" in text:  # only escapes can produce a lone surrogate
            _reject_lone_surrogates(value)
    except (ValueError, RecursionError) as exc:  # binascii.Error, UnicodeError are ValueErrors
        raise JoseError("segment is not base64url UTF-8 JSON") from exc
    if type(value) is not dict:
        raise JoseError("segment is not a JSON object")
    return value


def _reject_lone_surrogates(value: Any) -> None:
    """JSON escapes can spell unpaired UTF-16 surrogates, which are not Unicode text."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            item.encode("utf-8")  # UnicodeEncodeError, a ValueError, on a lone surrogate
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


class _Header(NamedTuple):
    alg: str
    kid: str | None
    params: Mapping[str, Any]


def _parse_header(segment: bytes) -> _Header:
    params = _json_object(segment)
    alg = params.get("alg")
    if type(alg) is not str:
        raise JoseError("header has no alg")
    # RFC 7515 §4.1.11: if a listed extension "is not understood and/or supported by the
    # recipient, then the JWS is invalid". None is supported here, and "crit":[] is itself
    # invalid (producers "MUST NOT use the empty list"), so any "crit" rejects the token.
    if "crit" in params:
        raise JoseError("crit header parameter not supported")
    kid = params.get("kid")
    if kid is not None and type(kid) is not str:
        raise JoseError("kid is not a string")
    # "jku", "x5u", "jwk" and "x5c" are deliberately never read (RFC 8725 §3.10): keys come only
    # from the caller's PublicKeySet.
    return _Header(alg, kid, MappingProxyType(params))


# Tokens from one issuer share a handful of headers, so parsing them once per process is a cheap
# win. Failures are not cached (lru_cache does not cache exceptions).
_parse_header_cached: Final = functools.lru_cache(maxsize=64)(_parse_header)


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
    # RFC 8725bis §3.13: bound the work before decoding anything.
    if type(token) is not str or len(token) > max_length or not token.isascii():
        raise JoseError("not a compact JWS of acceptable size")
    raw = token.encode("ascii")
    # Exactly three non-empty segments of the base64url alphabet. Rejects JWE (five parts), the
    # JSON serializations, padding, whitespace and "h.p." (a stripped signature).
    if raw.translate(None, _B64URL) != b"..":
        raise JoseError("not a compact JWS")
    header_segment, payload_segment, signature_segment = raw.split(b".")
    if not (header_segment and payload_segment and signature_segment):
        raise JoseError("not a compact JWS")
    if len(header_segment) <= _CACHED_HEADER_MAX:
        header = _parse_header_cached(header_segment)
    else:
        header = _parse_header(header_segment)
    # RFC 8725 §3.1: the algorithm must be on the caller's allowlist; "none" and HS* never pass,
    # because no key in a PublicKeySet has a check for them.
    alg = header.alg
    if alg not in algorithms:
        raise JoseError("alg not allowed")
    candidates = keys._checks.get((header.kid, alg)) or keys._candidates(header.kid, alg)
    signature = _b64decode(signature_segment)
    signing_input = raw[: len(header_segment) + 1 + len(payload_segment)]
    for key, check in candidates:
        if check(signature, signing_input):
            return _new_verified((header.params, _json_object(payload_segment), key))
    raise JoseError("signature verification failed")


def is_numeric_date(value: object) -> bool:
    """RFC 7519 §2 NumericDate: a finite JSON number. ``true`` is not a number."""
    # bool is a subclass of int, hence the exact type checks; a JSON int is always finite.
    return type(value) is int or (type(value) is float and math.isfinite(value))
