"""A bare client-credentials token endpoint as a raw ASGI app: the practical Python ceiling.

Written for bench/bench_peers.py; not a product. It has no database, no registry, no audit and
one client held in memory, but does per request what a real token endpoint must do:

- parse client_secret_basic (RFC 6749 §2.3.1: the id and secret are form-urlencoded inside
  the Basic credentials) and check the secret in constant time (an HMAC-SHA-256 digest under a
  per-process pepper, compared with ``hmac.compare_digest``, as tokenward stores secrets);
- parse the form body (``application/x-www-form-urlencoded``; RFC 6749 §3.2: "Request and
  response parameters MUST NOT be included more than once"), check ``grant_type`` and ``scope``;
- build the RFC 9068 §2.2 claims (``iss exp aud sub client_id iat jti`` and ``scope``) and sign
  a JWT with ``typ: at+jwt`` (§2.1) with a key object loaded once per worker;
- answer JSON with ``Cache-Control: no-store`` (RFC 6749 §5.1).

``GET /jwks`` publishes the public key so the bench can verify a token before loading.

Env (set by bench_peers.py): BARE_KEY_FILE (PEM, PKCS#8 private key, shared by the workers),
BARE_ALG (ES256 | RS256), BARE_CLIENT_ID, BARE_CLIENT_SECRET, BARE_ISSUER, BARE_AUDIENCE,
BARE_SCOPE (default ``read``), BARE_TOKEN_TTL (default 900).

    uvicorn --loop uvloop --http httptools --workers 2 --app-dir bench/peers bare_token_app:app
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

MAX_BODY = 64 * 1024
JSON_HEADERS: Headers = [
    (b"content-type", b"application/json"),
    (b"cache-control", b"no-store"),
    (b"pragma", b"no-cache"),
]
BASIC_CHALLENGE: Headers = [(b"www-authenticate", b'Basic realm="token"')]


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if not value:
        raise SystemExit(f"bare_token_app: {name} is not set")
    return value


class Signer:
    """JWS compact serialisation (RFC 7515 §7.1) with one cached private key."""

    def __init__(self, alg: str, pem: bytes, kid: str) -> None:
        key = serialization.load_pem_private_key(pem, password=None)
        self.alg = alg
        self.kid = kid
        if alg == "ES256" and isinstance(key, ec.EllipticCurvePrivateKey):
            self._ec: ec.EllipticCurvePrivateKey | None = key
            self._rsa: rsa.RSAPrivateKey | None = None
        elif alg == "RS256" and isinstance(key, rsa.RSAPrivateKey):
            self._ec, self._rsa = None, key
        else:
            raise SystemExit(f"bare_token_app: BARE_KEY_FILE does not hold an {alg} key")
        header = {"alg": alg, "typ": "at+jwt", "kid": kid}
        self._header = _b64url(json.dumps(header, separators=(",", ":")).encode())
        self._ecdsa = ec.ECDSA(hashes.SHA256())
        self._pkcs1 = padding.PKCS1v15()
        self._sha256 = hashes.SHA256()

    def _signature(self, data: bytes) -> bytes:
        if self._ec is not None:
            # RFC 7518 §3.4: the JWS signature is R || S, 32 octets each, not DER.
            r, s = utils.decode_dss_signature(self._ec.sign(data, self._ecdsa))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        assert self._rsa is not None
        return self._rsa.sign(data, self._pkcs1, self._sha256)

    def sign(self, claims: dict[str, Any]) -> str:
        payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = self._header + b"." + payload
        return (signing_input + b"." + _b64url(self._signature(signing_input))).decode()

    def jwks(self) -> dict[str, Any]:
        public: dict[str, Any] = {"kid": self.kid, "alg": self.alg, "use": "sig"}
        if self._ec is not None:
            numbers = self._ec.public_key().public_numbers()
            public |= {
                "kty": "EC",
                "crv": "P-256",
                "x": _b64url(numbers.x.to_bytes(32, "big")).decode(),
                "y": _b64url(numbers.y.to_bytes(32, "big")).decode(),
            }
        else:
            assert self._rsa is not None
            rsa_numbers = self._rsa.public_key().public_numbers()
            n = rsa_numbers.n.to_bytes((rsa_numbers.n.bit_length() + 7) // 8, "big")
            e = rsa_numbers.e.to_bytes((rsa_numbers.e.bit_length() + 7) // 8, "big")
            public |= {"kty": "RSA", "n": _b64url(n).decode(), "e": _b64url(e).decode()}
        return {"keys": [public]}


class Client:
    """The one registered client: its id, the digest of its secret and its scopes."""

    def __init__(self, client_id: str, secret: str, scopes: frozenset[str]) -> None:
        self.client_id = client_id
        self.scopes = scopes
        self._pepper = secrets.token_bytes(32)
        self._digest = self._hash(secret.encode())

    def _hash(self, secret: bytes) -> bytes:
        return hmac.new(self._pepper, secret, hashlib.sha256).digest()

    def verify(self, secret: bytes) -> bool:
        return hmac.compare_digest(self._hash(secret), self._digest)


ALG = _env("BARE_ALG", "ES256")
SIGNER = Signer(ALG, Path(_env("BARE_KEY_FILE")).read_bytes(), f"bare-{ALG.lower()}")
CLIENT = Client(
    _env("BARE_CLIENT_ID"),
    _env("BARE_CLIENT_SECRET"),
    frozenset(_env("BARE_SCOPE", "read").split()),
)
ISSUER = _env("BARE_ISSUER")
AUDIENCE = _env("BARE_AUDIENCE", "https://api.bench.test")
TTL = int(_env("BARE_TOKEN_TTL", "900"))
JWKS = json.dumps(SIGNER.jwks()).encode()


async def _reply(
    send: Send, status: int, body: bytes, extra: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _error(
    send: Send, status: int, code: str, extra: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    await _reply(send, status, json.dumps({"error": code}).encode(), extra)


async def _read_body(receive: Receive) -> bytes | None:
    """The request body, or None when it is larger than MAX_BODY."""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _basic_credentials(value: bytes | None) -> tuple[str, bytes] | None:
    """RFC 6749 §2.3.1 / RFC 7617: ``Basic base64(urlencode(id):urlencode(secret))``."""
    if value is None or value[:6].lower() != b"basic ":
        return None
    try:
        raw = base64.b64decode(value[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = raw.partition(":")
    if not sep:
        return None
    return unquote_plus(client_id), unquote_plus(secret).encode()


def _form(body: bytes) -> dict[str, str] | None:
    """The form parameters, or None when the body is not a form or repeats a parameter."""
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        return None
    params: dict[str, str] = {}
    for key, value in pairs:
        if key in params:
            return None
        params[key] = value
    return params


async def _token(scope: Scope, receive: Receive, send: Send) -> None:
    body = await _read_body(receive)
    if body is None:
        return await _error(send, 413, "invalid_request")
    headers = dict(scope["headers"])
    if not headers.get(b"content-type", b"").startswith(b"application/x-www-form-urlencoded"):
        return await _error(send, 400, "invalid_request")
    creds = _basic_credentials(headers.get(b"authorization"))
    if creds is None or creds[0] != CLIENT.client_id or not CLIENT.verify(creds[1]):
        return await _error(send, 401, "invalid_client", BASIC_CHALLENGE)
    params = _form(body)
    if params is None:
        return await _error(send, 400, "invalid_request")
    if params.get("grant_type") != "client_credentials":
        return await _error(send, 400, "unsupported_grant_type")
    requested = params.get("scope", "").split()
    if not set(requested) <= CLIENT.scopes:
        return await _error(send, 400, "invalid_scope")
    granted = " ".join(requested) if requested else " ".join(sorted(CLIENT.scopes))
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "exp": now + TTL,
        "aud": AUDIENCE,
        "sub": CLIENT.client_id,
        "client_id": CLIENT.client_id,
        "iat": now,
        "jti": secrets.token_urlsafe(16),
        "scope": granted,
    }
    response = {
        "access_token": SIGNER.sign(claims),
        "token_type": "Bearer",
        "expires_in": TTL,
        "scope": granted,
    }
    await _reply(send, 200, json.dumps(response, separators=(",", ":")).encode())


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    if scope["type"] != "http":
        return None
    if scope["path"] == "/token":
        if scope["method"] != "POST":
            return await _error(send, 405, "invalid_request", [(b"allow", b"POST")])
        return await _token(scope, receive, send)
    if scope["path"] == "/jwks" and scope["method"] == "GET":
        return await _reply(send, 200, JWKS)
    return await _error(send, 404, "not_found")
