"""Decoy verification: the cost of checking a client assertion, with no client to check it for.

When an assertion names no usable client (unknown ``sub``, disabled client, wrong method), the
server still spends one verification of the header's algorithm over the assertion's signing
input, against a key nobody holds, so that the answer takes as long as a real bad signature
(no existence oracle, docs/security.md). The result is always ignored.

The keys are made at first use and cost almost nothing: ES256 and Ed25519 keys are generated
(under a millisecond); the RSA "key" is a random odd 2048-bit modulus with e = 65537. Nobody
knows its factors, and a public-key operation costs the same with it as with a real key.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

__all__ = ["DecoyVerifier"]

_Spend = Callable[[bytes], None]


def _es256() -> _Spend:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    signature = utils.encode_dss_signature(secrets.randbits(255) | 1, secrets.randbits(255) | 1)
    scheme = ec.ECDSA(hashes.SHA256())

    def spend(signing_input: bytes) -> None:
        with contextlib.suppress(InvalidSignature):
            key.verify(signature, signing_input, scheme)

    return spend


def _rsa(pad: padding.AsymmetricPadding) -> _Spend:
    modulus = (1 << 2047) | secrets.randbits(2047) | 1
    key = rsa.RSAPublicNumbers(65537, modulus).public_key()
    signature = os.urandom(256)

    def spend(signing_input: bytes) -> None:
        with contextlib.suppress(InvalidSignature, ValueError):
            key.verify(signature, signing_input, pad, hashes.SHA256())

    return spend


def _eddsa() -> _Spend:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    signature = os.urandom(64)

    def spend(signing_input: bytes) -> None:
        with contextlib.suppress(InvalidSignature):
            key.verify(signature, signing_input)

    return spend


def _hs256() -> _Spend:
    key, expected = os.urandom(32), os.urandom(32)

    def spend(signing_input: bytes) -> None:
        hmac.compare_digest(hmac.new(key, signing_input, hashlib.sha256).digest(), expected)

    return spend


_FACTORIES: dict[str, Callable[[], _Spend]] = {
    "ES256": _es256,
    "RS256": lambda: _rsa(padding.PKCS1v15()),
    "PS256": lambda: _rsa(padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)),
    "EdDSA": _eddsa,
    "Ed25519": _eddsa,
    "HS256": _hs256,
}


class DecoyVerifier:
    """One throwaway key per algorithm, made at first use."""

    def __init__(self) -> None:
        self._spenders: dict[str, _Spend] = {}

    def spend(self, token: str, alg: str | None) -> None:
        """Verify ``token``'s signing input once with ``alg`` (ES256 for anything unknown)."""
        name = alg if alg in _FACTORIES else "ES256"
        spender = self._spenders.get(name)
        if spender is None:
            spender = self._spenders[name] = _FACTORIES[name]()
        signing_input = token.encode("ascii", "replace").rpartition(b".")[0]
        spender(signing_input)
