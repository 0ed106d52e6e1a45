"""The authorization-server tests' registry and helpers, over the one in-process harness
(``tests/support/inprocess.py``).

``asgi_call`` drives the raw ASGI callable directly, for inputs an HTTP client library would
refuse to send.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from joserfc import jws
from joserfc.jwk import ECKey, KeySet

from tests.support.inprocess import ACTOR, FORM, InProcess, basic, encode_form, in_process
from tokenward.server.admin.schemas import ApiCreate, ClientCreate, ClientUpdate
from tokenward.server.app import TokenwardApp
from tokenward.server.settings import Settings
from tokenward.server.stores import AuditRecord

__all__ = [
    "ACTOR",
    "FORM",
    "InProcess",
    "basic",
    "encode_form",
    "in_process",
]

ISSUER = "https://as.example"
API = "https://api.example"
API2 = "https://api2.example"
PEPPER = "test-pepper-0123456789abcdef0123456789abcdef"
KEK = "ab" * 32
REALM_CHALLENGE = 'Basic realm="tokenward"'
INVALID_CLIENT = {"error": "invalid_client", "error_description": "client authentication failed"}
# RFC 6749 §5.2 charset of error and error_description.
ERROR_CHARSET = re.compile(r"[\x20\x21\x23-\x5B\x5D-\x7E]*")
ALLOWED_STATUSES = frozenset({200, 400, 401, 405, 413, 429})


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


async def seed_registry(running: InProcess) -> None:
    """Two APIs (ES256 and RS256) and one client per behaviour the tests need."""
    admin = running.admin
    await admin.create_api(
        ApiCreate(identifier=API, name="Example API", scopes=["read", "write"]), actor=ACTOR
    )
    api2 = ApiCreate(
        identifier=API2, name="Second API", scopes=["api2:read"], signing_alg="RS256", token_ttl=600
    )
    await admin.create_api(api2, actor=ACTOR)
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
        spec = ClientCreate(
            name=cred.client_id,
            client_id=cred.client_id,
            scopes=scopes,
            secret=cred.secret,
            **extra,
        )
        await admin.create_client(spec, actor=ACTOR)
    pkjwt = ClientCreate(
        name="pkjwt",
        client_id=PKJWT_ID,
        scopes=["read"],
        auth_methods=["private_key_jwt"],
        jwks=client_jwks(),
    )
    await admin.create_client(pkjwt, actor=ACTOR)
    await admin.update_client(DISABLED.client_id, ClientUpdate(enabled=False), actor=ACTOR)
    await remove_grant(running, NO_GRANT.client_id)


async def remove_grant(running: InProcess, client_id: str) -> None:
    """No admin operation removes the grant (tokenward has one grant); write it as the store
    would, for the ``unauthorized_client`` tests."""
    store = running.server.stores.admin
    client = await store.get_client(client_id)
    record = AuditRecord(at=0, event="test.grant_removed", actor=ACTOR)
    await store.save_client(replace(client, grant_types=frozenset()), now=0, audit=record)


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
