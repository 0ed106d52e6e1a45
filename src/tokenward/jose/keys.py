"""Signing keys: generation, import, RFC 7638 thumbprint ``kid``, public JWK (RFC 7517).

Each key is bound to exactly one algorithm (RFC 8725 §3.1: "each key MUST be used with
exactly one algorithm"); signing with another raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc.jwk import ECKey, JWKRegistry, OKPKey, RSAKey

__all__ = [
    "SIGNING_ALGORITHMS",
    "KeyMaterial",
    "generate_private_pem",
    "jwk_thumbprint",
    "load_key_material",
]

#: Asymmetric algorithms tokenward signs with. Never ``none``, never HMAC for access tokens.
SIGNING_ALGORITHMS = ("ES256", "RS256", "PS256", "EdDSA")

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
_JoseKey = ECKey | RSAKey | OKPKey


def _jose_key_class(alg: str) -> type[ECKey] | type[RSAKey] | type[OKPKey]:
    if alg == "ES256":
        return ECKey
    if alg in ("RS256", "PS256"):
        return RSAKey
    if alg == "EdDSA":
        return OKPKey
    raise ValueError(f"unsupported signing algorithm {alg!r}")


def generate_private_pem(alg: str) -> bytes:
    """A fresh private key for ``alg`` as PKCS#8 PEM."""
    cls = _jose_key_class(alg)
    key: _JoseKey
    if cls is ECKey:
        key = ECKey.generate_key("P-256")
    elif cls is RSAKey:
        key = RSAKey.generate_key(2048)
    else:
        key = OKPKey.generate_key("Ed25519")
    return key.as_pem(private=True)


@dataclass(frozen=True, slots=True)
class KeyMaterial:
    """A private key loaded once, with its ``kid`` and public JWK."""

    kid: str
    alg: str
    private_key: PrivateKey
    public_jwk: dict[str, Any]

    def __repr__(self) -> str:
        return f"KeyMaterial(kid={self.kid!r}, alg={self.alg!r})"


def load_key_material(pem: bytes | Mapping[str, Any], alg: str) -> KeyMaterial:
    """Import a private PEM (or private JWK) for ``alg``; ``kid`` is its RFC 7638 SHA-256
    thumbprint."""
    cls = _jose_key_class(alg)
    key = cls.import_key(pem if isinstance(pem, bytes) else dict(pem))
    if not key.is_private:
        raise ValueError("a private key is required")
    private = key.private_key
    if not isinstance(
        private, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise ValueError(f"key does not fit algorithm {alg}")
    _check_key_type(private, alg)
    jwk = dict(key.as_dict(private=False))
    kid = jwk_thumbprint(jwk)
    jwk.update({"kid": kid, "alg": alg, "use": "sig"})
    return KeyMaterial(kid=kid, alg=alg, private_key=private, public_jwk=jwk)


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 §3 SHA-256 JWK Thumbprint, base64url: the ``kid`` of every tokenward key.

    Only the required members of the key type count (§3.2: "other members ... MUST be
    ignored"), so ``alg``, ``kid`` and ``use`` never change it.
    """
    return JWKRegistry.import_key(dict(jwk)).thumbprint()


def _check_key_type(private: object, alg: str) -> None:
    if alg == "ES256":
        ok = isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name == "secp256r1"
    elif alg in ("RS256", "PS256"):
        ok = isinstance(private, rsa.RSAPrivateKey) and private.key_size >= 2048
    else:
        ok = isinstance(private, ed25519.Ed25519PrivateKey)
    if not ok:
        raise ValueError(f"key does not fit algorithm {alg}")
