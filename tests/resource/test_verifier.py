"""TokenVerifier against a real fake authorization server: discovery, JWKS caching and
rotation, time checks with an injected clock, and introspection.

Every test runs on asyncio and trio, through both ``await verify()`` and ``verify_sync()``
(the latter in worker threads).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.to_thread
import pytest

from tests.resource.support import API, DROP, Chunked, FakeAuthServer, FakeIssuer, new_key
from tests.support.clock import FakeClock
from tests.support.live import LiveServer
from tokenward.resource import (
    AccessToken,
    Introspection,
    InvalidToken,
    JwksCachePolicy,
    TokenVerifier,
    VerificationPolicy,
    VerifierUnavailable,
)

pytestmark = pytest.mark.anyio

Verify = Callable[[TokenVerifier, str], Awaitable[AccessToken]]


@pytest.fixture(params=["async", "sync"])
def verify(request: pytest.FixtureRequest) -> Verify:
    if request.param == "async":
        return lambda verifier, token: verifier.verify(token)

    async def in_thread(verifier: TokenVerifier, token: str) -> AccessToken:
        return await anyio.to_thread.run_sync(verifier.verify_sync, token)

    return in_thread


async def rejected(verify: Verify, verifier: TokenVerifier, token: str) -> str:
    """The reason an invalid token was rejected with."""
    with pytest.raises(InvalidToken) as caught:
        await verify(verifier, token)
    return caught.value.reason


# -- the happy path --------------------------------------------------------------------------


async def test_valid_token_becomes_an_access_token(
    verify: Verify, verifier: TokenVerifier, issuer: FakeIssuer, clock: FakeClock
) -> None:
    exp = int(clock()) + 300
    token = issuer.mint(scope="read write", aud=[API, "https://x"], exp=exp, jti="j-1", sub="s")

    result = await verify(verifier, token)

    assert result == AccessToken(
        client_id="c1",
        subject="s",
        scopes=frozenset({"read", "write"}),
        audience=(API, "https://x"),
        issuer=issuer.issuer,
        expires_at=datetime.fromtimestamp(exp, UTC),
        jti="j-1",
        claims={},
    )
    assert result.claims["client_id"] == "c1"
    assert result.has_scopes("read")
    assert not result.has_scopes("read", "admin")


async def test_discovery_and_keys_are_fetched_once(
    verify: Verify, verifier: TokenVerifier, issuer: FakeIssuer
) -> None:
    for _ in range(3):
        await verify(verifier, issuer.mint())
    assert (issuer.metadata_requests, issuer.jwks_requests) == (1, 1)


async def test_openid_configuration_is_the_fallback(
    verify: Verify, verifier: TokenVerifier, issuer: FakeIssuer
) -> None:
    issuer.oauth_metadata = False
    await verify(verifier, issuer.mint())
    assert issuer.metadata_requests == 1  # the 404 from RFC 8414's path is not counted


async def test_explicit_jwks_uri_skips_discovery(
    verify: Verify, issuer: FakeIssuer, clock: FakeClock
) -> None:
    verifier = TokenVerifier(
        issuer.issuer, audience=API, clock=clock, jwks_uri=issuer.issuer + "/jwks.json"
    )
    await verify(verifier, issuer.mint())
    assert (issuer.metadata_requests, issuer.jwks_requests) == (0, 1)


# -- key rotation and the JWKS cache ---------------------------------------------------------


async def test_rotation_new_kid_is_fetched_once(
    verify: Verify, verifier: TokenVerifier, issuer: FakeIssuer
) -> None:
    await verify(verifier, issuer.mint())
    new = new_key("ES256")
    issuer.published = [issuer.key, new]  # the server starts signing with a new key

    assert (await verify(verifier, issuer.mint(new))).client_id == "c1"
    assert (await verify(verifier, issuer.mint(new))).client_id == "c1"
    assert issuer.jwks_requests == 2


async def test_concurrent_unknown_kids_share_one_fetch(
    verify: Verify, verifier: TokenVerifier, issuer: FakeIssuer
) -> None:
    await verify(verifier, issuer.mint())
    new = new_key("ES256")
    issuer.published = [issuer.key, new]
    results: list[AccessToken] = []

    async def one() -> None:
        results.append(await verify(verifier, issuer.mint(new)))

    async with anyio.create_task_group() as group:
        for _ in range(12):
            group.start_soon(one)

    assert len(results) == 12
    assert issuer.jwks_requests == 2


async def test_flood_of_unknown_kids_is_rate_limited(
    verify: Verify, verifier: TokenVerifier, issuer: FakeIssuer, clock: FakeClock
) -> None:
    await verify(verifier, issuer.mint())
    for _ in range(20):
        forged = new_key("ES256")  # never published
        assert await rejected(verify, verifier, issuer.mint(forged)) == (
            "no key matches the token's kid, even after a refetch"
        )
    assert issuer.jwks_requests == 2  # the first fetch and one refetch

    clock.advance(10.5)  # past refetch_cooldown (10 s)
    await rejected(verify, verifier, issuer.mint(new_key("ES256")))
    await rejected(verify, verifier, issuer.mint(new_key("ES256")))
    assert issuer.jwks_requests == 3


async def test_keys_expire_after_ttl(
    verify: Verify, verifier: TokenVerifier, issuer: FakeIssuer, clock: FakeClock
) -> None:
    await verify(verifier, issuer.mint())
    clock.advance(299)
    await verify(verifier, issuer.mint(iat=int(clock())))
    assert issuer.jwks_requests == 1
    clock.advance(2)  # default ttl 300 s without Cache-Control
    await verify(verifier, issuer.mint(iat=int(clock()), exp=int(clock()) + 60))
    assert issuer.jwks_requests == 2


@pytest.mark.parametrize(
    ("cache_control", "fresh_for"),
    [("max-age=60", 60), ("public, max-age=100", 100), ("no-store", 30), ("max-age=999999", 3600)],
)
async def test_cache_control_max_age_is_honoured_within_bounds(
    verify: Verify,
    verifier: TokenVerifier,
    issuer: FakeIssuer,
    clock: FakeClock,
    cache_control: str,
    fresh_for: int,
) -> None:
    issuer.jwks_cache_control = cache_control
    await verify(verifier, issuer.mint())
    start = clock()

    clock.advance(fresh_for - 1)
    await verify(verifier, issuer.mint(iat=int(start), exp=int(clock()) + 60))
    assert issuer.jwks_requests == 1
    clock.advance(2)
    await verify(verifier, issuer.mint(iat=int(start), exp=int(clock()) + 60))
    assert issuer.jwks_requests == 2


async def test_removed_key_stops_verifying_after_ttl(
    verify: Verify, verifier: TokenVerifier, issuer: FakeIssuer, clock: FakeClock
) -> None:
    """MD-13: a compromised key removed from the JWKS is dropped at the next fetch."""
    token = issuer.mint(exp=int(clock()) + 3600)
    await verify(verifier, token)
    issuer.key = new_key("ES256")
    issuer.published = [issuer.key]
    clock.advance(301)
    reason = await rejected(verify, verifier, token)
    assert reason == "no key matches the token's kid, even after a refetch"
    assert issuer.jwks_requests == 3  # the expiry refetch, then one for the unknown kid


async def test_unreachable_jwks_keeps_serving_cached_keys(
    verify: Verify, verifier: TokenVerifier, issuer: FakeIssuer, clock: FakeClock
) -> None:
    token = issuer.mint(exp=int(clock()) + 86400)
    await verify(verifier, token)
    issuer.jwks_status = 503

    clock.advance(400)  # keys expired; the refetch fails; the stale keys still verify
    await verify(verifier, token)
    clock.advance(5)  # within the failure cooldown: no new attempt
    await verify(verifier, token)
    assert issuer.jwks_requests == 2

    clock.advance(86400)  # past max_stale: nothing usable is left
    with pytest.raises(VerifierUnavailable):
        await verify(verifier, token)


async def test_stopped_server_keeps_serving_cached_keys(verify: Verify, clock: FakeClock) -> None:
    server = FakeAuthServer()
    live = LiveServer(server.asgi).start()
    server.base_url = live.url
    issuer = server.new_issuer()
    verifier = TokenVerifier(issuer.issuer, audience=API, clock=clock)
    token = issuer.mint(exp=int(clock()) + 86400)
    try:
        await verify(verifier, token)
    finally:
        live.stop()

    clock.advance(3600)
    assert (await verify(verifier, token)).client_id == "c1"
    assert verifier.keys.fetches == 2  # it did try


async def test_no_keys_and_no_server_is_unavailable_not_invalid(
    verify: Verify, verifier: TokenVerifier, issuer: FakeIssuer, clock: FakeClock
) -> None:
    issuer.jwks_status = 500
    for _ in range(3):
        with pytest.raises(VerifierUnavailable):
            await verify(verifier, issuer.mint())
    assert issuer.jwks_requests == 1  # failures are retried only after the cooldown
    clock.advance(11)
    issuer.jwks_status = 200
    await verify(verifier, issuer.mint(iat=int(clock())))


@pytest.mark.parametrize(
    "document",
    [
        {"keys": [], "padding": "x" * 300_000},  # over max_bytes
        # Over max_bytes without a Content-Length. Stopping mid-stream leaves httpx's inner
        # async generators to the garbage collector, which trio reports; the response itself
        # is closed.
        pytest.param(
            Chunked(),
            marks=pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
        ),
        b"not json",
        ["a", "list"],
        {"keys": "not a list"},
    ],
    ids=["too-large", "too-large-chunked", "not-json", "not-object", "keys-not-list"],
)
async def test_bad_jwks_documents_are_refused(
    verify: Verify, verifier: TokenVerifier, issuer: FakeIssuer, document: Any
) -> None:
    issuer.jwks_override = document
    with pytest.raises(VerifierUnavailable):
        await verify(verifier, issuer.mint())


async def test_redirects_are_not_followed(
    verify: Verify, verifier: TokenVerifier, issuer: FakeIssuer
) -> None:
    issuer.metadata_override = {**issuer.metadata(), "jwks_uri": issuer.issuer + "/moved"}
    with pytest.raises(VerifierUnavailable):
        await verify(verifier, issuer.mint())
    assert issuer.jwks_requests == 0


@pytest.mark.parametrize(
    "change",
    [
        {"issuer": "https://elsewhere.example"},
        {"issuer": DROP},
        {"jwks_uri": DROP},
        {"jwks_uri": 42},
        {"jwks_uri": "ftp://x/jwks"},
    ],
    ids=["issuer-mismatch", "no-issuer", "no-jwks-uri", "jwks-uri-number", "jwks-uri-ftp"],
)
async def test_bad_metadata_is_refused(
    verify: Verify, verifier: TokenVerifier, issuer: FakeIssuer, change: dict[str, Any]
) -> None:
    document = {**issuer.metadata(), **change}
    issuer.metadata_override = {k: v for k, v in document.items() if v is not DROP}
    with pytest.raises(VerifierUnavailable):
        await verify(verifier, issuer.mint())
    assert issuer.jwks_requests == 0


# -- time checks with an injected clock -------------------------------------------------------


@pytest.mark.parametrize(
    ("leeway", "exp_offset", "ok"),
    [(0, 0, False), (0, 1, True), (30, -30, False), (30, -29, True), (5, -6, False)],
)
async def test_exp_with_leeway(
    verify: Verify,
    issuer: FakeIssuer,
    clock: FakeClock,
    leeway: int,
    exp_offset: int,
    ok: bool,
) -> None:
    """RS-14: rejected "on or after" exp + leeway (RFC 7519 §4.1.4)."""
    verifier = TokenVerifier(issuer.issuer, audience=API, clock=clock, leeway=leeway)
    clock.now = float(int(clock.now))
    token = issuer.mint(exp=int(clock()) + exp_offset, iat=int(clock()) - 60)
    if ok:
        await verify(verifier, token)
    else:
        assert await rejected(verify, verifier, token) == "token expired"


@pytest.mark.parametrize(
    ("claim", "offset", "ok"), [("nbf", 30, True), ("nbf", 31, False), ("iat", 31, False)]
)
async def test_nbf_and_iat_with_leeway(
    verify: Verify,
    verifier: TokenVerifier,
    issuer: FakeIssuer,
    clock: FakeClock,
    claim: str,
    offset: int,
    ok: bool,
) -> None:
    clock.now = float(int(clock.now))
    claims: dict[str, Any] = {claim: int(clock()) + offset}
    token = issuer.mint(**claims)
    if ok:
        await verify(verifier, token)
    else:
        await rejected(verify, verifier, token)


async def test_oversized_token_is_rejected_before_decoding(
    verify: Verify, verifier: TokenVerifier, issuer: FakeIssuer
) -> None:
    """J13: a 1 MB token is refused by size."""
    token = issuer.mint(padding="x" * 1_000_000)
    assert await rejected(verify, verifier, token) == "not a compact JWS of acceptable size"


async def test_opaque_token_without_introspection_is_invalid(
    verify: Verify, verifier: TokenVerifier, issuer: FakeIssuer
) -> None:
    await rejected(verify, verifier, "opaque-token-value")
    assert issuer.introspection_requests == []


# -- introspection (RFC 7662) -----------------------------------------------------------------


def introspecting(issuer: FakeIssuer, clock: FakeClock, **settings: Any) -> TokenVerifier:
    client_id, secret = issuer.client_credentials
    return TokenVerifier(
        issuer.issuer,
        audience=API,
        clock=clock,
        introspection=Introspection(client_id=client_id, client_secret=secret, **settings),
    )


def active(issuer: FakeIssuer, clock: FakeClock, **overrides: Any) -> dict[str, Any]:
    response = {
        "active": True,
        "client_id": "c1",
        "sub": "c1",
        "scope": "read",
        "aud": API,
        "iss": issuer.issuer,
        "exp": int(clock()) + 300,
        "iat": int(clock()),
        "token_type": "Bearer",
    }
    response.update(overrides)
    return {k: v for k, v in response.items() if v is not DROP}


async def test_opaque_token_is_introspected(
    verify: Verify, issuer: FakeIssuer, clock: FakeClock
) -> None:
    verifier = introspecting(issuer, clock)
    issuer.introspection["opaque-1"] = active(issuer, clock, scope="read write", jti=DROP)

    token = await verify(verifier, "opaque-1")

    assert (token.client_id, token.scopes, token.jti) == ("c1", frozenset({"read", "write"}), None)
    assert issuer.introspection_requests == [
        {"token": "opaque-1", "token_type_hint": "access_token"}
    ]
    assert issuer.jwks_requests == 0


async def test_configured_endpoint_needs_no_discovery(
    verify: Verify, issuer: FakeIssuer, clock: FakeClock
) -> None:
    issuer.metadata_override = {**issuer.metadata(), "introspection_endpoint": "https://wrong"}
    verifier = introspecting(issuer, clock, endpoint=issuer.issuer + "/introspect")
    issuer.introspection["opaque-6"] = active(issuer, clock)
    await verify(verifier, "opaque-6")
    assert issuer.metadata_requests == 0


async def test_inactive_token_is_invalid(
    verify: Verify, issuer: FakeIssuer, clock: FakeClock
) -> None:
    verifier = introspecting(issuer, clock)
    assert await rejected(verify, verifier, "unknown") == "introspection: token not active"


async def test_introspection_cache_expires_and_revocation_takes_effect(
    verify: Verify, issuer: FakeIssuer, clock: FakeClock
) -> None:
    """RS-21: cached for cache_ttl; a revoked token fails once the entry expires."""
    verifier = introspecting(issuer, clock, cache_ttl=30)
    issuer.introspection["opaque-2"] = active(issuer, clock)
    await verify(verifier, "opaque-2")
    issuer.introspection["opaque-2"] = {"active": False}  # revoked at the server

    clock.advance(29)
    await verify(verifier, "opaque-2")
    assert len(issuer.introspection_requests) == 1
    clock.advance(2)
    await rejected(verify, verifier, "opaque-2")
    assert len(issuer.introspection_requests) == 2


async def test_introspection_cache_never_outlives_exp(
    verify: Verify, issuer: FakeIssuer, clock: FakeClock
) -> None:
    verifier = introspecting(issuer, clock, cache_ttl=300)
    issuer.introspection["opaque-3"] = active(issuer, clock, exp=int(clock()) + 10)
    await verify(verifier, "opaque-3")
    clock.advance(9)
    await verify(verifier, "opaque-3")
    assert len(issuer.introspection_requests) == 1
    clock.advance(2)  # past exp: the cached answer is gone, the server is asked again
    await verify(verifier, "opaque-3")  # (still accepted: within the 30 s leeway)
    assert len(issuer.introspection_requests) == 2


async def test_always_introspect_covers_jwts(
    verify: Verify, issuer: FakeIssuer, clock: FakeClock
) -> None:
    verifier = introspecting(issuer, clock, always=True)
    jwt = issuer.mint()
    issuer.introspection[jwt] = active(issuer, clock)
    await verify(verifier, jwt)
    assert (len(issuer.introspection_requests), issuer.jwks_requests) == (1, 0)


@pytest.mark.parametrize(
    "overrides",
    [
        {"active": "true"},
        {"cnf": {"jkt": "abc"}},
        {"token_type": "DPoP"},
        {"aud": "https://other.example"},
        {"aud": DROP},
        {"exp": DROP},
        {"client_id": DROP},
        {"iss": "https://other.example"},
        {"scope": 7},
    ],
    ids=lambda o: next(iter(o)) + "=" + str(next(iter(o.values()))),
)
async def test_unacceptable_introspection_answers(
    verify: Verify, issuer: FakeIssuer, clock: FakeClock, overrides: dict[str, Any]
) -> None:
    verifier = introspecting(issuer, clock)
    issuer.introspection["opaque-4"] = active(issuer, clock, **overrides)
    await rejected(verify, verifier, "opaque-4")


async def test_introspection_failure_is_unavailable(
    verify: Verify, issuer: FakeIssuer, clock: FakeClock
) -> None:
    issuer.client_credentials = ("rs-client", "another-secret")  # our secret is now wrong
    verifier = TokenVerifier(
        issuer.issuer,
        audience=API,
        clock=clock,
        introspection=Introspection(client_id="rs-client", client_secret="rs-secret"),
    )
    with pytest.raises(VerifierUnavailable):
        await verify(verifier, "opaque-5")


# -- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"algorithms": ["none"]},
        {"algorithms": ["HS256"]},
        {"algorithms": []},
        {"leeway": -1},
        {"leeway": 3600},
        {"audience": ""},
    ],
)
def test_insecure_configuration_is_refused(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"audience": API, **kwargs}
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by setting
        TokenVerifier("https://as.example", **args)


def test_without_discovery_the_introspection_endpoint_is_required() -> None:
    with pytest.raises(ValueError, match="endpoint"):
        TokenVerifier(
            "https://as.example",
            audience=API,
            jwks_uri="https://as.example/jwks.json",
            introspection=Introspection(client_id="a", client_secret="b"),
        )


def test_issuer_must_be_http_or_https() -> None:
    with pytest.raises(ValueError, match="https"):
        TokenVerifier("ftp://as.example", audience=API)


def test_plain_http_issuer_logs_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    TokenVerifier("http://as.example", audience=API)
    TokenVerifier("http://127.0.0.1:9", audience=API)
    assert [r.levelname for r in caplog.records] == ["WARNING"]


def test_jwks_cache_policy_bounds() -> None:
    with pytest.raises(ValueError, match="min_ttl"):
        JwksCachePolicy(min_ttl=600, ttl=300)


def test_policy_defaults() -> None:
    policy = VerificationPolicy(issuer="https://as.example", audience=API)
    assert policy.algorithms == ("ES256", "RS256", "PS256", "EdDSA", "Ed25519")
    assert (policy.leeway, policy.max_token_length) == (30.0, 16384)


def test_require_scopes_names_the_missing_scope() -> None:
    from tokenward.resource import InsufficientScope

    token = AccessToken("c", "c", frozenset({"a"}), (API,), "i", datetime.now(UTC), None, {})
    token.require_scopes("a")
    with pytest.raises(InsufficientScope) as caught:
        token.require_scopes("a", "b")
    assert caught.value.required == ("a", "b")
