"""Strict parsing of token-endpoint requests (RFC 6749 §3.2, §2.3.1, Appendix B).

* "Request and response parameters MUST NOT be included more than once." (§3.2)
* "Parameters sent without a value MUST be treated as if they were omitted from the request."
* Names and values are UTF-8 after percent-decoding (Appendix B): invalid UTF-8 is an error,
  never replaced by U+FFFD.
* The JSON body is a tokenward extension (seed 002); it follows the same rules, rejects
  duplicate keys (RFC 8259 §4 leaves them unpredictable) and accepts only string values.
  JSON escapes can spell a lone UTF-16 surrogate (``"\ud800"``), which is no Unicode text and
  cannot be UTF-8 encoded: such a name or value is rejected like invalid UTF-8 (RFC 8259 §8.2:
  the behavior of software that receives such strings is "unpredictable").
* A parameter name reflected in an ``error_description`` goes through ``reflected=``, so the
  HTTP layer caps its length (``OAuthError.body``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from tokenward.protocol.errors import InvalidRequest, clip

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_PARAMS",
    "BasicCredentials",
    "parse_basic",
    "parse_form",
    "parse_json",
]

MAX_BODY_BYTES = 16 * 1024
MAX_PARAMS = 64
_MAX_VALUE = 8 * 1024
_BAD_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def _decode_component(raw: bytes) -> str:
    """Percent-decode one application/x-www-form-urlencoded component, strictly as UTF-8."""
    try:
        return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("request contains invalid UTF-8", reason="bad utf-8") from None


def parse_form(body: bytes) -> dict[str, str]:
    """Parse a form body into a dict; empty values are dropped, repeated names rejected."""
    params: dict[str, str] = {}
    seen: set[str] = set()
    if not body:
        return params
    pairs = body.split(b"&")
    if len(pairs) > MAX_PARAMS:
        raise InvalidRequest("too many parameters", reason="too many parameters")
    for pair in pairs:
        if not pair:
            continue
        raw_name, _, raw_value = pair.partition(b"=")
        name = _decode_component(raw_name)
        if name in seen:
            raise InvalidRequest(
                "parameter {} repeated", reflected=name, reason=f"duplicate {clip(name)!r}"
            )
        seen.add(name)
        value = _decode_component(raw_value)
        if len(value) > _MAX_VALUE:
            raise InvalidRequest("parameter too long", reason=f"oversized {clip(name)!r}")
        if value:
            params[name] = value
    return _checked_names(params)


def _checked_names(params: dict[str, str]) -> dict[str, str]:
    # Names are echoed in error descriptions; keep them printable and short.
    for name in params:
        if len(name) > 128:
            raise InvalidRequest("parameter name too long", reason="oversized name")
    return params


def _reject_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidRequest(
                "parameter {} repeated", reflected=key, reason=f"duplicate json {clip(key)!r}"
            )
        out[key] = value
    return out


def parse_json(body: bytes) -> dict[str, str]:
    """Parse a JSON object body with the same rules as the form (string values only)."""
    try:
        doc = json.loads(body.decode("utf-8"), object_pairs_hook=_reject_duplicates)
    except UnicodeDecodeError:
        raise InvalidRequest("request contains invalid UTF-8", reason="bad utf-8") from None
    except (ValueError, RecursionError):
        # RecursionError: nesting deeper than the interpreter's limit is malformed input too.
        raise InvalidRequest("malformed JSON body", reason="malformed json") from None
    if not isinstance(doc, Mapping):
        raise InvalidRequest("JSON body must be an object", reason="json not an object")
    if len(doc) > MAX_PARAMS:
        raise InvalidRequest("too many parameters", reason="too many parameters")
    params: dict[str, str] = {}
    for key, value in doc.items():
        _unicode_text(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise InvalidRequest(
                "parameter {} must be a string", reflected=key, reason=f"non-string {clip(key)!r}"
            )
        if len(value) > _MAX_VALUE:
            raise InvalidRequest("parameter too long", reason=f"oversized {clip(key)!r}")
        params[key] = _unicode_text(value)
    return _checked_names(params)


def _unicode_text(text: str) -> str:
    """Refuse a string holding a lone surrogate (only a JSON escape can produce one)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest("request contains invalid Unicode", reason="lone surrogate") from None
    return text


@dataclass(frozen=True, slots=True)
class BasicCredentials:
    client_id: str
    client_secret: str

    def __repr__(self) -> str:
        return f"BasicCredentials(client_id={self.client_id!r}, client_secret='***')"


def parse_basic(value: bytes) -> BasicCredentials:
    """Decode ``Basic <b64(urlencode(id):urlencode(secret))>`` (RFC 6749 §2.3.1, RFC 7617)."""
    token = value[6:].strip()
    if not token:
        raise InvalidRequest("malformed Basic credentials", reason="empty basic")
    try:
        decoded = base64.b64decode(token, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("malformed Basic credentials", reason="basic not base64") from None
    raw_id, sep, raw_secret = decoded.partition(b":")
    if not sep:
        raise InvalidRequest("malformed Basic credentials", reason="basic without colon")
    if _BAD_PERCENT.search(decoded):
        # Both halves were form-urlencoded by the client: a '%' that starts no escape is an
        # encoding error, not a literal (checklist H11; node-oidc-provider does the same).
        raise InvalidRequest("malformed percent-encoding", reason="basic bad percent-encoding")
    # "The client identifier is encoded using the application/x-www-form-urlencoded encoding
    # algorithm ... and the encoded value is used as the username; the client password is
    # encoded using the same algorithm and used as the password." (RFC 6749 §2.3.1)
    client_id = _decode_component(raw_id)
    client_secret = _decode_component(raw_secret)
    if not client_id:
        raise InvalidRequest("malformed Basic credentials", reason="basic empty client_id")
    if not client_secret:
        raise InvalidRequest(
            "client_secret must be provided in the Authorization header",
            reason="basic empty secret",
        )
    return BasicCredentials(client_id, client_secret)
