"""The lifecycle tests' view of the one in-process harness (``tests/support/inprocess.py``),
and client-assertion minting.

``Harness`` runs the real server from ``build_server`` with a fake clock and without the
background loops (a test moves state on with ``sync()``), and talks to it through httpx's ASGI
transport. Client keys and assertions are made with joserfc, as a client application would.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from tests.support.clock import FakeClock
from tests.support.inprocess import ACTOR, InProcess, in_process
from tokenward.protocol.client_auth import ASSERTION_TYPE
from tokenward.protocol.model import Registry
from tokenward.server.admin import Admin
from tokenward.server.admin.schemas import ApiCreate, ClientCreate
from tokenward.server.admin.views import ClientView
from tokenward.server.composition import Server
from tokenward.server.settings import Settings
from tokenward.server.storage.sql.repository import Repository

ISSUER = "https://as.example.com"
TOKEN_ENDPOINT = f"{ISSUER}/token"
API = "https://api.example.com"
OTHER_API = "https://other-api.example.com"
OPAQUE_API = "https://opaque.example.com"
INVALID_CLIENT = {"error": "invalid_client", "error_description": "client authentication failed"}
INACTIVE = {"active": False}
PEPPER = "pepper-for-tests-" + "x" * 32
KEK = "ab" * 32

AnyKey = ECKey | RSAKey | OKPKey


def settings_for(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "issuer": ISSUER,
        "pepper": PEPPER,
        "key_encryption_key": KEK,
        "failed_auth_limit": 100_000,
        "audit_log": True,
        "jwks_uri_allow_private": True,
        "jwks_uri_timeout": 1.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


# -- keys and assertions ------------------------------------------------------------------------


def new_key(alg: str = "ES256") -> AnyKey:
    key: AnyKey
    if alg == "ES256":
        key = ECKey.generate_key("P-256")
    elif alg in ("RS256", "PS256"):
        key = RSAKey.generate_key(2048)
    else:
        key = OKPKey.generate_key("Ed25519")
    key.ensure_kid()
    return key


def public_jwks(*keys: AnyKey, alg: str | None = None) -> dict[str, Any]:
    out = []
    for key in keys:
        jwk = dict(key.as_dict(private=False))
        if alg is not None:
            jwk["alg"] = alg
        out.append(jwk)
    return {"keys": out}


def rsa_jwk_of_size(bits: int) -> dict[str, str]:
    """A public RSA JWK whose modulus has ``bits`` bits (for size checks; not a real key)."""
    n = (1 << (bits - 1)) | secrets.randbits(bits - 1) | 1
    return {"kty": "RSA", "n": b64(n.to_bytes(bits // 8, "big")), "e": "AQAB", "kid": f"rsa{bits}"}


def claims_for(client_id: str, now: float, **changes: Any) -> dict[str, Any]:
    """RFC 7523 / 7523bis client-assertion claims; ``None`` values are removed."""
    claims: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": ISSUER,
        "iat": int(now),
        "exp": int(now) + 60,
        "jti": uuid.uuid4().hex,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def mint(
    key: AnyKey | OctKey,
    claims: Mapping[str, Any],
    *,
    alg: str | None = None,
    typ: str | None = "client-authentication+jwt",
    **header: Any,
) -> str:
    """A compact JWS; ``alg`` defaults to the key type's (ES256, RS256, EdDSA, HS256)."""
    if alg is None:
        defaults = {"EC": "ES256", "RSA": "RS256", "OKP": "EdDSA", "oct": "HS256"}
        alg = defaults[key.key_type]
    head: dict[str, Any] = {"alg": alg, **header}
    if typ is not None:
        head["typ"] = typ
    if not isinstance(key, OctKey) and "kid" not in head:
        head["kid"] = key.kid
    with warnings.catch_warnings():
        # joserfc flags "EdDSA" as deprecated by RFC 9864 ("Ed25519"); clients still send it.
        warnings.simplefilter("ignore", SecurityWarning)
        return jwt.encode(head, dict(claims), key, algorithms=[alg], default_type=None)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_jws(header: Mapping[str, Any], claims: Mapping[str, Any], sign: Any) -> str:
    """A compact JWS built by hand, for headers no JOSE library will produce."""
    signing_input = (
        f"{b64(json.dumps(dict(header)).encode())}.{b64(json.dumps(dict(claims)).encode())}"
    )
    return f"{signing_input}.{b64(sign(signing_input.encode()))}"


def es256_signer(key: ECKey) -> Any:
    def sign(data: bytes) -> bytes:
        private = key.private_key
        assert private is not None
        der = private.sign(data, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return sign


def hs256_signer(secret: bytes) -> Any:
    return lambda data: hmac.new(secret, data, hashlib.sha256).digest()


def unsigned(claims: Mapping[str, Any]) -> str:
    header = b64(json.dumps({"alg": "none", "typ": "client-authentication+jwt"}).encode())
    return f"{header}.{b64(json.dumps(dict(claims)).encode())}."


def assertion_form(assertion: str, client_id: str | None = None, **extra: str) -> dict[str, str]:
    form = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion, **extra}
    if client_id is not None:
        form["client_id"] = client_id
    return form


# -- the harness --------------------------------------------------------------------------------


