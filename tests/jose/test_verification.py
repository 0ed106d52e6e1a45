"""tokenward.jose.verification: compact JWS verification, cross-checked against joserfc."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jws
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from tests.resource.support import SigningKey, b64, compact, json_bytes, new_key
from tokenward.jose._compact import parse_json as _parse_json
from tokenward.jose.verification import (
    SUPPORTED_ALGORITHMS,
    JoseError,
    PublicKeySet,
    UnknownKeyError,
    is_numeric_date,
    verify_jws,
)

ALL = sorted(SUPPORTED_ALGORITHMS)
CLAIMS = {"iss": "https://as.example", "sub": "c1", "n": 1}


def keyset(*keys: SigningKey) -> PublicKeySet:
    return PublicKeySet.from_jwks({"keys": [k.public_jwk() for k in keys]})


def token_for(key: SigningKey, claims: Any = None, **header: Any) -> str:
    return compact({"alg": key.alg, "kid": key.kid, **header}, claims or CLAIMS, key)


def reason(token: Any, keys: PublicKeySet, algorithms: Any = ALL, **kwargs: Any) -> str:
    with pytest.raises(JoseError) as caught:
        verify_jws(token, keys, algorithms=algorithms, **kwargs)
    return caught.value.reason


# -- cross-validation with joserfc -----------------------------------------------------------

JOSERFC_KEYS: dict[str, Callable[[], RSAKey | ECKey | OKPKey]] = {
    "ES256": lambda: ECKey.generate_key("P-256"),
    "ES384": lambda: ECKey.generate_key("P-384"),
    "ES512": lambda: ECKey.generate_key("P-521"),
    "RS256": lambda: RSAKey.generate_key(2048),
    "RS384": lambda: RSAKey.generate_key(2048),
    "RS512": lambda: RSAKey.generate_key(2048),
    "PS256": lambda: RSAKey.generate_key(2048),
    "PS384": lambda: RSAKey.generate_key(2048),
    "PS512": lambda: RSAKey.generate_key(2048),
    "Ed25519": lambda: OKPKey.generate_key("Ed25519"),
}


@pytest.mark.parametrize("alg", sorted(JOSERFC_KEYS))
def test_tokens_signed_by_joserfc_verify(alg: str) -> None:
    key = JOSERFC_KEYS[alg]()
    jwk = {**key.as_dict(private=False), "kid": "k1", "alg": alg}
    payload = json_bytes(CLAIMS)
    token = jws.serialize_compact({"alg": alg, "kid": "k1"}, payload, key, algorithms=[alg])

    verified = verify_jws(token, PublicKeySet.from_jwks({"keys": [jwk]}), algorithms=[alg])

    assert verified.claims == CLAIMS
    assert dict(verified.header) == {"alg": alg, "kid": "k1"}
    assert verified.key.kid == "k1"


@pytest.mark.parametrize("alg", ["ES256", "ES384", "ES512", "RS256", "PS512", "EdDSA", "Ed448"])
def test_tokens_signed_here_verify_and_tampering_fails(alg: str) -> None:
    key = new_key(alg)
    token = token_for(key)
    assert verify_jws(token, keyset(key), algorithms=[alg]).claims == CLAIMS

    header, _, signature = token.split(".")
    other = b64(json_bytes({**CLAIMS, "n": 2}))
    assert reason(f"{header}.{other}.{signature}", keyset(key)) == "signature verification failed"


@settings(max_examples=60, deadline=None)
@given(message=st.binary(min_size=1, max_size=200))
def test_es256_property_valid_signatures_verify(message: bytes) -> None:
    key = _ES256
    token = compact({"alg": "ES256", "kid": key.kid}, {"m": message.hex()}, key)
    assert verify_jws(token, _ES256_SET, algorithms=["ES256"]).claims == {"m": message.hex()}


_ES256 = new_key("ES256")
_ES256_SET = keyset(_ES256)


def _es256_signature(data: bytes, want: str) -> bytes:
    """An ES256 signature of `data` whose r has the wanted shape (leading zero / high bit)."""
    for _ in range(20_000):
        r, s = utils.decode_dss_signature(_ES256.private.sign(data, ec.ECDSA(hashes.SHA256())))
        raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        if (want == "zero" and raw[0] == 0) or (want == "high" and raw[0] & 0x80):
            return raw
    raise AssertionError("no such signature found")


@pytest.mark.parametrize("want", ["zero", "high"])
def test_ecdsa_der_conversion_edge_cases(want: str) -> None:
    """r with a leading zero octet (shorter DER integer) or its high bit set (sign octet)."""
    header = b64(json_bytes({"alg": "ES256", "kid": _ES256.kid}))
    signing_input = f"{header}.{b64(json_bytes(CLAIMS))}"
    signature = _es256_signature(signing_input.encode(), want)
    token = f"{signing_input}.{b64(signature)}"
    assert verify_jws(token, _ES256_SET, algorithms=["ES256"]).claims == CLAIMS


@pytest.mark.parametrize(
    "signature",
    [bytes(64), b"\x00" * 32 + b"\x01" * 32, b"\x01" * 63, b"\x01" * 65, b"\xff" * 64],
    ids=["zeros", "r-zero", "short", "long", "over-order"],
)
def test_malformed_ecdsa_signatures_fail(signature: bytes) -> None:
    signing_input = f"{b64(json_bytes({'alg': 'ES256', 'kid': _ES256.kid}))}.{b64(b'{}')}"
    token = f"{signing_input}.{b64(signature)}"
    assert reason(token, _ES256_SET) == "signature verification failed"


def _rs256_token_with_leading_zero(key: SigningKey) -> tuple[str, bytes]:
    """A signing input whose RS256 signature starts with a zero octet (1 in 256 do)."""
    for n in range(100_000):
        signing_input = (
            f"{b64(json_bytes({'alg': 'RS256', 'kid': key.kid}))}.{b64(json_bytes({'n': n}))}"
        )
        signature = key.sign(signing_input.encode())
        if signature[0] == 0:
            return signing_input, signature
    raise AssertionError("no such signature found")


_RS256 = new_key("RS256")


RESPELLINGS: list[tuple[str, str, Callable[[bytes], bytes]]] = [
    ("RSA: a leading zero octet added", "RS256", lambda sig: b"\0" + sig),
    ("PSS: a leading zero octet added", "PS256", lambda sig: b"\0" + sig),
    ("RSA: its leading zero octet removed", "RS256", lambda sig: sig[1:]),
    ("Ed25519: a trailing octet added", "EdDSA", lambda sig: sig + b"\0"),
    ("Ed448: a trailing octet added", "Ed448", lambda sig: sig + b"\0"),
    ("Ed25519: truncated", "EdDSA", lambda sig: sig[:-1]),
]


@pytest.mark.parametrize(("case", "alg", "change"), RESPELLINGS, ids=[r[0] for r in RESPELLINGS])
def test_valid_signatures_respelled_to_another_length_fail(
    case: str, alg: str, change: Callable[[bytes], bytes]
) -> None:
    """RFC 8017 §8.1.2 / §8.2.2: the signature is exactly k octets; RFC 8032 §5.1.7: 64 octets
    (114 for Ed448). A verifier that normalised lengths would accept these respellings."""
    key = _RS256 if alg == "RS256" else new_key(alg)
    if "leading zero octet removed" in case:
        signing_input, signature = _rs256_token_with_leading_zero(key)
    else:
        signing_input = f"{b64(json_bytes({'alg': alg, 'kid': key.kid}))}.{b64(json_bytes(CLAIMS))}"
        signature = key.sign(signing_input.encode())
    assert verify_jws(f"{signing_input}.{b64(signature)}", keyset(key), algorithms=ALL)
    respelled = f"{signing_input}.{b64(change(signature))}"
    assert reason(respelled, keyset(key)) == "signature verification failed"


def test_public_key_verify_and_algorithms() -> None:
    """PublicKey is public API: the bound checks, one per algorithm the JWK allows."""
    key = new_key("RS256")
    key.publish_alg = False
    [public] = keyset(key)
    assert public.algorithms == {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
    signing_input = b"header.payload"
    assert public.verify("PS384", key.sign(signing_input, "PS384"), signing_input)
    assert not public.verify("PS256", key.sign(signing_input, "PS384"), signing_input)
    assert not public.verify("ES256", key.sign(signing_input, "PS384"), signing_input)
    assert (public.kid, public.kty) == (key.kid, "RSA")


# -- algorithm rules -------------------------------------------------------------------------


def test_supported_algorithms_are_all_asymmetric() -> None:
    assert "none" not in SUPPORTED_ALGORITHMS
    assert not [a for a in SUPPORTED_ALGORITHMS if a.startswith("HS")]


def test_alg_must_be_on_the_callers_allowlist() -> None:
    key = new_key("ES256")
    assert reason(token_for(key), keyset(key), algorithms=["RS256"]) == "alg not allowed"


def test_hs256_cannot_verify_even_if_allowed() -> None:
    """No HMAC code path exists: allowlisting HS256 cannot make a public key a secret."""
    import hashlib
    import hmac

    rsa_key = new_key("RS256")
    secret = rsa_key.public_pem()
    token = compact(
        {"alg": "HS256", "kid": rsa_key.kid},
        CLAIMS,
        lambda si: hmac.digest(secret, si, hashlib.sha256),
    )
    assert reason(token, keyset(rsa_key), algorithms=["HS256"]) == "alg does not match the key"
    kidless = compact({"alg": "HS256"}, CLAIMS, lambda si: hmac.digest(secret, si, "sha256"))
    with pytest.raises(UnknownKeyError):
        verify_jws(kidless, keyset(rsa_key), algorithms=["HS256"])


def test_key_alg_binds_the_key() -> None:
    key = new_key("RS256")  # JWK says alg RS256
    token = compact({"alg": "PS256", "kid": key.kid}, CLAIMS, lambda si: key.sign(si, "PS256"))
    assert reason(token, keyset(key)) == "alg does not match the key"


def test_rsa_key_without_alg_accepts_each_rsa_algorithm() -> None:
    key = new_key("RS256")
    key.publish_alg = False
    for alg in ("RS256", "PS256", "RS512"):
        token = compact({"alg": alg, "kid": key.kid}, CLAIMS, lambda si, a=alg: key.sign(si, a))
        assert verify_jws(token, keyset(key), algorithms=[alg]).claims == CLAIMS


def test_ec_curve_binds_the_algorithm() -> None:
    key = new_key("ES384")
    key.publish_alg = False
    token = compact({"alg": "ES256", "kid": key.kid}, CLAIMS, lambda si: key.sign(si, "ES384"))
    assert reason(token, keyset(key)) == "alg does not match the key"


# -- key selection ---------------------------------------------------------------------------


def test_unknown_kid_is_a_distinct_error() -> None:
    key, other = new_key("ES256"), new_key("ES256")
    with pytest.raises(UnknownKeyError, match="unknown kid"):
        verify_jws(token_for(other), keyset(key), algorithms=ALL)


def test_without_kid_a_few_keys_of_the_alg_are_tried() -> None:
    keys = [new_key("ES256") for _ in range(4)]
    keys.append(new_key("EdDSA"))
    published = keyset(*keys)
    for position, key in enumerate(keys[:4]):
        token = compact({"alg": "ES256"}, CLAIMS, key)
        if position < 3:
            assert verify_jws(token, published, algorithms=ALL).claims == CLAIMS
        else:
            assert reason(token, published) == "signature verification failed"
    with pytest.raises(UnknownKeyError):
        verify_jws(compact({"alg": "RS256"}, CLAIMS, new_key("RS256")), published, algorithms=ALL)


def test_two_keys_under_one_kid_are_both_tried() -> None:
    first, second = new_key("ES256", kid="same"), new_key("ES256", kid="same")
    assert verify_jws(token_for(second), keyset(first, second), algorithms=ALL).key.kid == "same"
    assert len(keyset(first, second).get("same")) == 2


# -- importing JWKS --------------------------------------------------------------------------


def test_private_members_are_ignored() -> None:
    private_jwk = {**ECKey.generate_key("P-256").as_dict(private=True), "kid": "p"}
    assert "d" in private_jwk
    [key] = PublicKeySet.from_jwks({"keys": [private_jwk]})
    assert isinstance(key.key, ec.EllipticCurvePublicKey)


def _jwk(**changes: Any) -> dict[str, Any]:
    jwk = {**new_key("ES256").public_jwk(), **changes}
    return {k: v for k, v in jwk.items() if v is not None}


@pytest.mark.parametrize(
    "jwk",
    [
        OctKey.generate_key(256).as_dict(private=True),
        _jwk(use="enc"),
        _jwk(key_ops=["encrypt"]),
        _jwk(key_ops="verify"),
        _jwk(alg="RS256"),
        _jwk(alg=7),
        _jwk(kid=7),
        _jwk(x="not-base64url-of-a-point"),
        {**new_key("RS256").public_jwk(), "n": "AB"},  # non-canonical base64url
        _jwk(crv="P-999"),
        _jwk(kty="XYZ"),
        _jwk(kty=None),
        {**ECKey.generate_key("secp256k1").as_dict(), "kid": "k"},
        {**OKPKey.generate_key("X25519").as_dict(), "kid": "x"},
        {**new_key("RS256", rsa_bits=1024).public_jwk(), "kid": "small"},
        "not an object",
    ],
    ids=[
        "oct",
        "use-enc",
        "key-ops-encrypt",
        "key-ops-string",
        "alg-other-family",
        "alg-number",
        "kid-number",
        "bad-point",
        "rsa-n-non-canonical",
        "unknown-curve",
        "unknown-kty",
        "no-kty",
        "secp256k1",
        "x25519",
        "rsa-1024",
        "string",
    ],
)
def test_unusable_jwks_are_skipped(jwk: Any) -> None:
    good = new_key("ES256").public_jwk()
    keys = PublicKeySet.from_jwks({"keys": [jwk, good]})
    assert (len(keys), keys.skipped, keys.kids) == (1, 1, frozenset({good["kid"]}))


@pytest.mark.parametrize("document", [{}, {"keys": {}}, [], "x"])
def test_non_jwks_documents_raise(document: Any) -> None:
    with pytest.raises(JoseError, match="no keys array"):
        PublicKeySet.from_jwks(document)


# -- header and format rules -----------------------------------------------------------------


def _header_token(header: bytes | dict[str, Any], key: SigningKey = _ES256) -> str:
    return compact(header, CLAIMS, key)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ({"kid": _ES256.kid}, "header has no alg"),
        ({"alg": ["ES256"], "kid": _ES256.kid}, "header has no alg"),
        ({"alg": "ES256", "kid": 1}, "kid is not a string"),
        ({"alg": "ES256", "kid": _ES256.kid, "crit": ["b64"], "b64": False}, "crit"),
        ({"alg": "ES256", "kid": _ES256.kid, "crit": []}, "crit"),
        (b'["ES256"]', "segment is not a JSON object"),
        (b'{"alg":"ES256","alg":"ES256"}', "segment is not base64url UTF-8 JSON"),
    ],
)
def test_header_rules(header: Any, expected: str) -> None:
    assert expected in reason(_header_token(header), _ES256_SET)


def test_jku_x5u_jwk_x5c_do_not_select_keys() -> None:
    attacker = new_key("ES256", kid="a")
    header = {
        "alg": "ES256",
        "kid": "a",
        "jwk": attacker.public_jwk(),
        "jku": "http://169.254.169.254/",
        "x5u": "https://attacker.example/c.pem",
    }
    with pytest.raises(UnknownKeyError):
        verify_jws(_header_token(header, attacker), _ES256_SET, algorithms=ALL)


def test_payload_must_be_a_json_object() -> None:
    token = compact({"alg": "ES256", "kid": _ES256.kid}, b"[1,2]", _ES256)
    assert reason(token, _ES256_SET) == "segment is not a JSON object"


@pytest.mark.parametrize(
    "token",
    [
        b"a.b.c",
        "",
        "a.b",
        "a.b.c.d.e",
        "a..c",
        ".b.c",
        "a.b.",
        "a.b.c=",
        "a.b.c d",
        "a.b.c\n",
        "a+b.c.d",
        "é.b.c",
        '{"payload":"e30","signatures":[]}',
    ],
)
def test_only_compact_serialization(token: Any) -> None:
    assert "compact JWS" in reason(token, _ES256_SET)


def test_size_limit_applies_before_decoding() -> None:
    token = token_for(_ES256)
    assert verify_jws(token, _ES256_SET, algorithms=ALL, max_length=len(token))
    assert "size" in reason(token, _ES256_SET, max_length=len(token) - 1)


def test_non_canonical_base64url_is_rejected() -> None:
    token = token_for(_ES256)  # an 86-character signature: the last one must be A, Q, g or w
    last = token[-1]
    tweaked = token[:-1] + {"A": "B", "Q": "R", "g": "h", "w": "x"}[last]
    assert reason(tweaked, _ES256_SET) == "invalid base64url"
    assert reason(token + "AAA", _ES256_SET) == "invalid base64url"  # 89 = 1 (mod 4): never valid


# -- JSON strictness -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"a":1,"a":2}',
        '{"a":{"b":1,"b":2}}',
        '{"a":"x,y","a":1}',
        '{"a":[{"b":1,"b":1}]}',
        '{"a":NaN}',
        '{"a":Infinity}',
        '{"a":1} x',
        "",
    ],
)
def test_json_rejections(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - json's own errors vary
        _parse_json(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"a":[1,2],"b":{"c":1,"d":2}}', {"a": [1, 2], "b": {"c": 1, "d": 2}}),
        (' \n{"a":1}\t ', {"a": 1}),
        ('{"s":"\\ud83d\\ude00"}', {"s": "\U0001f600"}),
    ],
)
def test_json_acceptances(text: str, value: Any) -> None:
    assert _parse_json(text) == value


def test_utf16_and_lone_surrogates_fail_in_tokens() -> None:
    utf16 = compact(
        {"alg": "ES256", "kid": _ES256.kid}, json.dumps(CLAIMS).encode("utf-16"), _ES256
    )
    assert reason(utf16, _ES256_SET) == "segment is not base64url UTF-8 JSON"
    lone = compact({"alg": "ES256", "kid": _ES256.kid}, {"sub": "\ud800"}, _ES256)
    assert reason(lone, _ES256_SET) == "segment is not base64url UTF-8 JSON"


def _strict(text: str) -> Any:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({k for k, _ in pairs}) != len(pairs):
            raise ValueError("duplicate")
        return dict(pairs)

    return json.loads(text, object_pairs_hook=hook)


class Obj:
    """A JSON object as its member list, so that duplicate names can be generated."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        self.pairs = pairs


