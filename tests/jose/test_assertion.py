"""tokenward.jose.assertion: JWS pieces for client authentication (RFC 7523, RFC 8725).

The parsing rules themselves are shared with access tokens and tested in test_compact.py; here:
what ``peek_jws`` returns, how ``verify_hmac_jws`` picks a secret (RFC 7518 §3.2), and what a
client may register as its keys (``check_client_jwks``, RFC 8725 §3.1, §3.2).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Literal

import pytest
from joserfc.jwk import ECKey, OctKey, OKPKey

from tests.resource.support import b64, new_key
from tokenward.jose.assertion import (
    ASSERTION_SIGNING_ALGORITHMS,
    MAX_CLIENT_KEYS,
    ClientKeysError,
    check_client_jwks,
    peek_jws,
    verify_hmac_jws,
)
from tokenward.jose.verification import JoseError

CLAIMS = {"iss": "c1", "sub": "c1", "aud": "https://as.example", "exp": 2, "jti": "j"}


def hs256(secret: bytes, header: Any = None, claims: Any = None) -> str:
    header = {"alg": "HS256", "typ": "JWT"} if header is None else header
    signing_input = (
        f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims or CLAIMS).encode())}"
    )
    signature = hmac.digest(secret, signing_input.encode(), hashlib.sha256)
    return f"{signing_input}.{b64(signature)}"


def reason_of(call: Any, *args: Any) -> str:
    with pytest.raises(JoseError) as caught:
        call(*args)
    return caught.value.reason


# -- peek_jws ----------------------------------------------------------------------------------


def test_peek_returns_header_and_claims_without_checking_the_signature() -> None:
    """RFC 7523 §3: the client is learnt from the unverified ``sub``; keys then decide."""
    token = hs256(b"k" * 32)
    forged = token.rsplit(".", 1)[0] + "." + b64(b"not the signature")
    for candidate in (token, forged):
        jws = peek_jws(candidate)
        assert dict(jws.header) == {"alg": "HS256", "typ": "JWT"}
        assert jws.claims == CLAIMS


def test_peek_refuses_a_signature_that_is_not_base64url() -> None:
    token = hs256(b"k" * 32)
    assert reason_of(peek_jws, token[:-1] + "B") == "invalid base64url"  # unused bits set


# -- verify_hmac_jws: RFC 7518 §3.2 ---------------------------------------------------------

OLD, NEW, OTHER = b"o" * 32, b"n" * 40, b"x" * 32


@pytest.mark.parametrize(
    ("signed_with", "secrets", "index"),
    [
        (OLD, [OLD], 0),
        (NEW, [OLD, NEW], 1),  # rotation with overlap: every secret is tried
        (OLD, [OLD, NEW], 0),
        (OLD, [OTHER, OLD, OTHER], 1),
    ],
)
def test_hmac_returns_the_index_of_the_secret_that_verifies(
    signed_with: bytes, secrets: list[bytes], index: int
) -> None:
    matched, jws = verify_hmac_jws(hs256(signed_with), secrets)
    assert (matched, jws.claims, dict(jws.header)) == (
        index,
        CLAIMS,
        {"alg": "HS256", "typ": "JWT"},
    )


@pytest.mark.parametrize(
    ("case", "token", "secrets"),
    [
        ("no secrets", hs256(OLD), []),
        ("another secret", hs256(OLD), [OTHER, NEW]),
        # "A key of the same size as the hash output ... or larger MUST be used"
        ("31-byte secret", hs256(b"s" * 31), [b"s" * 31]),
        ("empty secret", hs256(b""), [b""]),
        ("signature stripped to one byte", hs256(OLD).rsplit(".", 1)[0] + ".AA", [OLD]),
    ],
)
def test_hmac_refusals(case: str, token: str, secrets: list[bytes]) -> None:
    assert reason_of(verify_hmac_jws, token, secrets) == "signature verification failed"


def test_hmac_secret_of_exactly_32_bytes_verifies() -> None:
    assert verify_hmac_jws(hs256(b"s" * 32), [b"s" * 32])[0] == 0


@pytest.mark.parametrize("alg", ["HS384", "HS512", "none", "ES256", "hs256", "RS256"])
def test_hmac_accepts_hs256_only(alg: str) -> None:
    """RFC 8725 §3.1: the caller's allowlist is HS256, whatever the header says."""
    token = hs256(OLD, header={"alg": alg})
    assert reason_of(verify_hmac_jws, token, [OLD]) == "alg not allowed"


def test_hmac_payload_is_read_only_after_the_signature() -> None:
    header, payload = b64(b'{"alg":"HS256"}'), b64(b"not json")
    signing_input = f"{header}.{payload}"
    bad = f"{signing_input}.{b64(bytes(32))}"
    assert reason_of(verify_hmac_jws, bad, [OLD]) == "signature verification failed"
    good = f"{signing_input}.{b64(hmac.digest(OLD, signing_input.encode(), 'sha256'))}"
    assert reason_of(verify_hmac_jws, good, [OLD]) == "segment is not base64url UTF-8 JSON"


