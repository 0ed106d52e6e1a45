"""One compact-JWS parser (RFC 7515 §3.1, §5.2, §7.1) for access tokens and client assertions.

``verify_jws`` (access tokens, private_key_jwt), ``peek_jws`` and ``verify_hmac_jws``
(client_secret_jwt) must refuse exactly the same malformed strings, for the same reason: a
string that is a JWS on one path and not on another is a parser differential an attacker can
use. Each case below is signed validly for every path, so only the parsing rules can refuse it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.resource.support import b64, new_key
from tokenward.jose.assertion import peek_jws, verify_hmac_jws
from tokenward.jose.verification import JoseError, PublicKeySet, verify_jws

ES256 = new_key("ES256", kid="k1")
KEYS = PublicKeySet.from_jwks({"keys": [ES256.public_jwk()]})
SECRET = bytes(range(32))
LIMIT = 16384
ALG = "%ALG%"  # replaced by ES256 (access-token path) or HS256 (client_secret_jwt path)


def _es256(signing_input: bytes) -> bytes:
    return ES256.sign(signing_input)


def _hs256(signing_input: bytes) -> bytes:
    return hmac.digest(SECRET, signing_input, hashlib.sha256)


def outcome(verify: Callable[[str], object], token: str) -> str | None:
    """None when the path accepts ``token``, else its refusal reason."""
    try:
        verify(token)
    except JoseError as exc:
        return exc.reason
    return None


def access_token_path(token: str) -> object:
    return verify_jws(token, KEYS, algorithms=["ES256"], max_length=LIMIT)


def peek_path(token: str) -> object:
    return peek_jws(token, max_length=LIMIT)


def hmac_path(token: str) -> object:
    return verify_hmac_jws(token, [SECRET], max_length=LIMIT)


# -- building tokens that differ only in how they are malformed ------------------------------

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def encode(data: bytes, how: str) -> str:
    """base64url of ``data``, spelled canonically or in one of the ways RFC 7515 §2 forbids."""
    text = b64(data)
    if how == "padded":
        return text + "=" * (-len(text) % 4) if len(text) % 4 else text + "===="
    if how == "base64":  # "+" and "/" instead of "-" and "_"
        return (
            text.replace("-", "+").replace("_", "/") if "-" in text or "_" in text else "+" + text
        )
    if how == "unused-bits":  # a last character whose unused low bits are not zero
        if len(text) % 4 in (2, 3):
            return text[:-1] + _ALPHABET[(_ALPHABET.index(text[-1]) + 1) % 64]
        return text + "A"  # one character too many: a length of 1 (mod 4) is never base64url
    if how == "length-1-mod-4":  # never the length of a base64url encoding
        return text + "A" * ((1 - len(text)) % 4)
    if how == "whitespace":
        return text[:1] + " " + text[1:]
    if how == "empty":
        return ""
    return text


def token(
    alg: str,
    header: bytes,
    payload: bytes,
    encodings: tuple[str, str, str],
    structure: str,
) -> str:
    h = encode(header.replace(ALG.encode(), alg.encode()), encodings[0])
    p = encode(payload, encodings[1])
    signing_input = f"{h}.{p}".encode()
    sign = _es256 if alg == "ES256" else _hs256
    parts = [h, p, encode(sign(signing_input), encodings[2])]
    if structure == "five-segments":  # the shape of a JWE (RFC 7516 §7.1)
        parts += ["e30", "e30"]
    elif structure == "two-segments":
        parts = parts[:2]
    elif structure == "non-ascii":
        parts[2] += "é"
    elif structure == "json-serialization":
        return json.dumps({"payload": parts[1], "protected": parts[0], "signature": parts[2]})
    return ".".join(parts)


# JSON members that may follow "alg" in the header, or "sub" in the payload: a few that every
# path accepts and each kind of malformation RFC 7515 §5.2 and RFC 8259 leave to the parser.
MEMBERS = [
    '"typ":"JWT"',
    '"x":"\\u00e9"',  # an escape that is fine
    '"x":"\\ud83d\\ude00"',  # a surrogate pair: fine
    '"x":[1,{"y":[null,true]}]',
    '"x":1e400',  # a JSON number too large for a double: Python's +inf, still JSON
    '"x":"a,b"',
    '"x":NaN',
    '"x":-Infinity',
    '"x":"\\ud800"',  # a lone high surrogate
    '"x":["\\udc00"]',  # a lone low surrogate, in an array
    '"\\udfff":1',  # ... in a member name
    '"x":{"y":1,"y":2}',  # a duplicate member name, nested
    '"x":1,"x":1',  # ... at the top level
]
HEADER_MEMBERS = [
    *MEMBERS,
    '"kid":"k1"',
    '"kid":null',
    '"kid":1',  # RFC 7515 §4.1.4: kid is a string
    '"crit":["exp"]',  # RFC 7515 §4.1.11: no extension is understood
    '"crit":[]',
    f'"alg":"{ALG}"',  # alg twice
]
# Whole segments that are not a JSON object of UTF-8 text.
HEADER_TEXTS = [
    b"{}",  # RFC 7515 §4.1.1: alg MUST be present
    b'{"alg":1}',
    f'["{ALG}"]'.encode(),
    b"null",
    f' {{"alg":"{ALG}"}}\r\n'.encode(),  # JSON whitespace around the object: fine
    f'{{"alg":"{ALG}"}} x'.encode(),  # trailing data
    f'{{"alg":"{ALG}"'.encode(),  # truncated
    f'{{"alg":"{ALG}"}}'.encode("utf-16"),  # RFC 8725 §3.7: UTF-8 only
    f'{{"alg":"{ALG}","x":"\xff"}}'.encode("latin-1"),  # not UTF-8
    b"[" * 100_000,  # deeper than any recursion limit (and over LIMIT once encoded)
    b"[" * 5_000,
]
PAYLOAD_TEXTS = [b"[]", b'"sub"', b"1", b"", b"\xef\xbb\xbf{}", b'{"sub":"c1"}   ', b"{} {}"]


def _object(first: str, members: list[str]) -> bytes:
    return ("{" + ",".join([first, *members]) + "}").encode()


headers = st.one_of(
    st.lists(st.sampled_from(HEADER_MEMBERS), max_size=3).map(
        lambda ms: _object(f'"alg":"{ALG}"', ms)
    ),
    st.sampled_from(HEADER_TEXTS),
)
payloads = st.one_of(
    st.lists(st.sampled_from(MEMBERS), max_size=3).map(lambda ms: _object('"sub":"c1"', ms)),
    st.sampled_from(PAYLOAD_TEXTS),
)
encodings = st.sampled_from(
    ["canonical"] * 6 + ["padded", "base64", "unused-bits", "length-1-mod-4", "whitespace", "empty"]
)
structures = st.sampled_from(
    ["three-segments"] * 6 + ["five-segments", "two-segments", "non-ascii", "json-serialization"]
)


@settings(max_examples=400, deadline=None)
@given(
    header=headers,
    payload=payloads,
    encoding=st.tuples(encodings, encodings, encodings),
    structure=structures,
)
def test_access_token_and_assertion_paths_refuse_the_same_strings(
    header: bytes, payload: bytes, encoding: tuple[str, str, str], structure: str
) -> None:
    es256 = token("ES256", header, payload, encoding, structure)
    hs256 = token("HS256", header, payload, encoding, structure)

    access = outcome(access_token_path, es256)
    peek = outcome(peek_path, es256)  # the very same string
    hmac_signed = outcome(hmac_path, hs256)  # the same malformation, HMAC-signed

    # The same set of strings is refused ...
    assert (access is None, peek is None, hmac_signed is None) == (access is None,) * 3
    # ... and for the same reason.
    assert peek == access
    assert hmac_signed == access


# -- the rules, as request -> expected reason tables --------------------------------------------

WELL_FORMED = [
    ("RFC 7515 §5.2: a minimal JWS", f'{{"alg":"{ALG}"}}', '{"sub":"c1"}'),
    ("RFC 8259 §2: insignificant whitespace", f' {{ "alg" : "{ALG}" }}\n', ' { "sub" : "c1" } '),
    ("RFC 8259 §7: a surrogate pair escape", f'{{"alg":"{ALG}"}}', '{"s":"\\ud83d\\ude00"}'),
    ("RFC 7515 §4.1.4: kid null is no kid", f'{{"alg":"{ALG}","kid":null}}', "{}"),
    ("RFC 7515 §4.1.4: a known kid", f'{{"alg":"{ALG}","kid":"k1"}}', "{}"),
    ("RFC 7515 §4.1.9: typ is not checked here", f'{{"alg":"{ALG}","typ":1}}', "{}"),
    ("nested duplicates-looking commas", f'{{"alg":"{ALG}"}}', '{"a":"x,y","b":[1,2,{"c":3}]}'),
]

MALFORMED = [
    # RFC 7515 §4.1.1: "This Header Parameter MUST be present"
    ("no alg", "{}", "{}", "header has no alg"),
    ("alg not a string", '{"alg":["ES256"]}', "{}", "header has no alg"),
    # RFC 7515 §4.1.4: "The "kid" value is a case-sensitive string."
    ("kid not a string", f'{{"alg":"{ALG}","kid":7}}', "{}", "kid is not a string"),
    # RFC 7515 §4.1.11: "the JWS is invalid" when crit lists what is not understood
    ("crit", f'{{"alg":"{ALG}","crit":["b64"],"b64":false}}', "{}", "crit"),
    ("crit empty", f'{{"alg":"{ALG}","crit":[]}}', "{}", "crit"),
    # RFC 7515 §5.2 step 3 / RFC 7519 §4: duplicate member names are rejected
    ("duplicate in header", f'{{"alg":"{ALG}","alg":"{ALG}"}}', "{}", "UTF-8 JSON"),
    ("duplicate in payload", f'{{"alg":"{ALG}"}}', '{"a":1,"a":1}', "UTF-8 JSON"),
    ("duplicate nested", f'{{"alg":"{ALG}"}}', '{"a":[{"b":1,"b":2}]}', "UTF-8 JSON"),
    # RFC 8259 §6: "Numeric values that cannot be represented ... (such as Infinity and NaN)
    # are not permitted."
    ("NaN", f'{{"alg":"{ALG}"}}', '{"a":NaN}', "UTF-8 JSON"),
    ("Infinity", f'{{"alg":"{ALG}","x":Infinity}}', "{}", "UTF-8 JSON"),
    # RFC 8259 §8.2: an unpaired surrogate is not a Unicode string; both paths refuse it
    ("lone surrogate in payload", f'{{"alg":"{ALG}"}}', '{"sub":"\\ud800"}', "UTF-8 JSON"),
    ("lone surrogate in header", f'{{"alg":"{ALG}","x":"\\udbff"}}', "{}", "UTF-8 JSON"),
    ("lone surrogate in a name", f'{{"alg":"{ALG}"}}', '{"\\udc00":1}', "UTF-8 JSON"),
    ("lone surrogate in an array", f'{{"alg":"{ALG}"}}', '{"a":[["\\ud800"]]}', "UTF-8 JSON"),
    ("trailing data", f'{{"alg":"{ALG}"}}', "{} []", "UTF-8 JSON"),
    ("no JSON at all", f'{{"alg":"{ALG}"}}', " ", "UTF-8 JSON"),
    # RFC 7515 §5.2 step 2-3, 8: the header and payload are JSON objects
    ("header an array", f'[{{"alg":"{ALG}"}}]', "{}", "not a JSON object"),
    ("payload an array", f'{{"alg":"{ALG}"}}', "[1,2]", "not a JSON object"),
    ("payload a string", f'{{"alg":"{ALG}"}}', '"c1"', "not a JSON object"),
]


def _sign_all(header: str, payload: str) -> tuple[str, str]:
    def one(alg: str, sign: Callable[[bytes], bytes]) -> str:
        signing_input = f"{b64(header.replace(ALG, alg).encode())}.{b64(payload.encode())}"
        return f"{signing_input}.{b64(sign(signing_input.encode()))}"

    return one("ES256", _es256), one("HS256", _hs256)


@pytest.mark.parametrize(
    ("case", "header", "payload"), WELL_FORMED, ids=[c[0] for c in WELL_FORMED]
)
def test_well_formed_on_every_path(case: str, header: str, payload: str) -> None:
    es256, hs256 = _sign_all(header, payload)
    claims = json.loads(payload)
    assert verify_jws(es256, KEYS, algorithms=["ES256"]).claims == claims
    assert peek_jws(es256).claims == claims
    assert peek_jws(es256).header["alg"] == "ES256"
    index, verified = verify_hmac_jws(hs256, [SECRET])
    assert (index, verified.claims, verified.header["alg"]) == (0, claims, "HS256")


@pytest.mark.parametrize(
    ("case", "header", "payload", "reason"), MALFORMED, ids=[c[0] for c in MALFORMED]
)
def test_malformed_on_every_path(case: str, header: str, payload: str, reason: str) -> None:
    es256, hs256 = _sign_all(header, payload)
    for path, candidate in [(access_token_path, es256), (peek_path, es256), (hmac_path, hs256)]:
        refused = outcome(path, candidate)
        assert refused is not None, path.__name__
        assert reason in refused, path.__name__


@pytest.mark.parametrize(
    ("case", "candidate", "reason"),
    [
        ("not a string", b"e30.e30.AA", "acceptable size"),
        ("empty", "", "compact JWS"),
        ("non-ASCII", "é.e30.AA", "acceptable size"),
        ("two segments", "e30.e30", "compact JWS"),
        ("JWE: five segments", "e30.e30.AA.AA.AA", "compact JWS"),
        ("empty signature", "e30.e30.", "compact JWS"),
        ("empty header", ".e30.AA", "compact JWS"),
        ("padding", "e30=.e30.AA", "compact JWS"),
        ("whitespace", "e30.e30.AA\n", "compact JWS"),
        ("base64, not base64url", "e30.e30.A+", "compact JWS"),
        ("JSON serialization", '{"payload":"e30","signatures":[]}', "compact JWS"),
    ],
)
def test_compact_serialization_rules_on_every_path(case: str, candidate: Any, reason: str) -> None:
    """RFC 7515 §7.1: three base64url segments; the JSON serializations and JWE are refused."""
    for path in (access_token_path, peek_path, hmac_path):
        refused = outcome(path, candidate)
        assert refused is not None, path.__name__
        assert reason in refused, (path.__name__, refused)


@pytest.mark.parametrize(
    ("case", "encodings"),
    [
        ("header: unused bits set", ("unused-bits", "canonical", "canonical")),
        ("payload: unused bits set", ("canonical", "unused-bits", "canonical")),
        ("signature: unused bits set", ("canonical", "canonical", "unused-bits")),
        ("signature: length 1 (mod 4)", ("canonical", "canonical", "length-1-mod-4")),
    ],
)
def test_base64url_must_be_canonical_on_every_path(
    case: str, encodings: tuple[str, str, str]
) -> None:
    """RFC 7515 §2: unpadded base64url; one JWS has one spelling (no unused bit set)."""
    header, payload = f'{{"alg":"{ALG}","kid":"k1"}}'.encode(), b'{"sub":"c1"} '
    # Only lengths of 2 or 3 (mod 4) have unused bits; so do both signatures (86 and 43).
    assert (len(b64(header)) % 4, len(b64(payload)) % 4) == (3, 2)
    es256 = token("ES256", header, payload, encodings, "three-segments")
    hs256 = token("HS256", header, payload, encodings, "three-segments")
    assert outcome(access_token_path, es256) == "invalid base64url"
    assert outcome(peek_path, es256) == "invalid base64url"
    assert outcome(hmac_path, hs256) == "invalid base64url"


def test_size_limit_is_checked_first_on_every_path() -> None:
    es256, hs256 = _sign_all(f'{{"alg":"{ALG}"}}', "{}")
    assert verify_jws(es256, KEYS, algorithms=["ES256"], max_length=len(es256))
    assert peek_jws(es256, max_length=len(es256))
    assert verify_hmac_jws(hs256, [SECRET], max_length=len(hs256))
    size = "not a compact JWS of acceptable size"
    assert outcome(lambda t: verify_jws(t, KEYS, algorithms=["ES256"], max_length=9), es256) == size
    assert outcome(lambda t: peek_jws(t, max_length=len(es256) - 1), es256) == size
    assert outcome(lambda t: verify_hmac_jws(t, [SECRET], max_length=len(hs256) - 1), hs256) == size


def test_long_headers_follow_the_same_rules() -> None:
    """Headers over 512 characters are not memoised; the rules are the same."""
    padding = "x" * 600
    good, _ = _sign_all(f'{{"alg":"{ALG}","p":"{padding}"}}', "{}")
    bad, _ = _sign_all(f'{{"alg":"{ALG}","p":"{padding}","crit":[]}}', "{}")
    assert verify_jws(good, KEYS, algorithms=["ES256"]).header["p"] == padding
    assert outcome(access_token_path, bad) == "crit header parameter not supported"
    assert outcome(peek_path, bad) == "crit header parameter not supported"
