"""The 2025 audience-injection attack (checklist §2.5, C5; draft-ietf-oauth-rfc7523bis).

A client registered at this server (H-AS) and at an attacker's server (A-AS) with the same
client_id and key pair. A-AS publishes metadata whose ``token_endpoint`` is H-AS's token
endpoint; a client that uses "the token endpoint" as assertion audience (RFC 7523's old
practice) hands A-AS, at any other A-AS endpoint, an assertion A-AS can replay at H-AS.
tokenward accepts only its issuer identifier as the sole audience, at every endpoint.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.lifecycle.harness import (
    API,
    ISSUER,
    TOKEN_ENDPOINT,
    AnyKey,
    Harness,
    Registered,
    assertion_form,
    claims_for,
    mint,
    settings_for,
)
from tests.support.live import LiveServer

pytestmark = pytest.mark.anyio


@dataclass
class AttackerAS:
    """A-AS: metadata pointing at our token endpoint; its revocation endpoint keeps what it gets."""

    url: str = ""
    captured: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/oauth-authorization-server", self.metadata),
                Route("/revoke", self.revoke, methods=["POST"]),
            ]
        )

    async def metadata(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.url,
                "token_endpoint": TOKEN_ENDPOINT,  # H-AS's token endpoint
                "revocation_endpoint": f"{self.url}/revoke",
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            }
        )

    async def revoke(self, request: Request) -> Response:
        form = parse_qs((await request.body()).decode())
        self.captured.append({k: v[0] for k, v in form.items()})
        return Response(status_code=200)


@pytest.fixture
def attacker() -> Iterator[AttackerAS]:
    server = AttackerAS()
    live = LiveServer(server.app()).start()
    server.url = live.url
    try:
        yield server
    finally:
        live.stop()


async def _client(h: Harness) -> Registered:
    await h.api(API, "read")
    return await h.jwt_client()


async def _victim_revokes_at_attacker(
    attacker: AttackerAS, client_id: str, key: AnyKey, now: float, *, audience: str
) -> dict[str, str]:
    """The honest client revokes a token at A-AS, building ``aud`` as its setting says."""
    async with httpx.AsyncClient() as http:
        metadata = (await http.get(f"{attacker.url}/.well-known/oauth-authorization-server")).json()
        aud = metadata["token_endpoint"] if audience == "token_endpoint" else metadata["issuer"]
        assertion = mint(key, claims_for(client_id, now, aud=aud))
        await http.post(
            metadata["revocation_endpoint"], data={"token": "t", **assertion_form(assertion)}
        )
    return attacker.captured[-1]


@pytest.mark.parametrize("audience", ["token_endpoint", "issuer"])
async def test_captured_assertion_replayed_at_our_token_endpoint(
    harness: Harness, attacker: AttackerAS, audience: str
) -> None:
    client = await _client(harness)
    assert client.key is not None
    captured = await _victim_revokes_at_attacker(
        attacker, client.id, client.key, harness.clock.now, audience=audience
    )
    # A-AS replays it at H-AS to run the client credentials grant as the client.
    response = await harness.token_with(
        {k: v for k, v in captured.items() if k.startswith("client_assertion")}
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert "assertion: aud is not this server's issuer" in harness.audit_reasons()


async def test_legacy_switch_reopens_the_attack(sqlite_url: str, attacker: AttackerAS) -> None:
    """Why assertion_allow_token_endpoint_audience is off by default."""
    h = await Harness.start(settings_for(sqlite_url, assertion_allow_token_endpoint_audience=True))
    try:
        client = await _client(h)
        assert client.key is not None
        captured = await _victim_revokes_at_attacker(
            attacker, client.id, client.key, h.clock.now, audience="token_endpoint"
        )
        response = await h.token_with(
            {k: v for k, v in captured.items() if k.startswith("client_assertion")}
        )
        assert response.status_code == 200
    finally:
        await h.close()


@pytest.mark.parametrize("aud", [TOKEN_ENDPOINT, [ISSUER, TOKEN_ENDPOINT]])
@pytest.mark.parametrize("endpoint", ["/token", "/introspect", "/revoke"])
async def test_same_audience_rule_at_every_endpoint(
    harness: Harness, endpoint: str, aud: Any
) -> None:
    client = await _client(harness)
    assert client.key is not None
    assertion = mint(client.key, claims_for(client.id, harness.clock.now, aud=aud))
    data = {"grant_type": "client_credentials", "token": "x", **assertion_form(assertion)}
    response = await harness.http.post(endpoint, data=data)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


@pytest.mark.parametrize("endpoint", ["/introspect", "/revoke"])
async def test_assertion_used_elsewhere_is_spent_at_the_token_endpoint(
    harness: Harness, endpoint: str
) -> None:
    client = await _client(harness)
    assert client.key is not None
    assertion = mint(client.key, claims_for(client.id, harness.clock.now))
    used = await harness.http.post(endpoint, data={"token": "x", **assertion_form(assertion)})
    assert used.status_code == 200
    assert await harness.assertion_status(assertion) == 401