# -- check_client_jwks: RFC 8725 §3.1, §3.2 ----------------------------------------------------


def _ec(crv: str = "P-256", **extra: Any) -> dict[str, Any]:
    return {**ECKey.generate_key(crv).as_dict(private=False), **extra}


def _rsa(**extra: Any) -> dict[str, Any]:
    return {**new_key("RS256").public_jwk(), **extra}


def _okp(crv: Literal["Ed25519", "X25519"] = "Ed25519", **extra: Any) -> dict[str, Any]:
    return {**OKPKey.generate_key(crv).as_dict(private=False), **extra}


def _modulus(bits: int) -> str:
    return b64((1 << (bits - 1)).to_bytes((bits + 7) // 8, "big"))


@pytest.mark.parametrize(
    ("case", "keys", "algorithms"),
    [
        ("EC P-256", [_ec()], {"ES256"}),
        ("EC P-256, alg ES256", [_ec(alg="ES256")], {"ES256"}),
        ("RSA without alg", [_rsa(alg=None)], {"RS256", "PS256"}),
        ("RSA, alg PS256", [_rsa(alg="PS256")], {"PS256"}),
        ("Ed25519", [_okp()], {"EdDSA", "Ed25519"}),
        ("Ed25519, alg Ed25519", [_okp(alg="Ed25519")], {"Ed25519"}),
        ("use sig", [_ec(use="sig")], {"ES256"}),
        ("a mixed set", [_ec(), _okp(alg="EdDSA")], {"ES256", "EdDSA"}),
        ("twenty keys", [_ec() for _ in range(MAX_CLIENT_KEYS)], {"ES256"}),
    ],
)
def test_acceptable_client_keys(case: str, keys: list[Any], algorithms: set[str]) -> None:
    cleaned = [{k: v for k, v in jwk.items() if v is not None} for jwk in keys]
    assert check_client_jwks({"keys": cleaned}) == algorithms
    assert algorithms <= ASSERTION_SIGNING_ALGORITHMS.keys()


REFUSED = [
    ("not an object", [_ec()], '"keys" array'),
    ("no keys member", {}, '"keys" array'),
    ("keys not an array", {"keys": _ec()}, '"keys" array'),
    ("empty keys", {"keys": []}, '"keys" array'),
    ("21 keys", {"keys": [_ec() for _ in range(MAX_CLIENT_KEYS + 1)]}, "at most 20"),
    ("a key not an object", {"keys": [_ec(), "k"]}, "JSON object"),
    # RFC 8725 §3.2 / §3.10: public keys only, never a secret
    ("private EC key", {"keys": [ECKey.generate_key("P-256").as_dict(private=True)]}, "private"),
    ("symmetric key", {"keys": [OctKey.generate_key(256).as_dict(private=True)]}, "symmetric"),
    ("encryption key", {"keys": [_ec(use="enc")]}, "use=sig"),
    # RFC 7518 §3.3: "A key of size 2048 bits or larger MUST be used"
    ("RSA 2047 bits", {"keys": [_rsa(n=_modulus(2047))]}, "2048 to 4096"),
    ("RSA 4097 bits", {"keys": [_rsa(n=_modulus(4097))]}, "2048 to 4096"),
    ("RSA modulus not base64url", {"keys": [_rsa(n="AB")]}, "malformed modulus"),
    ("RSA modulus not ASCII", {"keys": [_rsa(n="é" * 400)]}, "malformed modulus"),
    ("RSA without modulus", {"keys": [_rsa(n=None)]}, "malformed modulus"),
    ("EC P-384", {"keys": [_ec("P-384")]}, "keys must be RSA"),
    ("X25519", {"keys": [_okp("X25519")]}, "keys must be RSA"),
    ("EC key with alg RS256", {"keys": [_ec(alg="RS256")]}, "keys must be RSA"),
    ("RSA key with alg RS512", {"keys": [_rsa(alg="RS512")]}, "keys must be RSA"),
    ("unknown kty", {"keys": [{"kty": "XYZ"}]}, "keys must be RSA"),
    ("EC point not on the curve", {"keys": [_ec(x=b64(bytes(32)))]}, "could not be imported"),
]


@pytest.mark.parametrize(("case", "document", "message"), REFUSED, ids=[c[0] for c in REFUSED])
def test_refused_client_keys(case: str, document: Any, message: str) -> None:
    if isinstance(document, dict) and isinstance(document.get("keys"), list):
        document = {
            "keys": [
                {k: v for k, v in jwk.items() if v is not None} if isinstance(jwk, dict) else jwk
                for jwk in document["keys"]
            ]
        }
    with pytest.raises(ClientKeysError, match=message):
        check_client_jwks(document)
