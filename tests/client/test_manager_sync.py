"""TokenManager (threads) against a real token endpoint on loopback."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import httpx
import pytest

from tests.client.conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    ODD_ID,
    ODD_SECRET,
    AuthState,
    Failure,
    ManagerFactory,
    Sleeps,
    Spawned,
)
from tests.support.clock import FakeClock
from tokenward.client import (
    DiscoveryError,
    TokenEndpointUnavailable,
    TokenManager,
    TokenPolicy,
    TokenRequestError,
    TokenResponseError,
)

# --- client authentication (RFC 6749 §2.3.1) ------------------------------------------------


def test_basic_form_urlencodes_id_and_secret_before_base64(
    auth: AuthState, make_manager: ManagerFactory
) -> None:
    with make_manager(client_id=ODD_ID, client_secret=ODD_SECRET) as manager:
        manager.get_token()

    (call,) = auth.token_calls
    expected = base64.b64encode(b"a%3Ab:+%25%26%2B").decode()
    assert call.authorization == f"Basic {expected}"
    assert (call.client_id, call.client_secret) == (ODD_ID, ODD_SECRET)
    assert "client_secret" not in call.form


def test_post_sends_the_credentials_in_the_form(
    auth: AuthState, make_manager: ManagerFactory
) -> None:
    with make_manager(auth_method="client_secret_post") as manager:
        manager.get_token()

    (call,) = auth.token_calls
    assert call.authorization is None
    assert call.form["client_id"] == [CLIENT_ID]
    assert call.form["client_secret"] == [CLIENT_SECRET]
    assert call.form["grant_type"] == ["client_credentials"]


def test_token_request_carries_scope_and_resource(
    auth: AuthState, make_manager: ManagerFactory
) -> None:
    with make_manager(scopes=["write", "read", "write"], resource="https://api.example/") as m:
        token = m.get_token()

    (call,) = auth.token_calls
    assert call.form["scope"] == ["read write"]
    assert call.form["resource"] == ["https://api.example/"]
    assert token.scope == "read write"


def test_unknown_auth_method_is_refused_at_construction(auth: AuthState) -> None:
    with pytest.raises(ValueError, match="auth_method"):
        TokenManager(
            issuer=auth.issuer,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            auth_method="tls_client_auth",
        )


# --- discovery (RFC 8414) -------------------------------------------------------------------


def test_discovery_finds_the_token_endpoint(auth: AuthState, make_manager: ManagerFactory) -> None:
    with make_manager() as manager:
        manager.get_token()
        manager.get_token(scopes=["other"])

    assert auth.discovery_calls == ["/.well-known/oauth-authorization-server"]
    assert auth.token_requests == 2


def test_discovery_falls_back_to_openid_configuration(
    auth: AuthState, make_manager: ManagerFactory
) -> None:
    auth.oauth_metadata = False
    with make_manager() as manager:
        manager.get_token()

    assert auth.discovery_calls == [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ]
    assert auth.token_requests == 1


def test_discovery_inserts_the_well_known_path_before_the_issuer_path(
    auth: AuthState, make_manager: ManagerFactory
) -> None:
    with make_manager(issuer=f"{auth.issuer}/tenant") as manager:
        manager.get_token()

    assert auth.discovery_calls == ["/.well-known/oauth-authorization-server/tenant"]


def test_metadata_for_another_issuer_is_not_used(
    auth: AuthState, make_manager: ManagerFactory
) -> None:
    auth.metadata_issuer = "https://evil.example"
    with make_manager() as manager, pytest.raises(DiscoveryError, match="another issuer"):
        manager.get_token()

    assert auth.token_requests == 0


def test_explicit_token_endpoint_skips_discovery(
    auth: AuthState, make_manager: ManagerFactory
) -> None:
    with make_manager(issuer=None, token_endpoint=f"{auth.issuer}/oauth/token") as manager:
        manager.get_token()

    assert auth.discovery_calls == []
    assert auth.token_requests == 1


def test_unreachable_discovery_is_a_discovery_error(
    dead_url: str, make_manager: ManagerFactory, sleeps: Sleeps
) -> None:
    with make_manager(issuer=dead_url) as manager, pytest.raises(DiscoveryError):
        manager.get_token()
    assert len(sleeps.delays) == TokenPolicy().max_attempts - 1


# --- cache ----------------------------------------------------------------------------------


def test_token_is_cached(auth: AuthState, make_manager: ManagerFactory) -> None:
    with make_manager() as manager:
        first, second = manager.get_token(), manager.get_token()

    assert first is second
    assert first.access_token == "tok-1"
    assert auth.token_requests == 1


def test_one_cache_entry_per_scope_set_and_resource(
    auth: AuthState, make_manager: ManagerFactory
) -> None:
    with make_manager() as manager:
        read = manager.get_token(scopes=["a", "b"])
        assert manager.get_token(scopes=["b", "a", "b"]) is read
        write = manager.get_token(scopes=["write"])
        for_api = manager.get_token(scopes=["a", "b"], resource="https://api.example/")

    assert len({read.access_token, write.access_token, for_api.access_token}) == 3
    assert auth.token_requests == 3


def test_expires_in_decides_expiry_never_the_jwt_exp(
    auth: AuthState, make_manager: ManagerFactory, clock: FakeClock
) -> None:
    """RFC 9068 §6: the client MUST NOT inspect the token. This one says it expired in 1970."""
    auth.token_shape = _jwt_with_exp(1)
    auth.expires_in = 3600
    with make_manager() as manager:
        first = manager.get_token()
        clock.advance(2000)
        assert manager.get_token() is first

    assert auth.token_requests == 1


def test_missing_expires_in_means_the_default_lifetime(
    auth: AuthState, make_manager: ManagerFactory, clock: FakeClock
) -> None:
    auth.token_shape = _jwt_with_exp(4_000_000_000)  # the JWT would say: valid for decades
    auth.expires_in = None
    with make_manager() as manager:
        first = manager.get_token()
        assert first.expires_in is None
        assert first.expires_at == first.obtained_at + TokenPolicy().default_lifetime
        clock.advance(TokenPolicy().default_lifetime)
        second = manager.get_token()

    assert second.access_token != first.access_token
    assert auth.token_requests == 2


def test_invalidate_drops_only_the_token_that_was_used(
    auth: AuthState, make_manager: ManagerFactory
) -> None:
    with make_manager() as manager:
        first = manager.get_token()
        manager.invalidate(first)
        second = manager.get_token()
        manager.invalidate(first)  # a late 401 for the old token must not drop the new one
        assert manager.get_token() is second

    assert auth.token_requests == 2


# --- renewal ahead of expiry ----------------------------------------------------------------


def test_renews_in_the_background_inside_the_refresh_window(
    auth: AuthState, make_manager: ManagerFactory, clock: FakeClock, spawned: Spawned
) -> None:
    with make_manager() as manager:
        first = manager.get_token()
        assert first.refresh_at == first.obtained_at + 0.8 * 3600
        clock.advance(0.8 * 3600 - 1)
        assert manager.get_token() is first
        assert spawned.pending == []

        clock.advance(1)
        assert manager.get_token() is first  # callers keep the valid token ...
        assert manager.get_token() is first
        assert len(spawned.pending) == 1  # ... and exactly one renewal starts
        assert auth.token_requests == 1

        spawned.run_sync()
        renewed = manager.get_token()

    assert renewed.access_token == "tok-2"
    assert auth.token_requests == 2


def test_callers_wait_only_once_the_token_has_expired(
    auth: AuthState, make_manager: ManagerFactory, clock: FakeClock, spawned: Spawned
) -> None:
    with make_manager() as manager:
        first = manager.get_token()
        clock.advance(3600)
        second = manager.get_token()

    assert second.access_token != first.access_token
    assert spawned.pending == []
    assert auth.token_requests == 2


def test_default_renewal_runs_in_a_thread(auth: AuthState, clock: FakeClock) -> None:
    with TokenManager(
        issuer=auth.issuer, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, clock=clock
    ) as manager:
        first = manager.get_token()
        clock.advance(first.refresh_at - first.obtained_at + 1)
        assert manager.get_token() is first
        deadline = time.monotonic() + 10
        while (token := manager.get_token()) is first and time.monotonic() < deadline:
            time.sleep(0.01)

    assert token.access_token == "tok-2"


# --- single flight --------------------------------------------------------------------------


def test_200_threads_on_a_cold_cache_make_one_token_request(
    auth: AuthState, make_manager: ManagerFactory
) -> None:
    auth.delay = 0.3  # keep the request open while every thread arrives
    with make_manager() as manager:
        tokens = _in_threads(200, manager.get_token)

    assert auth.token_requests == 1
    assert {token.access_token for token in tokens} == {"tok-1"}


def test_a_failure_is_shared_by_the_waiting_threads_but_not_cached(
    auth: AuthState, make_manager: ManagerFactory
) -> None:
    auth.delay = 0.3
    auth.failures = [Failure(401, "invalid_client", "bad secret")]
    with make_manager() as manager:
        errors = _in_threads(50, lambda: _raised(manager.get_token))
        assert auth.token_requests == 1
        assert {type(e) for e in errors} == {TokenRequestError}

        auth.delay = 0
        assert manager.get_token().access_token == "tok-1"

    assert auth.token_requests == 2


# --- failures, retries, outage --------------------------------------------------------------


def test_backoff_then_success(
    auth: AuthState, make_manager: ManagerFactory, sleeps: Sleeps
) -> None:
    auth.failures = [Failure(500), Failure(503), Failure(429, retry_after="3")]
    with make_manager() as manager:
        token = manager.get_token()

    assert token.access_token == "tok-1"
    assert auth.token_requests == 4
    # equal jitter at random()=0.5: 3/4 of 0.5, 1 and 2 seconds; Retry-After raises the third
    assert sleeps.delays == [0.375, 0.75, 3.0]


def test_retries_are_bounded(auth: AuthState, make_manager: ManagerFactory, sleeps: Sleeps) -> None:
    auth.fail_always = Failure(503, "temporarily_unavailable", "maintenance")
    with (
        make_manager(policy=TokenPolicy(max_attempts=3)) as manager,
        pytest.raises(TokenEndpointUnavailable) as raised,
    ):
        manager.get_token()

    assert (raised.value.error, raised.value.status) == ("temporarily_unavailable", 503)
    assert auth.token_requests == 3
    assert len(sleeps.delays) == 2
    assert max(sleeps.delays) <= TokenPolicy().backoff_max


def test_network_errors_are_retried_then_typed(
    dead_url: str, make_manager: ManagerFactory, sleeps: Sleeps
) -> None:
    with (
        make_manager(issuer=None, token_endpoint=f"{dead_url}/token") as manager,
        pytest.raises(TokenEndpointUnavailable) as raised,
    ):
        manager.get_token()

    assert raised.value.status is None
    assert len(sleeps.delays) == TokenPolicy().max_attempts - 1


def test_invalid_client_is_not_retried(
    auth: AuthState, make_manager: ManagerFactory, sleeps: Sleeps
) -> None:
    with make_manager(client_secret="wrong") as manager, pytest.raises(TokenRequestError) as raised:
        manager.get_token()

    error = raised.value
    assert type(error) is TokenRequestError
    assert (error.error, error.status, error.description) == (
        "invalid_client",
        401,
        "client authentication failed",
    )
    assert auth.token_requests == 1
    assert sleeps.delays == []


def test_cached_token_survives_a_token_endpoint_outage(
    auth: AuthState, make_manager: ManagerFactory, clock: FakeClock, spawned: Spawned
) -> None:
    with make_manager() as manager:
        first = manager.get_token()
        auth.fail_always = Failure(500)
        clock.advance(first.refresh_at - first.obtained_at)

        assert manager.get_token() is first
        spawned.run_sync()  # the renewal fails after every retry ...
        assert auth.token_requests == 1 + TokenPolicy().max_attempts
        assert manager.get_token() is first  # ... the valid token stays in use
        assert spawned.pending == []  # and the next renewal waits for backoff_max

        clock.advance(TokenPolicy().backoff_max)
        assert manager.get_token() is first
        assert len(spawned.pending) == 1
        spawned.run_sync()
        assert auth.token_requests == 1 + 2 * TokenPolicy().max_attempts

        clock.advance(first.expires_at - clock.now)  # expired: now callers see the outage
        with pytest.raises(TokenEndpointUnavailable):
            manager.get_token()

        auth.fail_always = None
        assert manager.get_token().access_token == "tok-2"


@pytest.mark.parametrize(
    ("token_type", "expires_in"),
    [("mac", 3600), ("Bearer", -5), ("Bearer", "soon"), ("Bearer", True)],
)
def test_unusable_token_responses_are_typed_errors(
    auth: AuthState, make_manager: ManagerFactory, token_type: str, expires_in: object
) -> None:
    auth.token_type, auth.expires_in = token_type, expires_in
    with make_manager() as manager, pytest.raises(TokenResponseError):
        manager.get_token()


def test_token_type_is_case_insensitive_and_numeric_strings_are_tolerated(
    auth: AuthState, make_manager: ManagerFactory
) -> None:
    auth.token_type, auth.expires_in = "bEaReR", "120"
    with make_manager() as manager:
        token = manager.get_token()

    assert (token.token_type, token.expires_in) == ("Bearer", 120)
    assert token.authorization == "Bearer tok-1"


T = TypeVar("T")


# --- helpers --------------------------------------------------------------------------------


def _jwt_with_exp(exp: int) -> Callable[[int], str]:
    def shape(n: int) -> str:
        def part(value: dict[str, object]) -> str:
            return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

        return f"{part({'alg': 'none', 'typ': 'at+jwt'})}.{part({'exp': exp, 'n': n})}.sig{n}"

    return shape


def _in_threads(count: int, target: Callable[[], T]) -> list[T]:
    barrier = threading.Barrier(count)
    results: list[T] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        result = target()
        with lock:
            results.append(result)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == count
    return results


def _raised(call: Callable[[], object]) -> BaseException:
    try:
        call()
    except Exception as exc:
        return exc
    raise AssertionError("expected an exception")


def test_uses_the_given_http_client_and_leaves_it_open(auth: AuthState, clock: FakeClock) -> None:
    with httpx.Client() as client:
        with TokenManager(
            issuer=auth.issuer,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            http_client=client,
            clock=clock,
        ) as manager:
            manager.get_token()
        assert not client.is_closed

    assert auth.token_requests == 1
