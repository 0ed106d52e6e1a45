"""Access token claims, the token response, signing keys and metadata, sans-IO.

RFC 9068 §2 (claims, ``typ``), RFC 6749 §5.1 / §4.4.3 (response, no refresh token), RFC 8725
§3.1 (one key, one algorithm) and §3.7 (UTF-8), RFC 8414 §2 / §3.2 (metadata).

Checklist IDs: AT-01 (never ``none``, RS256 supported), AT-02, AT-03, AT-04, AT-06, AT-10,
AT-11, TE-19, TE-20, TE-27 (generated secrets), and the RFC 8414 decisions of section 0 item 6.
Issued tokens are verified end to end in tests/server/test_access_tokens.py and
tests/e2e/test_seeds.py.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jws
from joserfc.errors import InvalidKeyTypeError
from joserfc.jwk import ECKey, KeySet, OKPKey

from tokenward.jose.keys import SIGNING_ALGORITHMS, generate_private_pem, load_key_material
from tokenward.jose.signing import JwsSigner
from tokenward.protocol.access_token import JWT_TYP, build_claims, token_response
from tokenward.protocol.client_credentials import Grant
from tokenward.protocol.metadata import server_metadata, well_known_paths
from tokenward.server.secrets import generate_client_secret

GRANT = Grant("https://api.example", frozenset({"write", "read"}), 900, "ES256", "jwt")


def b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def test_claims_of_a_client_credentials_token() -> None:
    claims = build_claims(
        issuer="https://as.example", client_id="c1", grant=GRANT, now=1000, jti="j1"
    )
    assert claims == {
        "iss": "https://as.example",
        "sub": "c1",  # AT-04: sub identifies the client
        "aud": "https://api.example",
        "exp": 1900,
        "iat": 1000,
        "jti": "j1",
        "client_id": "c1",
        "scope": "read write",  # AT-06: one space-delimited string
    }


def test_no_scope_claim_without_scopes() -> None:
    grant = Grant("https://api.example", frozenset(), 60, "ES256", "jwt")
    claims = build_claims(issuer="https://as.example", client_id="c1", grant=grant, now=0, jti="j")
    assert "scope" not in claims
    assert "scope" not in token_response("t", grant).body()


def test_token_response_body() -> None:
    body = token_response("tok", GRANT).body()
    # TE-19: access_token and token_type REQUIRED, expires_in RECOMMENDED; TE-20: no refresh.
    assert body == {
        "access_token": "tok",
        "token_type": "Bearer",
        "expires_in": 900,
        "scope": "read write",
    }
    assert "tok" not in repr(token_response("tok", GRANT))


# joserfc warns that RFC 9864 deprecates the polymorphic "EdDSA" name; tokenward still signs
# with it (Ed25519), so the verification below must accept it.
@pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
@pytest.mark.parametrize("alg", SIGNING_ALGORITHMS)
def test_every_signing_algorithm_verifies_with_its_public_jwk(alg: str) -> None:
    material = load_key_material(generate_private_pem(alg), alg)
    signer = JwsSigner(material, typ=JWT_TYP)
    claims = {"iss": "https://as.example", "sub": "c\u00e9", "n": 1}
    token = signer.sign(claims)
    header_b64, payload_b64, _ = token.split(".")
    header = json.loads(b64decode(header_b64))
    # AT-01, AT-02: signed with the key's algorithm, never none, typ at+jwt, kid present.
    assert header == {"alg": alg, "kid": material.kid, "typ": "at+jwt"}
    # AT-11: UTF-8 JSON (pure ASCII here), no BOM.
    raw_payload = b64decode(payload_b64)
    assert not raw_payload.startswith(b"\xef\xbb\xbf")
    assert json.loads(raw_payload.decode("utf-8")) == claims
    keys = KeySet.import_key_set({"keys": [material.public_jwk]})
    verified = jws.deserialize_compact(token, keys, algorithms=[alg])
    assert json.loads(verified.payload) == claims
    # The published JWK is public only and bound to one algorithm (AT-10).
    assert material.public_jwk["alg"] == alg
    assert material.public_jwk["use"] == "sig"
    assert not {"d", "p", "q", "dp", "dq", "qi"} & material.public_jwk.keys()


@pytest.mark.parametrize("alg", SIGNING_ALGORITHMS)
def test_a_key_signs_with_exactly_one_algorithm(alg: str) -> None:
    """AT-10 / RFC 8725 §3.1: "each key MUST be used with exactly one algorithm"."""
    signer = JwsSigner(load_key_material(generate_private_pem(alg), alg), typ=JWT_TYP)
    assert signer.sign({"a": 1}, alg=alg)
    for other in {*SIGNING_ALGORITHMS, "none", "HS256"} - {alg}:
        with pytest.raises(ValueError, match="bound to"):
            signer.sign({"a": 1}, alg=other)


@pytest.mark.parametrize(
    ("pem_alg", "alg"),
    [
        ("ES256", "RS256"),
        ("RS256", "ES256"),
        ("EdDSA", "ES256"),
        ("ES256", "EdDSA"),
        ("RS256", "none"),
    ],
)
def test_a_key_of_another_type_is_refused(pem_alg: str, alg: str) -> None:
    with pytest.raises((ValueError, InvalidKeyTypeError)):
        load_key_material(generate_private_pem(pem_alg), alg)


@pytest.mark.filterwarnings("ignore:Key size should be")  # joserfc warns, tokenward refuses
def test_weak_rsa_keys_are_refused() -> None:
    weak_key = rsa.generate_private_key(65537, 1024)  # noqa: S505 - the weak key under test
    weak = weak_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ValueError, match="does not fit"):
        load_key_material(weak, "RS256")


def test_a_public_key_is_refused() -> None:
    public = ECKey.generate_key("P-256").as_pem(private=False)
    with pytest.raises(ValueError, match="a private key is required"):
        load_key_material(public, "ES256")


def test_kid_is_the_rfc7638_thumbprint() -> None:
    pem = OKPKey.generate_key("Ed25519").as_pem(private=True)
    material = load_key_material(pem, "EdDSA")
    assert material.kid == OKPKey.import_key(pem).thumbprint()
    assert "PRIVATE" not in repr(material)


def test_generated_client_secrets_are_unguessable() -> None:
    """TE-27: >= 160 (here 256) bits from ``secrets``; 10^5 samples unique."""
    samples = [generate_client_secret() for _ in range(100_000)]
    assert len(set(samples)) == len(samples)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", s) for s in samples[:1000])


def metadata(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "issuer": "https://as.example",
        "auth_methods": ["client_secret_post", "client_secret_basic"],
        "assertion_algs": ["ES256"],
        "scopes": ["write", "read"],
        "signing_algs": ["RS256", "ES256"],
    }
    args.update(overrides)
    return server_metadata(**args)


def test_metadata_for_a_client_credentials_only_server() -> None:
    doc = metadata(with_introspection=False, with_revocation=False)
    assert doc == {
        "issuer": "https://as.example",
        "token_endpoint": "https://as.example/token",
        "jwks_uri": "https://as.example/jwks.json",
        # Present: omitting it would mean ["authorization_code", "implicit"] (RFC 8414 §2).
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": ["read", "write"],
        "access_token_signing_alg_values_supported": ["ES256", "RS256"],
        "service_documentation": "https://pypi.org/project/tokenward/",
    }
    # RFC 8414 §3.2: "Claims with zero elements MUST be omitted" (no authorization endpoint).
    assert "response_types_supported" not in doc


def test_metadata_omits_empty_claims_and_names_jwt_algs_only_with_jwt_methods() -> None:
    doc = metadata(scopes=[])
    assert "scopes_supported" not in doc
    assert "token_endpoint_auth_signing_alg_values_supported" not in doc
    with_jwt = metadata(auth_methods=["private_key_jwt"])
    assert with_jwt["token_endpoint_auth_signing_alg_values_supported"] == ["ES256"]


def test_well_known_paths_insert_the_issuer_path() -> None:
    """RFC 8414 §3: the well-known segment goes between host and path."""
    assert well_known_paths("/tenant/a") == [
        "/.well-known/oauth-authorization-server/tenant/a",
        "/.well-known/openid-configuration/tenant/a",
        "/tenant/a/.well-known/openid-configuration",
    ]
    assert well_known_paths("")[0] == "/.well-known/oauth-authorization-server"
