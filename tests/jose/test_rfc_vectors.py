"""Published test vectors (fixtures/rfc_vectors.json), verified through tokenward.jose.

* RFC 7515 Appendix A.3: an ES256 JWS, verified end to end by ``verify_jws``.
* RFC 7638 §3.1: the RSA key whose thumbprint is ``NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs``.
* RFC 7520 §4.1-§4.4: RS256, PS384 (§4.2 is RSA-PSS with SHA-384), ES512 and HS256 over one
  plain-text payload. The asymmetric signatures verify; since the payload is text, not a JWT
  claims set, ``verify_jws`` then refuses it at the payload step - which it reaches only after
  the signature verified. §4.4 (HS256) is refused by ``verify_jws``, which has no HMAC, and is
  verifiable by ``verify_hmac_jws``: its key is exactly 32 octets (RFC 7518 §3.2).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from joserfc.jwk import JWKRegistry

from tokenward.jose.assertion import verify_hmac_jws
from tokenward.jose.keys import (
    SIGNING_ALGORITHMS,
    generate_private_pem,
    jwk_thumbprint,
    load_key_material,
)
from tokenward.jose.verification import (
    SUPPORTED_ALGORITHMS,
    JoseError,
    PublicKeySet,
    UnknownKeyError,
    verify_jws,
)

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "fixtures" / "rfc_vectors.json").read_text("utf-8")
)
A3 = VECTORS["rfc7515_appendix_a3"]
RFC7638 = VECTORS["rfc7638_section_3_1"]
RFC7520 = VECTORS["rfc7520_section_4"]
EXAMPLES = {example["section"]: example for example in RFC7520["examples"]}
NOT_A_JWT = "segment is not base64url UTF-8 JSON"


def b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def keys(jwk: dict[str, Any]) -> PublicKeySet:
    return PublicKeySet.from_jwks({"keys": [jwk]})


def tampered(compact: str) -> str:
    """The same JWS with one payload character changed."""
    header, payload, signature = compact.split(".")
    return f"{header}.{payload[:-1]}{'A' if payload[-1] != 'A' else 'Q'}.{signature}"


# -- RFC 7515 Appendix A.3 ---------------------------------------------------------------------


def test_rfc7515_a3_es256_verifies() -> None:
    verified = verify_jws(A3["compact"], keys(A3["jwk"]), algorithms=["ES256"])
    assert dict(verified.header) == A3["header"]
    assert verified.claims == A3["claims"]
    assert verified.key.kty == "EC"


def test_rfc7515_a3_refused_when_altered_or_not_allowed() -> None:
    with pytest.raises(JoseError, match="signature verification failed"):
        verify_jws(tampered(A3["compact"]), keys(A3["jwk"]), algorithms=["ES256"])
    with pytest.raises(JoseError, match="alg not allowed"):
        verify_jws(A3["compact"], keys(A3["jwk"]), algorithms=["ES384", "RS256"])


# -- RFC 7638 §3.1 -----------------------------------------------------------------------------


def test_rfc7638_thumbprint() -> None:
    assert jwk_thumbprint(RFC7638["jwk"]) == RFC7638["thumbprint"]
    # §3.2: only the required members count; "alg" and "kid" do not change it.
    required = {name: RFC7638["jwk"][name] for name in ("e", "kty", "n")}
    assert jwk_thumbprint(required) == RFC7638["thumbprint"]


@pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
@pytest.mark.parametrize("alg", SIGNING_ALGORITHMS)
def test_every_key_id_is_its_rfc7638_thumbprint(alg: str) -> None:
    pem = generate_private_pem(alg)
    material = load_key_material(pem, alg)
    assert material.kid == jwk_thumbprint(material.public_jwk)
    assert material.kid == JWKRegistry.import_key(material.public_jwk).thumbprint()


# -- RFC 7520 §4 -------------------------------------------------------------------------------


def test_rfc7520_payload() -> None:
    """§4: every example signs the same payload, the segment decoding to this text."""
    for example in EXAMPLES.values():
        assert b64decode(example["compact"].split(".")[1]) == RFC7520["payload"].encode()
    assert set(EXAMPLES) == {"4.1", "4.2", "4.3", "4.4"}


@pytest.mark.parametrize(("section", "alg"), [("4.1", "RS256"), ("4.2", "PS384"), ("4.3", "ES512")])
def test_rfc7520_asymmetric_signatures_verify(section: str, alg: str) -> None:
    example = EXAMPLES[section]
    assert example["alg"] == alg
    assert alg in SUPPORTED_ALGORITHMS
    published = keys(RFC7520["keys"][example["key"]])
    [key] = published
    signing_input, _, signature = example["compact"].rpartition(".")
    # The signature given in the RFC (RSA-PSS and ECDSA ones are randomized: not reproducible).
    assert key.verify(alg, b64decode(signature), signing_input.encode())
    # verify_jws gets past the signature and stops at the payload, which is not a JSON object.
    with pytest.raises(JoseError) as caught:
        verify_jws(example["compact"], published, algorithms=[alg])
    assert caught.value.reason == NOT_A_JWT
    with pytest.raises(JoseError, match="signature verification failed"):
        verify_jws(tampered(example["compact"]), published, algorithms=[alg])


def test_rfc7520_hs256_is_refused_by_the_asymmetric_verifier() -> None:
    """RFC 8725 §3.1 / §2.1: verify_jws has no HMAC; a symmetric key is never imported."""
    example = EXAMPLES["4.4"]
    jwk = RFC7520["keys"][example["key"]]
    published = PublicKeySet.from_jwks({"keys": [jwk]})
    assert (len(published), published.skipped) == (0, 1)
    assert "HS256" not in SUPPORTED_ALGORITHMS
    with pytest.raises(JoseError, match="alg not allowed"):
        verify_jws(example["compact"], published, algorithms=sorted(SUPPORTED_ALGORITHMS))
    with pytest.raises(UnknownKeyError):
        verify_jws(example["compact"], published, algorithms=["HS256"])


def test_rfc7520_hs256_verifies_with_verify_hmac_jws() -> None:
    example = EXAMPLES["4.4"]
    secret = b64decode(RFC7520["keys"][example["key"]]["k"])
    assert len(secret) == 32  # RFC 7518 §3.2: at least the 256-bit hash output
    with pytest.raises(JoseError) as caught:
        verify_hmac_jws(example["compact"], [secret])
    assert caught.value.reason == NOT_A_JWT  # the MAC verified; the payload is not a JWT
    with pytest.raises(JoseError, match="signature verification failed"):
        verify_hmac_jws(tampered(example["compact"]), [secret])
