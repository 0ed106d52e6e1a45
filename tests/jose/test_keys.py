"""tokenward.jose.keys and .signing: one key, one algorithm (RFC 8725 §3.1), and every token
signed here verifies with ``verify_jws`` and the published JWK (RFC 7515, RFC 7517)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from tokenward.jose.keys import (
    SIGNING_ALGORITHMS,
    KeyMaterial,
    generate_private_pem,
    load_key_material,
)
from tokenward.jose.signing import JwsSigner
from tokenward.jose.verification import PublicKeySet, verify_jws


def _pem(private: ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey) -> bytes:
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
@pytest.mark.parametrize("alg", SIGNING_ALGORITHMS)
def test_signed_here_verified_here(alg: str) -> None:
    material = load_key_material(generate_private_pem(alg), alg)
    token = JwsSigner(material, typ="at+jwt").sign({"sub": "c1"})
    keys = PublicKeySet.from_jwks({"keys": [material.public_jwk]})
    verified = verify_jws(token, keys, algorithms=[alg])
    assert verified.claims == {"sub": "c1"}
    assert dict(verified.header) == {"alg": alg, "kid": material.kid, "typ": "at+jwt"}
    # RFC 8725 §3.1: the published key is bound to exactly that algorithm.
    assert verified.key.algorithms == {alg}


@pytest.mark.parametrize("alg", ["HS256", "none", "ES384", "Ed25519"])
def test_only_the_signing_algorithms_exist(alg: str) -> None:
    with pytest.raises(ValueError, match="unsupported signing algorithm"):
        generate_private_pem(alg)
    with pytest.raises(ValueError, match="unsupported signing algorithm"):
        load_key_material(generate_private_pem("ES256"), alg)


@pytest.mark.parametrize(
    ("pem", "alg"),
    [
        (_pem(ec.generate_private_key(ec.SECP384R1())), "ES256"),  # P-384 is not ES256's curve
        (_pem(ed448.Ed448PrivateKey.generate()), "EdDSA"),  # tokenward signs Ed25519 only
    ],
    ids=["ES256 with P-384", "EdDSA with Ed448"],
)
def test_a_key_that_does_not_fit_its_algorithm_is_refused(pem: bytes, alg: str) -> None:
    with pytest.raises(ValueError, match=f"does not fit algorithm {alg}"):
        load_key_material(pem, alg)


@pytest.mark.parametrize(
    ("alg", "private"),
    [
        ("ES256", ed25519.Ed25519PrivateKey.generate()),
        ("RS256", ec.generate_private_key(ec.SECP256R1())),
        ("EdDSA", rsa.generate_private_key(65537, 2048)),
    ],
)
def test_key_material_built_by_hand_must_still_fit(
    alg: str, private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
) -> None:
    """KeyMaterial is a public dataclass; the signer checks the pair itself."""
    material = KeyMaterial(kid="k", alg=alg, private_key=private, public_jwk={})
    with pytest.raises(ValueError, match=f"key k cannot sign {alg}"):
        JwsSigner(material, typ="at+jwt")
