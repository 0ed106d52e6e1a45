"""JWT client authentication, the client's side (RFC 7523 §2.2, §3; RFC 7521 §4.2).

``private_key_jwt`` signs the assertion with the client's private key (a `ClientKey`, from a
PEM file or a JWK); ``client_secret_jwt`` MACs it with HS256 keyed by the client secret
(RFC 7518 §3.2). Claims (RFC 7523 §3): ``iss`` = ``sub`` = the client id; ``aud`` = the
authorization server's **issuer identifier**, alone (draft-ietf-oauth-rfc7523bis: the token
endpoint URL as audience is what the 2025 audience-injection attack abuses); a fresh random
``jti`` for every request, retries included (servers accept each ``jti`` once); ``iat`` now and
``exp`` a minute later.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["ASSERTION_LIFETIME", "ASSERTION_TYPE", "ClientKey", "client_assertion"]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Seconds an assertion is valid: long enough for clock skew and a slow network, short enough
#: that a captured one is soon useless.
ASSERTION_LIFETIME = 60
_CURVE_ALGS = {"P-256": "ES256", "Ed25519": "EdDSA"}


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _segment(obj: Mapping[str, Any]) -> bytes:
    return _b64(json.dumps(obj, separators=(",", ":")).encode())


def _alg_of_jwk(jwk: Mapping[str, Any]) -> str:
    given = jwk.get("alg")
    if isinstance(given, str):
        return given
    if jwk.get("kty") == "RSA":
        return "RS256"
    alg = _CURVE_ALGS.get(str(jwk.get("crv")))
    if alg is None:
        raise ValueError("the key is not RSA, EC P-256 or Ed25519: give alg")
    return alg


def _alg_of_pem(pem: bytes) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(pem, password=None)
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1":
        return "ES256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    raise ValueError("the key is not RSA, EC P-256 or Ed25519")


class ClientKey:
    """A client's private key for ``private_key_jwt``, loaded once.

    ``alg`` defaults to the one the key allows (ES256 for P-256, EdDSA for Ed25519, RS256 for
    RSA unless the JWK names PS256); ``kid`` to the JWK's own, else the key's RFC 7638
    thumbprint: register the public key under that ``kid``.
    """

    __slots__ = ("_signer", "alg", "kid")

    def __init__(self, source: bytes | Mapping[str, Any], *, alg: str | None, kid: str | None):
        from tokenward.jose.keys import load_key_material
        from tokenward.jose.signing import JwsSigner

        if isinstance(source, Mapping):
            alg = alg or _alg_of_jwk(source)
            given = source.get("kid")
            kid = kid or (given if isinstance(given, str) else None)
            source = {k: v for k, v in source.items() if k not in ("alg", "kid", "use")}
        else:
            alg = alg or _alg_of_pem(source)
        material = load_key_material(source, "EdDSA" if alg == "Ed25519" else alg)
        if kid is not None:
            material = dataclasses.replace(material, kid=kid)
        self.alg, self.kid = alg, material.kid
        self._signer = JwsSigner(material, typ="JWT")

    @classmethod
    def from_pem(
        cls, pem: bytes | str, *, alg: str | None = None, kid: str | None = None
    ) -> ClientKey:
        return cls(pem.encode() if isinstance(pem, str) else pem, alg=alg, kid=kid)

    @classmethod
    def from_jwk(
        cls, jwk: Mapping[str, Any] | str, *, alg: str | None = None, kid: str | None = None
    ) -> ClientKey:
        document = json.loads(jwk) if isinstance(jwk, str) else jwk
        if not isinstance(document, Mapping) or "d" not in document:
            raise ValueError("a private JWK (with its private members) is required")
        return cls(document, alg=alg, kid=kid)

    @classmethod
    def from_file(
        cls, path: str | Path, *, alg: str | None = None, kid: str | None = None
    ) -> ClientKey:
        """A PEM private key, or a private JWK as JSON."""
        data = Path(path).read_bytes()
        if data.lstrip().startswith(b"{"):
            return cls.from_jwk(data.decode(), alg=alg, kid=kid)
        return cls.from_pem(data, alg=alg, kid=kid)

    def sign(self, claims: dict[str, Any]) -> str:
        return self._signer.sign(claims)

    def __repr__(self) -> str:
        return f"ClientKey(alg={self.alg!r}, kid={self.kid!r})"


def _claims(client_id: str, audience: str, now: int) -> dict[str, Any]:
    return {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": secrets.token_urlsafe(24),
        "iat": now,
        "exp": now + ASSERTION_LIFETIME,
    }


def _hs256(secret: str, claims: dict[str, Any]) -> str:
    signing_input = _segment({"alg": "HS256", "typ": "JWT"}) + b"." + _segment(claims)
    mac = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + _b64(mac)).decode("ascii")


def client_assertion(
    *,
    client_id: str,
    audience: str,
    key: ClientKey | None,
    secret: str | None,
    clock: Callable[[], float] = time.time,
) -> str:
    """A fresh assertion: signed with ``key`` (private_key_jwt) or MACed with ``secret``."""
    claims = _claims(client_id, audience, int(clock()))
    if key is not None:
        return key.sign(claims)
    assert secret is not None, "client_secret_jwt needs the client secret"
    return _hs256(secret, claims)
