"""The one in-process server harness: the real app from ``build_server``, a fake clock, and an
httpx client bound to it through ``httpx.ASGITransport``.

``in_process(settings)`` runs the app's lifespan (the runtime's loops included) unless
``loops=False``, in which case the runtime only prepares (keys, registry) and the test moves
state on by calling ``sync()``. ``sibling()`` builds a second server on the same database:
another worker or instance. Nothing is monkeypatched: the clock and stores go in through
``build_server``.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import quote_plus, urlsplit

import httpx
from joserfc.jwk import KeySet

from tests.support.clock import FakeClock
from tokenward.server.admin import Admin
from tokenward.server.app import TokenwardApp, wrap
from tokenward.server.composition import Server, build_server, prepare_database
from tokenward.server.settings import Settings
from tokenward.server.stores import Stores

ACTOR = "test"
FORM = "application/x-www-form-urlencoded"


def basic(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1: each half form-urlencoded, then base64 of ``id:secret``."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}"
    return "Basic " + base64.b64encode(raw.encode()).decode()


def encode_form(params: dict[str, str]) -> bytes:
    return "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in params.items()).encode()


@dataclass
class InProcess:
    server: Server
    app: TokenwardApp
    http: httpx.AsyncClient
    clock: FakeClock
    siblings: list[InProcess] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        return self.server.settings

    @property
    def admin(self) -> Admin:
        return self.server.admin

    async def token(
        self,
        data: dict[str, str] | None = None,
        *,
        auth: tuple[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """POST /token with ``grant_type=client_credentials`` and ``data``, form-encoded."""
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

    async def sync(self) -> None:
        """See registry and key changes now instead of at the next poll."""
        await self.server.registry.load()

    @contextlib.asynccontextmanager
    async def sibling(self, **overrides: Any) -> AsyncIterator[InProcess]:
        """A second server on the same database and clock (another worker or machine)."""
        settings = self.settings.model_copy(update=overrides) if overrides else self.settings
        async with in_process(settings, clock=self.clock, loops=False) as other:
            yield other


def _client(app: TokenwardApp, base_url: str) -> httpx.AsyncClient:
    # TokenwardApp annotates its scope as dict, httpx as MutableMapping: the same object.
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=cast(Any, app)), base_url=base_url)


@contextlib.asynccontextmanager
async def in_process(
    settings: Settings,
    *,
    clock: FakeClock | None = None,
    loops: bool = True,
    stores: Stores | None = None,
    freeze_heap: bool = False,
) -> AsyncIterator[InProcess]:
    prepare_database(settings)
    clock = clock or FakeClock()
    server = build_server(settings, clock=clock, stores=stores, freeze_heap=freeze_heap)
    app = wrap(server)
    async with contextlib.AsyncExitStack() as stack:
        if loops:
            await stack.enter_async_context(app.inner.router.lifespan_context(app.inner))
        else:
            stack.push_async_callback(server.aclose)
            stack.push_async_callback(server.runtime.stop)
            await server.runtime.prepare()
        parts = urlsplit(settings.issuer)
        http = await stack.enter_async_context(_client(app, f"{parts.scheme}://{parts.netloc}"))
        yield InProcess(server, app, http, clock)
