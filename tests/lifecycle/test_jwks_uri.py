"""Client keys fetched from a ``jwks_uri``: rotation, caching and every refusal.

Checklist: CA-22 (SSRF and DoS bounds: private/loopback/link-local addresses, redirects, slow
and oversized answers, more than 20 keys; cache, time limit, cooldown), CA-23 (rotated keys:
the new key works after a refetch, the removed one stops), O3 (no refetch storm on unknown
``kid``), O5 (key sizes). The key server runs on loopback (tests/support/live.py), so the
harness allows private addresses except where the refusal itself is tested.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from joserfc.jwk import ECKey

from tests.lifecycle.harness import (
    API,
    AnyKey,
    Harness,
    Registered,
    claims_for,
    mint,
    new_key,
    public_jwks,
    rsa_jwk_of_size,
    settings_for,
)
from tests.lifecycle.jwks_server import JwksServer
from tokenward.server.client_keys import (
    JwksFetchError,
    _address_allowed,
    check_jwks_uri,
    fetch_jwks,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
async def fast_harness(sqlite_url: str) -> AsyncIterator[Harness]:
    h = await Harness.start(settings_for(sqlite_url, jwks_uri_timeout=0.3))
    try:
        yield h
    finally:
        await h.close()


async def _uri_client(h: Harness, server: JwksServer) -> Registered:
    key = new_key()
    server.document = public_jwks(key)
    await h.api(API, "read")
    return await h.jwt_client(key, jwks_uri=server.jwks_uri)


async def _status(h: Harness, client: Registered, key: AnyKey | None = None) -> int:
    signer = key or client.signing_key
    return await h.assertion_status(mint(signer, claims_for(client.id, h.clock.now)))


async def test_ca23_rotated_keys_accepted_after_refetch(
    harness: Harness, jwks_server: JwksServer
) -> None:
    client = await _uri_client(harness, jwks_server)
    for _ in range(3):
        assert await _status(harness, client) == 200
    assert len(jwks_server.hits) == 1  # cached

    rotated = new_key()
    jwks_server.document = public_jwks(rotated)
    # Unknown kid inside the cooldown: no new fetch, refused.
    assert await _status(harness, client, rotated) == 401
    assert len(jwks_server.hits) == 1
    harness.clock.advance(31)  # past jwks_uri_refetch_cooldown
    assert await _status(harness, client, rotated) == 200
    assert len(jwks_server.hits) == 2
    # The retired key is gone from the document: refused (and no refetch storm).
    for _ in range(5):
        assert await _status(harness, client) == 401
    assert len(jwks_server.hits) == 2


async def test_cache_expires(harness: Harness, jwks_server: JwksServer) -> None:
    client = await _uri_client(harness, jwks_server)
    assert await _status(harness, client) == 200
    harness.clock.advance(harness.settings.jwks_uri_cache_seconds + 1)
    assert await _status(harness, client) == 200
    assert len(jwks_server.hits) == 2


async def test_stale_keys_survive_a_failed_refresh_for_one_period(
    harness: Harness, jwks_server: JwksServer
) -> None:
    client = await _uri_client(harness, jwks_server)
    assert await _status(harness, client) == 200
    jwks_server.mode = "status"
    harness.clock.advance(harness.settings.jwks_uri_cache_seconds + 1)
    assert await _status(harness, client) == 200  # refresh failed, previous keys still usable
    assert await _status(harness, client) == 200
    assert len(jwks_server.hits) == 2  # the failed refresh is not retried inside the cooldown
    harness.clock.advance(harness.settings.jwks_uri_cache_seconds + 1)
    assert await _status(harness, client) == 401
    assert len(jwks_server.hits) == 3


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("redirect", "jwks_uri answered HTTP 302"),
        ("big", "jwks_uri document is too large"),
        ("big-chunked", "jwks_uri document is too large"),
        ("slow", "jwks_uri fetch timed out"),
        ("status", "jwks_uri answered HTTP 500"),
        ("not-json", "jwks_uri document rejected: not a JSON JWKS"),
    ],
)
async def test_ca22_misbehaving_key_server(
    fast_harness: Harness,
    jwks_server: JwksServer,
    caplog: pytest.LogCaptureFixture,
    mode: str,
    reason: str,
) -> None:
    client = await _uri_client(fast_harness, jwks_server)
    jwks_server.mode = mode
    assert await _status(fast_harness, client) == 401
    assert jwks_server.hits == ["/jwks"]  # a redirect is never followed
    assert any(reason in r.getMessage() for r in caplog.records)
    assert "assertion: client keys unavailable" in fast_harness.audit_reasons()
    # A failed fetch is not retried before the cooldown (no fetch storm).
    assert await _status(fast_harness, client) == 401
    assert jwks_server.hits == ["/jwks"]


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ("too-many", "at most 20 keys"),
        ("private", "private or symmetric key material"),
        ("small-rsa", "RSA keys must have 2048 to 4096 bits"),
        ("p384", "keys must be RSA (RS256, PS256), EC P-256 (ES256) or Ed25519"),
    ],
)
async def test_ca22_unacceptable_documents(
    harness: Harness,
    jwks_server: JwksServer,
    caplog: pytest.LogCaptureFixture,
    document: str,
    reason: str,
) -> None:
    client = await _uri_client(harness, jwks_server)
    key = client.key
    assert key is not None
    docs: dict[str, Callable[[], dict[str, Any]]] = {
        "too-many": lambda: public_jwks(key, *(new_key() for _ in range(20))),
        "private": lambda: {"keys": [dict(key.as_dict(private=True))]},
        "small-rsa": lambda: {"keys": [*public_jwks(key)["keys"], rsa_jwk_of_size(1024)]},
        "p384": lambda: public_jwks(key, ECKey.generate_key("P-384", auto_kid=True)),
    }
    jwks_server.document = docs[document]()
    assert await _status(harness, client) == 401
    assert any(reason in r.getMessage() for r in caplog.records)


async def test_ca22_private_address_refused_when_not_allowed(
    harness: Harness, jwks_server: JwksServer
) -> None:
    client = await _uri_client(harness, jwks_server)  # registered while allowed (tests only)
    _strict, http = await harness.sibling(jwks_uri_allow_private=False)
    assert client.key is not None
    assertion = mint(client.key, claims_for(client.id, harness.clock.now))
    response = await http.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    )
    await http.aclose()
    assert response.status_code == 401
    assert jwks_server.hits == []  # refused before any connection


async def test_fetch_refuses_names_resolving_to_loopback(jwks_server: JwksServer) -> None:
    port = jwks_server.url.rsplit(":", 1)[1]
    async with httpx.AsyncClient() as http:
        with pytest.raises(JwksFetchError, match="private, loopback or link-local"):
            await fetch_jwks(
                http, f"https://localhost:{port}/jwks", allow_private=False, time_limit=2
            )
    assert jwks_server.hits == []


@pytest.mark.parametrize(
    "uri",
    [
        "http://keys.example.com/jwks",  # not https
        "https://127.0.0.1/jwks",
        "https://10.1.2.3/jwks",
        "https://169.254.169.254/latest/meta-data",  # cloud metadata, link-local
        "https://[::1]/jwks",
        "https://[::ffff:127.0.0.1]/jwks",
        "https://100.64.0.1/jwks",  # shared address space
        "https://user:pw@keys.example.com/jwks",
        "https://keys.example.com/jwks#frag",
        "https:///jwks",
        "https://keys.example.com/" + "x" * 2100,
    ],
)
def test_ca22_jwks_uri_static_refusals(uri: str) -> None:
    with pytest.raises(ValueError, match="jwks_uri"):
        check_jwks_uri(uri, allow_private=False)


def test_jwks_uri_accepted_shapes() -> None:
    check_jwks_uri("https://keys.example.com/.well-known/jwks.json", allow_private=False)
    check_jwks_uri("https://93.184.216.34/jwks", allow_private=False)
    check_jwks_uri("http://127.0.0.1:8080/jwks", allow_private=True)


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("0.0.0.0", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fc00::1", False),
        ("::ffff:10.0.0.1", False),
        ("224.0.0.1", False),
    ],
)
def test_address_policy(address: str, allowed: bool) -> None:
    assert _address_allowed(address) is allowed
