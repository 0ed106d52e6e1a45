"""Test helpers: signing keys, hand-built tokens and a fake authorization server.

Tokens are built here by hand (base64url, JSON, cryptography) rather than with the code under
test, so that malformed and hostile tokens can be made byte by byte.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa, utils
from joserfc.jwk import ECKey, OKPKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

API = "https://api.example"

_EC_CURVES: dict[str, tuple[ec.EllipticCurve, hashes.HashAlgorithm, int]] = {
    "ES256": (ec.SECP256R1(), hashes.SHA256(), 32),
    "ES384": (ec.SECP384R1(), hashes.SHA384(), 48),
    "ES512": (ec.SECP521R1(), hashes.SHA512(), 66),
}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@dataclass
class SigningKey:
    """A private key with the JWS algorithm it signs with and its published JWK."""

    alg: str
    private: Any
    kid: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    publish_alg: bool = True

    def sign(self, data: bytes, alg: str | None = None) -> bytes:
        alg = alg or self.alg
        key = self.private
        if alg in _EC_CURVES:
            _, digest, size = _EC_CURVES[alg]
            r, s = utils.decode_dss_signature(key.sign(data, ec.ECDSA(digest)))
            return r.to_bytes(size, "big") + s.to_bytes(size, "big")
        if alg.startswith("RS"):
            return bytes(key.sign(data, padding.PKCS1v15(), _hash(alg)))
        if alg.startswith("PS"):
            h = _hash(alg)
            return bytes(key.sign(data, padding.PSS(padding.MGF1(h), h.digest_size), h))
        return bytes(key.sign(data))  # EdDSA / Ed25519 / Ed448

    def public_jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            numbers = public.public_numbers()  # by hand: joserfc warns about small keys
            size = (numbers.n.bit_length() + 7) // 8
            jwk: dict[str, Any] = {
                "kty": "RSA",
                "n": b64(numbers.n.to_bytes(size, "big")),
                "e": b64(b"\1\0\1"),
            }
        elif isinstance(public, ec.EllipticCurvePublicKey):
            jwk = ECKey.import_key(public).as_dict()
        else:
            jwk = OKPKey.import_key(public).as_dict()
        jwk = {**jwk, "kid": self.kid, "use": "sig"}
        if self.publish_alg:
            jwk["alg"] = self.alg
        return jwk

    def public_pem(self) -> bytes:
        return bytes(
            self.private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def public_der(self) -> bytes:
        return bytes(
            self.private.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def public_openssh(self) -> bytes:
        return bytes(
            self.private.public_key().public_bytes(
                serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
            )
        )


def _hash(alg: str) -> hashes.HashAlgorithm:
    return {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}[alg[2:]]


def new_key(alg: str = "ES256", *, kid: str | None = None, rsa_bits: int = 2048) -> SigningKey:
    private: Any
    if alg in _EC_CURVES:
        private = ec.generate_private_key(_EC_CURVES[alg][0])
    elif alg[:2] in ("RS", "PS"):
        private = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    elif alg == "Ed448":
        private = ed448.Ed448PrivateKey.generate()
    else:
        private = ed25519.Ed25519PrivateKey.generate()
    key = SigningKey(alg, private)
    if kid is not None:
        key.kid = kid
    return key


def compact(header: Mapping[str, Any] | bytes, claims: Mapping[str, Any] | bytes, key: Any) -> str:
    """A compact JWS. ``key`` is a SigningKey, or a callable from signing input to signature."""
    h = header if isinstance(header, bytes) else json_bytes(header)
    p = claims if isinstance(claims, bytes) else json_bytes(claims)
    signing_input = f"{b64(h)}.{b64(p)}".encode()
    signature = key.sign(signing_input) if isinstance(key, SigningKey) else key(signing_input)
    return f"{signing_input.decode()}.{b64(signature)}"


class FakeIssuer:
    """One tenant of the fake authorization server: its keys, JWKS, metadata, introspection."""

    def __init__(self, base_url: str, tenant: str) -> None:
        self.base_url = base_url
        self.path = f"/t/{tenant}"
        self.issuer = base_url + self.path
        self.key = new_key("ES256")
        self.published: list[SigningKey] = [self.key]
        self.jwks_requests = 0
        self.metadata_requests = 0
        self.jwks_status = 200
        self.jwks_cache_control: str | None = None
        self.jwks_override: Any = None  # a document to serve instead of the keys
        self.metadata_override: dict[str, Any] | None = None
        self.oauth_metadata = True  # serve /.well-known/oauth-authorization-server
        self.introspection: dict[str, dict[str, Any]] = {}  # token -> response
        self.introspection_requests: list[dict[str, str]] = []
        self.introspection_status = 200
        self.client_credentials = ("rs-client", "rs-secret")
        self.lock = threading.Lock()

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk() for k in self.published]}

    def metadata(self) -> dict[str, Any]:
        if self.metadata_override is not None:
            return self.metadata_override
        return {
            "issuer": self.issuer,
            "token_endpoint": self.issuer + "/token",
            "jwks_uri": self.issuer + "/jwks.json",
            "introspection_endpoint": self.issuer + "/introspect",
            "grant_types_supported": ["client_credentials"],
        }

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": "c1",
            "aud": API,
            "exp": now + 300,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "client_id": "c1",
            "scope": "read",
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not DROP}

    def header(self, key: SigningKey | None = None, **overrides: Any) -> dict[str, Any]:
        key = key or self.key
        header: dict[str, Any] = {"alg": key.alg, "kid": key.kid, "typ": "at+jwt"}
        header.update(overrides)
        return {k: v for k, v in header.items() if v is not DROP}

    def mint(
        self,
        key: SigningKey | None = None,
        *,
        header: Mapping[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A valid access token for API, with claim (and header) overrides; DROP removes one."""
        key = key or self.key
        return compact(self.header(key, **(header or {})), self.claims(**claims), key)


