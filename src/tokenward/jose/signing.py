"""Compact JWS signing for access tokens (RFC 7515 §3.1, RFC 9068 §2.1).

The header of each key is serialised once; per token only the payload is encoded and the
signing input signed with the already-loaded ``cryptography`` key object. This is the token
endpoint's hot path: building the JWS here rather than through joserfc's generic encoder
saves about a fifth of the request time (see bench/README.md), and the construction is the
textbook one: ``b64url(header) "." b64url(payload) "." b64url(signature)``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from tokenward.jose.keys import KeyMaterial

__all__ = ["JwsSigner", "b64url"]


def b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _json(obj: Any) -> bytes:
    # RFC 8725 §3.7: UTF-8 only. ensure_ascii keeps the JSON pure ASCII (a subset of UTF-8).
    return json.dumps(obj, separators=(",", ":")).encode()


def _raw_signer(material: KeyMaterial) -> Callable[[bytes], bytes]:
    key = material.private_key
    alg = material.alg
    if alg == "ES256" and isinstance(key, ec.EllipticCurvePrivateKey):
        ecdsa = ec.ECDSA(hashes.SHA256())

        def sign_es256(data: bytes) -> bytes:
            # RFC 7518 §3.4: the signature is R || S, each 32 bytes, not DER.
            r, s = utils.decode_dss_signature(key.sign(data, ecdsa))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")

        return sign_es256
    if alg in ("RS256", "PS256") and isinstance(key, rsa.RSAPrivateKey):
        pad: padding.AsymmetricPadding = (
            padding.PKCS1v15()
            if alg == "RS256"
            else padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        )
        digest = hashes.SHA256()
        return lambda data: key.sign(data, pad, digest)
    if alg == "EdDSA" and isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign
    raise ValueError(f"key {material.kid} cannot sign {alg}")


class JwsSigner:
    """Signs JSON payloads with one key and one algorithm, with a fixed ``typ``."""

    __slots__ = ("_header", "_sign", "alg", "kid")

    def __init__(self, material: KeyMaterial, *, typ: str) -> None:
        self.kid = material.kid
        self.alg = material.alg
        self._header = b64url(_json({"alg": material.alg, "kid": material.kid, "typ": typ}))
        self._sign = _raw_signer(material)

    def sign(self, claims: dict[str, Any], *, alg: str | None = None) -> str:
        if alg is not None and alg != self.alg:
            # RFC 8725 §3.1: one key, one algorithm.
            raise ValueError(f"key {self.kid} is bound to {self.alg}, not {alg}")
        signing_input = self._header + b"." + b64url(_json(claims))
        return (signing_input + b"." + b64url(self._sign(signing_input))).decode("ascii")
