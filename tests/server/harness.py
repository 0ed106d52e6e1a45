"""In-process harness: the real ASGI app inside its lifespan, a standard registry, helpers.

``running_app(settings)`` builds the app with ``create_app(settings, configure_logs=False)``,
runs its lifespan (so the service loads keys and registry and starts its loops) and yields an
``httpx.AsyncClient`` bound to it through ``httpx.ASGITransport``. ``asgi_call`` drives the raw
ASGI callable directly, for inputs an HTTP client library would refuse to send.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote_plus

import httpx
from joserfc import jws
from joserfc.jwk import ECKey, KeySet

from tokenward.server.app import TokenwardApp, create_app
from tokenward.server.registry_admin import Admin
from tokenward.server.settings import Settings

ISSUER = "https://as.example"
API = "https://api.example"
API2 = "https://api2.example"
PEPPER = "test-pepper-0123456789abcdef0123456789abcdef"
KEK = "ab" * 32
FORM = "application/x-www-form-urlencoded"
REALM_CHALLENGE = 'Basic realm="tokenward"'
INVALID_CLIENT = {"error": "invalid_client", "error_description": "client authentication failed"}
# RFC 6749 §5.2 charset of error and error_description.
ERROR_CHARSET = re.compile(r"[\x20\x21\x23-\x5B\x5D-\x7E]*")
ALLOWED_STATUSES = frozenset({200, 400, 401, 405, 413, 429})


def basic(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1: each half form-urlencoded, then base64 of ``id:secret``."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}"
    return "Basic " + base64.b64encode(raw.encode()).decode()


def make_settings(home: Path, database_url: str | None = None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url or f"sqlite:///{home}/tw.db",
        "issuer": ISSUER,
        "pepper": PEPPER,
        "key_encryption_key": KEK,
        "secrets_file": home / "secrets.json",
        "cache_refresh_seconds": 0.2,
        "failed_auth_limit": 100_000,
        "key_publication_delay": 600,
    }
    values.update(overrides)
    return Settings(**values)


def settings_environ(settings: Settings) -> dict[str, str]:
    """The ``TOKENWARD_*`` variables that make the real CLI share ``settings``' database."""
    assert settings.pepper is not None
    assert settings.key_encryption_key is not None
    return {
        "TOKENWARD_PEPPER": settings.pepper.get_secret_value(),
        "TOKENWARD_KEY_ENCRYPTION_KEY": settings.key_encryption_key.get_secret_value(),
        "TOKENWARD_MAX_TOKEN_TTL": str(settings.max_token_ttl),
        "TOKENWARD_KEY_PUBLICATION_DELAY": str(settings.key_publication_delay),
    }