def dump(value: Any) -> str:
    if isinstance(value, Obj):
        return "{" + ",".join(f"{json.dumps(k)}:{dump(v)}" for k, v in value.pairs) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dump(v) for v in value) + "]"
    return json.dumps(value)


_names = st.sampled_from(["a", "b", "c", "a,b", ","])
_scalars = st.one_of(st.integers(), st.text(alphabet=',ab{}[]" ', max_size=4), st.none())
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.lists(st.tuples(_names, inner), max_size=3).map(Obj)
    ),
    max_leaves=8,
)


@settings(max_examples=400, deadline=None)
@given(pairs=st.lists(st.tuples(_names, _values), max_size=5))
def test_fast_duplicate_check_agrees_with_a_strict_parser(pairs: list[tuple[str, Any]]) -> None:
    """The comma-counting shortcut in _parse_json never misses a duplicate name."""
    text = dump(Obj(pairs))
    try:
        expected = _strict(text)
    except ValueError:
        with pytest.raises(ValueError):  # noqa: PT011
            _parse_json(text)
    else:
        assert _parse_json(text) == expected


# -- NumericDate -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "ok"),
    [(1, True), (1.5, True), (10**400, True), (True, False), ("1", False), (float("inf"), False)],
)
def test_is_numeric_date(value: object, ok: bool) -> None:
    assert is_numeric_date(value) is ok