@dataclass
class Registered:
    client: ClientView
    secret: str | None = None
    key: AnyKey | None = None

    @property
    def id(self) -> str:
        return self.client.client_id

    @property
    def signing_key(self) -> AnyKey:
        assert self.key is not None, "not a private_key_jwt client"
        return self.key

    def basic(self) -> httpx.BasicAuth:
        assert self.secret is not None
        return httpx.BasicAuth(self.id, self.secret)


@dataclass
class Harness:
    running: InProcess
    stack: contextlib.AsyncExitStack
    repository: Repository

    @classmethod
    async def start(cls, settings: Settings, clock: FakeClock | None = None) -> Harness:
        stack = contextlib.AsyncExitStack()
        running = await stack.enter_async_context(in_process(settings, clock=clock, loops=False))
        repository = running.server.stores.admin
        assert isinstance(repository, Repository)
        return cls(running, stack, repository)

    async def close(self) -> None:
        await self.stack.aclose()

    @property
    def server(self) -> Server:
        return self.running.server

    @property
    def settings(self) -> Settings:
        return self.running.settings

    @property
    def clock(self) -> FakeClock:
        return self.running.clock

    @property
    def admin(self) -> Admin:
        return self.running.admin

    @property
    def http(self) -> httpx.AsyncClient:
        return self.running.http

    @property
    def registry(self) -> Registry:
        return self.server.registry.registry

    async def sync(self) -> None:
        await self.running.sync()

    async def sibling(self, **overrides: Any) -> tuple[Server, httpx.AsyncClient]:
        """A second instance on the same database (another worker or machine)."""
        other = await self.stack.enter_async_context(self.running.sibling(**overrides))
        return other.server, other.http

    # -- registry ---------------------------------------------------------------------------

    async def api(
        self, identifier: str, *scopes: str, token_format: Literal["jwt", "opaque"] = "jwt"
    ) -> None:
        spec = ApiCreate(
            identifier=identifier, name=identifier, scopes=list(scopes), token_format=token_format
        )
        await self.admin.create_api(spec, actor=ACTOR)
        await self.sync()

    async def secret_client(self, scopes: tuple[str, ...] = ("read",), **kw: Any) -> Registered:
        spec = ClientCreate(name="c", scopes=list(scopes), **kw)
        created = await self.admin.create_client(spec, actor=ACTOR)
        await self.sync()
        secret = created.secret.client_secret if created.secret is not None else None
        return Registered(created.client, secret)

    async def jwt_client(
        self, key: AnyKey | None = None, *, scopes: tuple[str, ...] = ("read",), **kw: Any
    ) -> Registered:
        key = key or new_key()
        if "jwks_uri" not in kw:
            kw.setdefault("jwks", public_jwks(key))
        kw.setdefault("auth_methods", ["private_key_jwt"])
        spec = ClientCreate(name="jwt", scopes=list(scopes), **kw)
        created = await self.admin.create_client(spec, actor=ACTOR)
        await self.sync()
        return Registered(created.client, None, key)

    # -- requests ---------------------------------------------------------------------------

    async def token_with(
        self, form: Mapping[str, str], auth: httpx.Auth | None = None
    ) -> httpx.Response:
        data = {"grant_type": "client_credentials", **form}
        if auth is None:
            return await self.http.post("/token", data=data)
        return await self.http.post("/token", data=data, auth=auth)

    async def assert_token(self, form: Mapping[str, str]) -> str:
        response = await self.token_with(form)
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    async def assertion_status(self, assertion: str, client_id: str | None = None) -> int:
        response = await self.token_with(assertion_form(assertion, client_id))
        if response.status_code != 200:
            assert response.json() == INVALID_CLIENT, response.text
        return response.status_code

    async def issue(self, client: Registered, **form: str) -> str:
        response = await self.token_with(form, client.basic())
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    async def introspect(self, token: str, caller: Registered, **extra: str) -> dict[str, Any]:
        response = await self.http.post(
            "/introspect", data={"token": token, **extra}, auth=caller.basic()
        )
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        body: dict[str, Any] = response.json()
        return body

    async def introspect_as_self(self, token: str, client: Registered) -> dict[str, Any]:
        """Introspect authenticating with a fresh private_key_jwt assertion."""
        assert client.key is not None
        claims = claims_for(client.id, self.clock.now)
        assertion = mint(client.key, claims, alg=client.client.assertion_alg)
        response = await self.http.post(
            "/introspect", data={"token": token, **assertion_form(assertion)}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def revoke(self, token: str, caller: Registered, **extra: str) -> httpx.Response:
        return await self.http.post("/revoke", data={"token": token, **extra}, auth=caller.basic())

    def audit_reasons(self) -> list[str]:
        return [str(e.get("reason")) for e in self.server.audit.drain() if "reason" in e]


def random_opaque() -> str:
    return "tw_at_" + secrets.token_urlsafe(32)


def same_headers(response: httpx.Response, reference: httpx.Response) -> bool:
    """The same headers, but for ``X-Request-Id``: each request has its own."""

    def kept(r: httpx.Response) -> dict[str, str]:
        return {k: v for k, v in r.headers.items() if k != "x-request-id"}

    return kept(response) == kept(reference) and "x-request-id" in response.headers