@dataclass
class Chunked:
    """A JWKS body sent in chunks without a Content-Length."""

    first: bytes = b'{"keys":[],"padding":['
    chunk: bytes = (
        b'"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",'
    )
    count: int = 4000


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


DROP: Any = _Drop()


class FakeAuthServer:
    """A Starlette app serving any number of FakeIssuer tenants, recording every request."""

    def __init__(self) -> None:
        self.tenants: dict[str, FakeIssuer] = {}
        self.paths: list[str] = []
        self.base_url = ""
        self.app = Starlette(
            routes=[
                Route("/.well-known/oauth-authorization-server/t/{tenant}", self._rfc8414),
                Route("/t/{tenant}/.well-known/openid-configuration", self._oidc),
                Route("/t/{tenant}/jwks.json", self._jwks),
                Route("/t/{tenant}/introspect", self._introspect, methods=["POST"]),
                Route("/t/{tenant}/moved", self._moved),
            ]
        )
        inner = self.app

        async def recording(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                self.paths.append(scope["path"])
            await inner(scope, receive, send)

        self.asgi: Callable[..., Any] = recording

    def new_issuer(self) -> FakeIssuer:
        tenant = uuid.uuid4().hex[:10]
        issuer = self.tenants[tenant] = FakeIssuer(self.base_url, tenant)
        return issuer

    def _tenant(self, request: Request) -> FakeIssuer | None:
        return self.tenants.get(request.path_params["tenant"])

    async def _rfc8414(self, request: Request) -> Response:
        issuer = self._tenant(request)
        if issuer is None or not issuer.oauth_metadata:
            return JSONResponse({"error": "not found"}, status_code=404)
        issuer.metadata_requests += 1
        return JSONResponse(issuer.metadata())

    async def _oidc(self, request: Request) -> Response:
        issuer = self._tenant(request)
        if issuer is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        issuer.metadata_requests += 1
        return JSONResponse(issuer.metadata())

    async def _jwks(self, request: Request) -> Response:
        issuer = self._tenant(request)
        if issuer is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        with issuer.lock:
            issuer.jwks_requests += 1
        headers = {}
        if issuer.jwks_cache_control is not None:
            headers["cache-control"] = issuer.jwks_cache_control
        document = issuer.jwks() if issuer.jwks_override is None else issuer.jwks_override
        if isinstance(document, bytes):
            return Response(document, status_code=issuer.jwks_status, headers=headers)
        if isinstance(document, Chunked):  # no content-length: only the read limit stops it
            chunks = iter([document.first] + [document.chunk] * document.count + [b"]}"])
            return StreamingResponse(chunks, status_code=issuer.jwks_status, headers=headers)
        return JSONResponse(document, status_code=issuer.jwks_status, headers=headers)

    async def _moved(self, request: Request) -> Response:
        target = f"/t/{request.path_params['tenant']}/jwks.json"
        return Response(status_code=302, headers={"location": target})

    async def _introspect(self, request: Request) -> Response:
        issuer = self._tenant(request)
        if issuer is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        issuer.introspection_requests.append(form)
        client_id, secret = issuer.client_credentials
        expected = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if issuer.introspection_status != 200:
            return JSONResponse({"error": "server_error"}, status_code=issuer.introspection_status)
        return JSONResponse(issuer.introspection.get(form.get("token", ""), {"active": False}))
