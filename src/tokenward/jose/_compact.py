"""The JWS Compact Serialization, parsed one way for every caller — RFC 7515 §3.1, §5.2, §7.1.

Access tokens (``verify_jws``) and client assertions (``peek_jws``, ``verify_hmac_jws``) are
split, decoded and parsed here, with one set of rules, so that no string is a JWS on one path
and malformed on the other:

* at most ``max_length`` ASCII characters, checked before anything is decoded (RFC 8725bis
  §3.13), in exactly three non-empty segments of the base64url alphabet (§3.14: compact only);
* canonical base64url: no padding, no whitespace, unused low bits zero (RFC 7515 §2), so one
  JWS has exactly one spelling;
* header and payload are UTF-8 (RFC 8725 §3.7) JSON objects (RFC 7515 §5.2 steps 2-3, 7-8)
  with no duplicate member names, no ``NaN``/``Infinity``, no unpaired UTF-16 surrogate;
* the header has a string ``alg`` (§4.1.1), a string ``kid`` if any (§4.1.4) and no ``crit``
  (§4.1.11): no extension is understood here.

Nothing here checks a signature or trusts a value; callers do that.
"""

from __future__ import annotations

import binascii
import functools
import json
from collections.abc import Mapping
from json.scanner import make_scanner
from types import MappingProxyType
from typing import Any, Final, NamedTuple, cast

__all__ = [
    "Header",
    "JoseError",
    "b64url_decode",
    "decode_segment",
    "json_object",
    "parse_header",
    "parse_json",
    "split",
]


class JoseError(Exception):
    """A JWS could not be verified. ``reason`` is short, fixed text: safe for logs, no input."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# RFC 7515 §2: base64url "with all trailing '=' characters omitted ... and without the inclusion
# of any line breaks, whitespace, or other additional characters".
_B64URL: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_TO_STANDARD: Final = bytes.maketrans(b"-_", b"+/")
# The last character of an encoding of length 2 or 3 (mod 4) carries unused low bits, which must
# be zero; otherwise several strings would decode to the same octets. Length 1 is never valid.
_CANONICAL_LAST: Final = {
    0: None,
    1: frozenset(),
    2: frozenset(b"AQgw"),
    3: frozenset(b"AEIMQUYcgkosw048"),
}
_CACHED_HEADER_MAX: Final = 512  # header segments up to this length are memoised


def split(token: object, max_length: int) -> tuple[bytes, bytes, bytes]:
    """The header, payload and signature segments of a compact JWS (RFC 7515 §7.1)."""
    # RFC 8725bis §3.13: bound the work before decoding anything.
    if type(token) is not str or len(token) > max_length or not token.isascii():
        raise JoseError("not a compact JWS of acceptable size")
    raw = token.encode("ascii")
    # Exactly three non-empty segments of the base64url alphabet. Rejects JWE (five parts), the
    # JSON serializations, padding, whitespace and "h.p." (a stripped signature).
    if raw.translate(None, _B64URL) != b"..":
        raise JoseError("not a compact JWS")
    header, payload, signature = raw.split(b".")
    if not (header and payload and signature):
        raise JoseError("not a compact JWS")
    return header, payload, signature


def decode_segment(segment: bytes) -> bytes:
    """Decode a segment :func:`split` returned (so already of the base64url alphabet)."""
    remainder = len(segment) % 4
    last = _CANONICAL_LAST[remainder]
    if last is not None and segment[-1] not in last:
        raise JoseError("invalid base64url")
    return binascii.a2b_base64(segment.translate(_TO_STANDARD) + b"=" * (-remainder % 4))


def b64url_decode(text: str) -> bytes:
    """Decode a non-empty base64url value from anywhere else (a JWK member, RFC 7518 §6)."""
    raw = text.encode("ascii") if text.isascii() else b"."
    if not raw or raw.translate(None, _B64URL):
        raise JoseError("invalid base64url")
    return decode_segment(raw)


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


def parse_json(text: str) -> Any:
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


def json_object(segment: bytes) -> dict[str, Any]:
    """A segment holding a UTF-8 JSON object (RFC 7515 §5.2 steps 2-3, 7-8)."""
    try:
        text = decode_segment(segment).decode("utf-8")  # UTF-8 only, never UTF-16/32 detection
        value = parse_json(text)
        if "\\" in text:  # only escapes can produce a lone surrogate
            _reject_lone_surrogates(value)
    except (ValueError, RecursionError) as exc:  # UnicodeError is a ValueError
        raise JoseError("segment is not base64url UTF-8 JSON") from exc
    if type(value) is not dict:
        raise JoseError("segment is not a JSON object")
    return value


class Header(NamedTuple):
    """A JOSE header (RFC 7515 §4) that passed the rules of this module."""

    alg: str
    kid: str | None
    params: Mapping[str, Any]


def _parse_header(segment: bytes) -> Header:
    params = json_object(segment)
    alg = params.get("alg")
    if type(alg) is not str:
        # RFC 7515 §4.1.1: "This Header Parameter MUST be present"; "a case-sensitive ASCII
        # string containing a StringOrURI value".
        raise JoseError("header has no alg")
    # RFC 7515 §4.1.11: if a listed extension "is not understood and/or supported by the
    # recipient, then the JWS is invalid". None is supported here, and "crit":[] is itself
    # invalid (producers "MUST NOT use the empty list"), so any "crit" rejects the token.
    if "crit" in params:
        raise JoseError("crit header parameter not supported")
    kid = params.get("kid")
    if kid is not None and type(kid) is not str:
        # RFC 7515 §4.1.4: "The "kid" value is a case-sensitive string."
        raise JoseError("kid is not a string")
    # "jku", "x5u", "jwk" and "x5c" are deliberately never read (RFC 8725 §3.10): keys come only
    # from the caller.
    return Header(alg, kid, MappingProxyType(params))


# Tokens from one issuer share a handful of headers, so parsing them once per process is a cheap
# win. Failures are not cached (lru_cache does not cache exceptions).
_parse_header_cached: Final = functools.lru_cache(maxsize=64)(_parse_header)


def parse_header(segment: bytes) -> Header:
    """The protected header of a segment :func:`split` returned."""
    if len(segment) <= _CACHED_HEADER_MAX:
        return _parse_header_cached(segment)
    return _parse_header(segment)