@dataclass
class Running:
    """An app inside its lifespan, an HTTP client bound to it and an admin on its database."""

    app: TokenwardApp
    http: httpx.AsyncClient
    admin: Admin

    @property
    def settings(self) -> Settings:
        return self.app.service.settings

    async def sync(self) -> None:
        """Make the service see registry changes now instead of at the next poll."""
        await self.app.service.reload()

    async def token(
        self,
        data: dict[str, str] | None = None,
        *,
        auth: tuple[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        all_headers = {"content-type": FORM, **(headers or {})}
        if auth is not None:
            all_headers["authorization"] = basic(*auth)
        body = {"grant_type": "client_credentials", **(data or {})}
        return await self.http.post("/token", content=encode_form(body), headers=all_headers)

    async def jwks(self) -> KeySet:
        response = await self.http.get("/jwks.json")
        assert response.status_code == 200
        return KeySet.import_key_set(response.json())

    async def kids(self) -> set[str]:
        response = await self.http.get("/jwks.json")
        return {key["kid"] for key in response.json()["keys"]}


def encode_form(params: dict[str, str]) -> bytes:
    return "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in params.items()).encode()


class FakeClock:
    """Wall-clock seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 15.0, what: str = "condition"
) -> None:
    """Poll ``check`` until it holds; fail after ``timeout`` seconds (a deadline, not a timing
    assertion: the bound under test is far shorter)."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_app(
    settings: Settings, *, clock: FakeClock | None = None
) -> AsyncIterator[Running]:
    app = create_app(settings, configure_logs=False)
    if clock is not None:
        app.service.clock = clock
    admin = Admin(settings, app.service.repository, app.service.secrets)
    async with app.inner.router.lifespan_context(app.inner):
        # TokenwardApp annotates its scope as dict, httpx as MutableMapping: same object.
        transport = httpx.ASGITransport(app=cast(Any, app))
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
            yield Running(app, http, admin)


# -- the standard registry -----------------------------------------------------------------


@dataclass(frozen=True)
class Cred:
    client_id: str
    secret: str


C1 = Cred("c1", "s1")
C2 = Cred("c2", "s2")
ODD = Cred("a:b", " %&+")  # TE-17
BASIC_ONLY = Cred("c-basic", "s-basic")
POST_ONLY = Cred("c-post", "s-post")
MULTI = Cred("c-multi", "s-multi")
DEFAULTS = Cred("c-default", "s-default")
DISABLED = Cred("c-disabled", "s-disabled")
NO_GRANT = Cred("c-nogrant", "s-nogrant")
TTL = Cred("c-ttl", "s-ttl")
NO_API = Cred("c-none", "s-none")
RS = Cred("c-rs", "s-rs")
PKJWT_ID = "c-pkjwt"


def client_jwks() -> dict[str, Any]:
    key = ECKey.generate_key("P-256")
    return {"keys": [{**key.as_dict(private=False), "kid": "k1", "alg": "ES256"}]}


async def seed_registry(admin: Admin) -> None:
    """Two APIs (ES256 and RS256) and one client per behaviour the tests need."""
    await admin.create_api(identifier=API, name="Example API", scopes=["read", "write"])
    await admin.create_api(
        identifier=API2, name="Second API", scopes=["api2:read"], signing_alg="RS256", token_ttl=600
    )
    plain: list[tuple[Cred, list[str], dict[str, Any]]] = [
        (C1, ["read", "write"], {}),
        (C2, ["read"], {}),
        (ODD, ["read"], {}),
        (BASIC_ONLY, ["read"], {"auth_methods": ["client_secret_basic"]}),
        (POST_ONLY, ["read"], {"auth_methods": ["client_secret_post"]}),
        (MULTI, ["read", "api2:read"], {}),
        (DEFAULTS, ["read", "write"], {"default_scopes": ["read"]}),
        (DISABLED, ["read"], {}),
        (NO_GRANT, ["read"], {}),
        (TTL, ["read"], {"token_ttl": 299}),
        (NO_API, [], {}),
        (RS, ["api2:read"], {}),
    ]
    for cred, scopes, extra in plain:
        await admin.create_client(
            name=cred.client_id,
            client_id=cred.client_id,
            scopes=scopes,
            secret=cred.secret,
            **extra,
        )
    await admin.create_client(
        name="pkjwt",
        client_id=PKJWT_ID,
        scopes=["read"],
        auth_methods=["private_key_jwt"],
        jwks=client_jwks(),
    )
    await admin.update_client(DISABLED.client_id, enabled=False)
    # No admin command removes the grant (tokenward has one grant); write it as the store would.
    client = await admin.repo.get_client(NO_GRANT.client_id)
    await admin.repo.save_client(replace(client, grant_types=frozenset()), now=client.created_at)


# -- tokens ---------------------------------------------------------------------------------


def b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims, decoded without verification (the tests verify separately)."""
    header, payload, _ = token.split(".")
    return json.loads(b64decode(header)), json.loads(b64decode(payload))


def verify(token: str, keys: KeySet, algorithms: Sequence[str]) -> dict[str, Any]:
    """Verify the JWS signature against a JWKS; return the claims."""
    signature = jws.deserialize_compact(token, keys, algorithms=list(algorithms))
    claims: dict[str, Any] = json.loads(signature.payload)
    return claims


# -- raw ASGI ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v.decode("latin-1") for k, v in self.headers if k == name.encode()]
        assert len(values) <= 1, f"repeated header {name}"
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body)


async def asgi_call(
    app: TokenwardApp,
    *,
    method: str = "POST",
    path: str = "/token",
    query: bytes = b"",
    headers: Sequence[tuple[bytes, bytes]] = (),
    body: bytes = b"",
    chunk: int | None = None,
) -> RawResponse:
    """One request straight into the ASGI app; the body arrives in ``chunk``-sized pieces."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(k.lower(), v) for k, v in headers],
        "client": ("127.0.0.1", 50000),
        "server": ("as.example", 443),
    }
    size = chunk or max(len(body), 1)
    pieces = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": p, "more_body": i < len(pieces) - 1}
        for i, p in enumerate(pieces)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body_out = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return RawResponse(start["status"], list(start.get("headers", [])), body_out)
