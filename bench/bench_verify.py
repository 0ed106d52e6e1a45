"""Bearer-token verification speed: raw cryptography vs tokenward's JWS and token verifiers.

    python bench/bench_verify.py [--quick]          (pin it for stable figures: taskset -c 1 ...)

For ES256, RS256 and EdDSA, one typical RFC 9068 token (compact JSON claims, ~400-700 chars)
is verified over and over with a warm key set:

* raw cryptography: ``public_key.verify(signature, signing_input, ...)`` on pre-decoded inputs
  (DER signature for ES256): the floor no JWS verifier can go below;
* ``verify_jws``: parse and check the compact JWS, verify, decode the claims;
* ``TokenVerifier``: the full resource-server check (typ, iss, aud, exp/nbf/iat, required
  claims, scopes) through ``verify_sync`` and ``await verify``; keys come from an in-memory
  JWKS endpoint (httpx.MockTransport), fetched once.

Rates are the best of interleaved rounds (noise on a shared machine only slows a round down).
"""

from __future__ import annotations

import asyncio
import base64
import json
import platform
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import cryptography
import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
from joserfc.jwk import ECKey, OKPKey, RSAKey

from tokenward.jose.verification import PublicKeySet, verify_jws
from tokenward.resource import TokenVerifier

ISSUER, AUDIENCE = "https://as.example.com", "https://api.example.com"
QUICK = "--quick" in sys.argv
ROUNDS, ROUND_SECONDS = (5, 0.1) if QUICK else (15, 0.2)


def b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def rate(fn: Callable[[], object]) -> float:
    n, start = 0, time.perf_counter()
    while True:
        for _ in range(25):
            fn()
        n += 25
        elapsed = time.perf_counter() - start
        if elapsed >= ROUND_SECONDS:
            return n / elapsed


def async_rate(verifier: TokenVerifier, token: str) -> float:
    async def run() -> float:
        n, start = 0, time.perf_counter()
        while True:
            for _ in range(25):
                await verifier.verify(token)
            n += 25
            elapsed = time.perf_counter() - start
            if elapsed >= ROUND_SECONDS:
                return n / elapsed

    return asyncio.run(run())


class Subject:
    """One algorithm: its key, a token, and the callables to measure."""

    def __init__(self, alg: str) -> None:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "exp": now + 86400,
            "aud": AUDIENCE,
            "sub": "s6BhdRkqt3",
            "client_id": "s6BhdRkqt3",
            "iat": now,
            "jti": str(uuid.uuid4()),
            "scope": "read write",
        }
        self.alg = alg
        private, jwk, sign, self.raw_verify = _key(alg)
        jwk.update(kid="k1", alg=alg, use="sig")
        self.jwks = {"keys": [jwk]}
        header = {"alg": alg, "kid": "k1", "typ": "at+jwt"}
        signing_input = b64(_json(header)) + b"." + b64(_json(claims))
        raw_signature, self.native_signature = sign(private, signing_input)
        self.signing_input = signing_input
        self.token = (signing_input + b"." + b64(raw_signature)).decode()
        self.keys = PublicKeySet.from_jwks(self.jwks)
        self.verifier = TokenVerifier(
            ISSUER,
            audience=AUDIENCE,
            jwks_uri=ISSUER + "/jwks.json",
            http_client=httpx.Client(transport=httpx.MockTransport(self._serve)),
            async_http_client=httpx.AsyncClient(transport=httpx.MockTransport(self._serve)),
        )
        assert self.verifier.verify_sync(self.token).client_id == "s6BhdRkqt3"

    def _serve(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=self.jwks)

    def measurements(self) -> dict[str, Callable[[], float]]:
        algorithms = (self.alg,)
        return {
            "raw": lambda: rate(lambda: self.raw_verify(self.native_signature, self.signing_input)),
            "jws": lambda: rate(lambda: verify_jws(self.token, self.keys, algorithms=algorithms)),
            "sync": lambda: rate(lambda: self.verifier.verify_sync(self.token)),
            "async": lambda: async_rate(self.verifier, self.token),
        }


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _key(alg: str) -> tuple[Any, dict[str, Any], Any, Callable[[bytes, bytes], None]]:
    if alg == "ES256":
        ec_key = ec.generate_private_key(ec.SECP256R1())
        ecdsa = ec.ECDSA(hashes.SHA256())

        def sign_es256(key: Any, data: bytes) -> tuple[bytes, bytes]:
            der = key.sign(data, ecdsa)
            r, s = utils.decode_dss_signature(der)
            return r.to_bytes(32, "big") + s.to_bytes(32, "big"), der

        public = ec_key.public_key()
        return (
            ec_key,
            ECKey.import_key(public).as_dict(),
            sign_es256,
            lambda sig, data: public.verify(sig, data, ecdsa),
        )
    if alg == "RS256":
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()

        def sign_rs256(key: Any, data: bytes) -> tuple[bytes, bytes]:
            signature = key.sign(data, pkcs1, sha256)
            return signature, signature

        rsa_public = rsa_key.public_key()
        return (
            rsa_key,
            RSAKey.import_key(rsa_public).as_dict(),
            sign_rs256,
            lambda sig, data: rsa_public.verify(sig, data, pkcs1, sha256),
        )
    ed_key = ed25519.Ed25519PrivateKey.generate()

    def sign_eddsa(key: Any, data: bytes) -> tuple[bytes, bytes]:
        signature = key.sign(data)
        return signature, signature

    ed_public = ed_key.public_key()
    return ed_key, OKPKey.import_key(ed_public).as_dict(), sign_eddsa, ed_public.verify


def main() -> None:
    subjects = [Subject(alg) for alg in ("ES256", "RS256", "EdDSA")]
    best: dict[tuple[str, str], float] = {}
    for _ in range(ROUNDS):  # interleaved, so slow spells hit every column alike
        for subject in subjects:
            for name, measure in subject.measurements().items():
                key = (subject.alg, name)
                best[key] = max(best.get(key, 0.0), measure())

    print(
        f"python {platform.python_version()}, cryptography {cryptography.__version__}, "
        f"best of {ROUNDS} interleaved rounds of {ROUND_SECONDS} s, one core"
    )
    print()
    print(
        "| alg | raw cryptography verify/s | verify_jws/s | verify_jws / raw "
        "| TokenVerifier.verify_sync/s | await TokenVerifier.verify/s |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for subject in subjects:
        raw, jws, sync, async_ = (
            best[subject.alg, name] for name in ("raw", "jws", "sync", "async")
        )
        print(
            f"| {subject.alg} | {raw:,.0f} | {jws:,.0f} | {jws / raw:.1%} "
            f"| {sync:,.0f} | {async_:,.0f} |"
        )


if __name__ == "__main__":
    main()
