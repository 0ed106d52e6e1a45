"""Request parsing: the form parser, the JSON extension and the Basic decoder.

RFC 6749 §3.2 (no repeated parameters, empty means omitted), Appendix B (form encoding, UTF-8),
§2.3.1 (Basic credentials are form-urlencoded before base64), RFC 8259 §4 (duplicate JSON keys).

Checklist IDs covered here, sans-IO: TE-04, TE-06, TE-17, TE-18, CA-04, CA-05 and the parsing
probes H1, H2, H6, H11 of catalogue 2.2. The same IDs are asserted over HTTP, with exact
statuses and bodies, in tests/server/test_token_endpoint.py.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable
from urllib.parse import quote, quote_plus, unquote_to_bytes, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenward.protocol.errors import InvalidRequest
from tokenward.protocol.params import (
    MAX_PARAMS,
    BasicCredentials,
    parse_basic,
    parse_form,
    parse_json,
)

# Text that UTF-8 can encode (no lone surrogates), as any client could send it.
utf8_text = st.text(st.characters(codec="utf-8"), max_size=40)
nonempty_text = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40)


def basic_header(
    client_id: str, secret: str, *, quote_fn: Callable[..., str] = quote_plus
) -> bytes:
    """RFC 6749 §2.3.1: form-urlencode id and secret, join with ':', base64."""
    raw = f"{quote_fn(client_id, safe='')}:{quote_fn(secret, safe='')}"
    return b"Basic " + base64.b64encode(raw.encode())


# -- form: tables ---------------------------------------------------------------------------

FORM_OK: list[tuple[bytes, dict[str, str]]] = [
    (b"", {}),
    (b"grant_type=client_credentials", {"grant_type": "client_credentials"}),
    # TE-04: "Parameters sent without a value MUST be treated as if they were omitted".
    (b"grant_type=client_credentials&scope=", {"grant_type": "client_credentials"}),
    (b"grant_type=client_credentials&scope", {"grant_type": "client_credentials"}),
    (b"a=1&&b=2&", {"a": "1", "b": "2"}),
    (b"scope=read+write", {"scope": "read write"}),
    (b"scope=read%20write", {"scope": "read write"}),
    (b"client_secret=Secr3t!", {"client_secret": "Secr3t!"}),  # seed 003, sent unencoded
    (b"client_id=a%3Ab&client_secret=%20%25%26%2B", {"client_id": "a:b", "client_secret": " %&+"}),
    (b"x=%C3%A9", {"x": "\u00e9"}),
    # A '%' that starts no escape is kept as is (WHATWG urlencoded parsing; Basic is stricter).
    (b"client_secret=a%ZZ%4%", {"client_secret": "a%ZZ%4%"}),
    # H2: array/object syntax is not interpreted, the names are just unknown parameters.
    (b"scope[]=read&scope[a]=b", {"scope[]": "read", "scope[a]": "b"}),
]


@pytest.mark.parametrize(("body", "expected"), FORM_OK)
def test_form_parses(body: bytes, expected: dict[str, str]) -> None:
    assert parse_form(body) == expected


FORM_REJECTED: list[tuple[bytes, str]] = [
    # TE-06 / H1: "MUST NOT be included more than once".
    (
        b"grant_type=client_credentials&grant_type=client_credentials",
        "parameter grant_type repeated",
    ),
    (b"scope=a&scope=b", "parameter scope repeated"),
    (b"client_id=c1&client_id=c2", "parameter client_id repeated"),
    (b"client_secret=x&client_secret=s1", "parameter client_secret repeated"),
    # A repeat is a repeat even when one of the two is empty, or spelled with escapes.
    (b"scope=&scope=read", "parameter scope repeated"),
    (b"scope=read&sc%6Fpe=write", "parameter scope repeated"),
    # TE-18 / H6: invalid UTF-8 after percent-decoding is an error, never U+FFFD.
    (b"client_id=%FF%FE", "request contains invalid UTF-8"),
    (b"client_id=%C0%AF", "request contains invalid UTF-8"),
    (b"%FF=x", "request contains invalid UTF-8"),
    (b"client_id=\xff", "request contains invalid UTF-8"),
    # Bounds (H3): too many pairs, an oversized value, an oversized name.
    (b"&".join(b"p%d=v" % i for i in range(MAX_PARAMS + 1)), "too many parameters"),
    (b"scope=" + b"a" * (8 * 1024 + 1), "parameter too long"),
    (b"n" * 129 + b"=v", "parameter name too long"),
]


@pytest.mark.parametrize(("body", "description"), FORM_REJECTED)
def test_form_rejects(body: bytes, description: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_form(body)
    assert info.value.body() == {"error": "invalid_request", "error_description": description}


# -- form: properties -----------------------------------------------------------------------

param_names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=20)


@given(st.dictionaries(param_names, utf8_text, max_size=20))
def test_form_round_trip(params: dict[str, str]) -> None:
    """Any parameters, form-encoded as a client library would, parse back (empties dropped)."""
    body = urlencode(params).encode("ascii")
    assert parse_form(body) == {k: v for k, v in params.items() if v}


@given(st.dictionaries(param_names, utf8_text, max_size=20))
def test_form_round_trip_percent_twenty(params: dict[str, str]) -> None:
    """Encoders that write %20 (not '+') for spaces parse the same."""
    body = urlencode(params, quote_via=quote).encode("ascii")
    assert parse_form(body) == {k: v for k, v in params.items() if v}


@given(param_names, utf8_text, utf8_text)
def test_form_any_repeat_is_rejected(name: str, first: str, second: str) -> None:
    body = f"{quote_plus(name)}={quote_plus(first)}&{quote_plus(name)}={quote_plus(second)}"
    with pytest.raises(InvalidRequest):
        parse_form(body.encode())


@given(st.binary(max_size=300))
def test_form_any_bytes_parse_or_invalid_request(body: bytes) -> None:
    """Arbitrary bytes give a dict of non-empty strings or invalid_request; nothing else."""
    try:
        params = parse_form(body)
    except InvalidRequest:
        pass  # the only exception allowed: a 400 invalid_request
    else:
        assert all(isinstance(v, str) and v for v in params.values())
        # No silent replacement: U+FFFD only where the client itself encoded one.
        if "\ufffd" in "".join([*params, *params.values()]):
            assert "\ufffd".encode() in unquote_to_bytes(body.replace(b"+", b" "))


# -- JSON extension (CA-05) -----------------------------------------------------------------

JSON_OK: list[tuple[bytes, dict[str, str]]] = [
    (
        json.dumps(
            {
                "grant_type": "client_credentials",
                "client_id": "b4460113-f097-49ae-9225-f741a7bf07ed",
                "client_secret": "QgKgOXOwCvffUbMJKD4Lu21sZAmvw1pHGpKv1Zb6OdXBn2rkDLcyKz0JYSsFitIw",
                "scope": "*",
            }
        ).encode(),
        {
            "grant_type": "client_credentials",
            "client_id": "b4460113-f097-49ae-9225-f741a7bf07ed",
            "client_secret": "QgKgOXOwCvffUbMJKD4Lu21sZAmvw1pHGpKv1Zb6OdXBn2rkDLcyKz0JYSsFitIw",
            "scope": "*",
        },
    ),
    (b'{"grant_type":"client_credentials","scope":""}', {"grant_type": "client_credentials"}),
    (b'{"grant_type":"client_credentials","scope":null}', {"grant_type": "client_credentials"}),
    (b"{}", {}),
    (json.dumps({"client_secret": "s" * 8192}).encode(), {"client_secret": "s" * 8192}),
]


@pytest.mark.parametrize(("body", "expected"), JSON_OK)
def test_json_parses(body: bytes, expected: dict[str, str]) -> None:
    assert parse_json(body) == expected


JSON_REJECTED: list[tuple[bytes, str]] = [
    # CA-05: json.loads keeps the last duplicate; tokenward refuses the request.
    (
        b'{"client_id":"c1","client_secret":"x","client_secret":"s1"}',
        "parameter client_secret repeated",
    ),
    (b'{"client_secret":["s1"]}', "parameter client_secret must be a string"),
    (b'{"client_secret":1}', "parameter client_secret must be a string"),
    (b'{"client_secret":true}', "parameter client_secret must be a string"),
    (b'{"client_secret":{"a":"b"}}', "parameter client_secret must be a string"),
    (b'["grant_type","client_credentials"]', "JSON body must be an object"),
    (b'"grant_type"', "JSON body must be an object"),
    (b"", "malformed JSON body"),
    (b"{", "malformed JSON body"),
    (b"grant_type=client_credentials", "malformed JSON body"),
    (b'{"a":"\xff"}', "request contains invalid UTF-8"),
    (json.dumps({f"p{i}": "v" for i in range(MAX_PARAMS + 1)}).encode(), "too many parameters"),
    (json.dumps({"client_secret": "s" * 8193}).encode(), "parameter too long"),
    # Nesting deep enough to exhaust Python's recursion limit is still just malformed input.
    (b"[" * 5000 + b"]" * 5000, "malformed JSON body"),
    (b'{"a":' * 3000 + b"1" + b"}" * 3000, "malformed JSON body"),
]


@pytest.mark.parametrize(("body", "description"), JSON_REJECTED)
def test_json_rejects(body: bytes, description: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_json(body)
    assert info.value.body() == {"error": "invalid_request", "error_description": description}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | utf8_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(utf8_text, inner, max_size=3),
    max_leaves=10,
)


@given(st.dictionaries(utf8_text, json_values, max_size=8))
def test_json_any_object_parses_or_invalid_request(doc: dict[str, object]) -> None:
    try:
        params = parse_json(json.dumps(doc).encode())
    except InvalidRequest:
        assert any(v not in (None, "") and not isinstance(v, str) for v in doc.values())
    else:
        assert params == {k: v for k, v in doc.items() if isinstance(v, str) and v}


@given(st.binary(max_size=300))
def test_json_any_bytes_parse_or_invalid_request(body: bytes) -> None:
    with contextlib.suppress(InvalidRequest):  # the only exception allowed
        parse_json(body)


# -- Basic (RFC 6749 §2.3.1, RFC 7617) ------------------------------------------------------


@given(nonempty_text, nonempty_text)
def test_basic_round_trip(client_id: str, secret: str) -> None:
    """Any id and secret, form-urlencoded then base64, decode back (TE-17)."""
    assert parse_basic(basic_header(client_id, secret)) == BasicCredentials(client_id, secret)


@given(nonempty_text, nonempty_text)
def test_basic_round_trip_percent_twenty(client_id: str, secret: str) -> None:
    assert parse_basic(basic_header(client_id, secret, quote_fn=quote)) == BasicCredentials(
        client_id, secret
    )


@given(st.binary(max_size=200))
def test_basic_any_bytes_decode_or_invalid_request(token: bytes) -> None:
    try:
        creds = parse_basic(b"Basic " + token)
    except InvalidRequest:
        pass  # the only exception allowed: a 400 invalid_request
    else:
        assert creds.client_id
        assert creds.client_secret


BASIC_OK: list[tuple[bytes, BasicCredentials]] = [
    (b"Basic YzE6czE=", BasicCredentials("c1", "s1")),
    (b"basic YzE6czE=", BasicCredentials("c1", "s1")),  # RFC 7235 §2.1: scheme is case-insensitive
    (b"BASIC  YzE6czE=", BasicCredentials("c1", "s1")),
    # TE-17: id "a:b", secret " %&+"
    (b"Basic YSUzQWI6JTIwJTI1JTI2JTJC", BasicCredentials("a:b", " %&+")),
    # The secret may contain ':' (only the first one separates).
    (b"Basic " + base64.b64encode(b"c1:s:1"), BasicCredentials("c1", "s:1")),
    # seed 001's example header: client_id:client_secret
    (b"Basic Y2xpZW50X2lkOmNsaWVudF9zZWNyZXQ=", BasicCredentials("client_id", "client_secret")),
]


@pytest.mark.parametrize(("header", "expected"), BASIC_OK)
def test_basic_decodes(header: bytes, expected: BasicCredentials) -> None:
    assert parse_basic(header) == expected


BASIC_REJECTED: list[tuple[bytes, str]] = [
    # TE-17 / H11
    (b"Basic Zm9v", "malformed Basic credentials"),  # "foo": no ':'
    (b"Basic !!!", "malformed Basic credentials"),
    (b"Basic ", "malformed Basic credentials"),
    (b"Basic YzE6czE", "malformed Basic credentials"),  # bad padding
    (b"Basic " + base64.b64encode(b":s1"), "malformed Basic credentials"),
    (b"Basic " + base64.b64encode(b"\xff:s1"), "request contains invalid UTF-8"),
    (b"Basic " + base64.b64encode(b"c1:%FF"), "request contains invalid UTF-8"),
    (b"Basic " + base64.b64encode(b"c%ZZ:s1"), "malformed percent-encoding"),
    # CA-04: an empty secret is never accepted.
    (
        b"Basic " + base64.b64encode(b"c1:"),
        "client_secret must be provided in the Authorization header",
    ),
]


@pytest.mark.parametrize(("header", "description"), BASIC_REJECTED)
def test_basic_rejects(header: bytes, description: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_basic(header)
    assert info.value.body() == {"error": "invalid_request", "error_description": description}


def test_basic_credentials_repr_hides_secret() -> None:
    assert "s1" not in repr(BasicCredentials("c1", "s1"))


@pytest.mark.parametrize(
    "body", [b'{"client_secret": "\\ud800"}', b'{"\\udfff": "x"}', b'{"scope": "a\\ud800b"}']
)
def test_a_lone_surrogate_in_json_is_invalid_request_not_an_error(body: bytes) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_json(body)
    assert refused.value.reason == "lone surrogate"
