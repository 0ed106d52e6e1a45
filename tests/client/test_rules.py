"""The sans-IO rules, case by case: encoding, responses, challenges, metadata, timing."""

from __future__ import annotations

import base64
import json
from urllib.parse import unquote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tokenward.client import TokenPolicy, TokenRequestError, TokenResponseError
from tokenward.client._challenge import bearer_error, should_retry_with_new_token
from tokenward.client._config import ClientConfig, normalize_scopes
from tokenward.client._wire import (
    HttpResponse,
    basic_authorization,
    metadata_urls,
    read_token_response,
)

# --- RFC 6749 §2.3.1 ------------------------------------------------------------------------


def test_basic_authorization_vector() -> None:
    assert basic_authorization("a:b", " %&+") == "Basic " + base64.b64encode(
        b"a%3Ab:+%25%26%2B"
    ).decode("ascii")


@given(st.text(min_size=1), st.text())
def test_basic_authorization_round_trips_through_a_spec_server(client_id: str, secret: str) -> None:
    """What an RFC 6749 server does: base64-decode, split at the first ':', form-decode."""
    pair = base64.b64decode(basic_authorization(client_id, secret).removeprefix("Basic "))
    user, _, password = pair.decode("ascii").partition(":")
    assert (unquote_plus(user), unquote_plus(password)) == (client_id, secret)


# --- RFC 6749 §5.1 / §5.2 -------------------------------------------------------------------


def _reply(status: int, body: object, **headers: str) -> HttpResponse:
    return HttpResponse(status, headers, json.dumps(body).encode())


def test_unrecognised_members_are_ignored() -> None:
    body = {"access_token": "t", "token_type": "Bearer", "expires_in": 60, "x": {"y": 1}}
    granted = read_token_response(_reply(200, body), secret="s")
    assert (granted.access_token, granted.expires_in, granted.scope) == ("t", 60.0, None)


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"token_type": "Bearer"},
        {"access_token": "", "token_type": "Bearer"},
        {"access_token": "t"},
        {"access_token": "t", "token_type": "DPoP"},
        {"access_token": "t", "token_type": "Bearer", "expires_in": 0},
        {"access_token": "t", "token_type": "Bearer", "expires_in": "1e3"},
        {"access_token": 5, "token_type": "Bearer"},
    ],
)
def test_unusable_success_bodies(body: object) -> None:
    with pytest.raises(TokenResponseError):
        read_token_response(_reply(200, body), secret="s")


def test_error_body_becomes_a_typed_error_with_the_secret_masked() -> None:
    body = {"error": "invalid_client", "error_description": "secret s3cr3t is wrong"}
    with pytest.raises(TokenRequestError) as raised:
        read_token_response(_reply(401, body), secret="s3cr3t")
    assert (raised.value.error, raised.value.status) == ("invalid_client", 401)
    assert raised.value.description == "secret [secret] is wrong"
    assert "s3cr3t" not in str(raised.value) + repr(raised.value)


def test_error_without_a_json_body() -> None:
    reply = HttpResponse(404, {}, b"<html>not found</html>")
    with pytest.raises(TokenRequestError) as raised:
        read_token_response(reply, secret="s")
    assert (raised.value.error, raised.value.status) == (None, 404)


# --- RFC 6750 §3 ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        (['Bearer error="invalid_token"'], "invalid_token"),
        (['Bearer realm="api", error="invalid_token", error_description="a, b"'], "invalid_token"),
        (["Bearer error=invalid_token"], "invalid_token"),
        (['Basic realm="x", Bearer error="invalid_token"'], "invalid_token"),
        (['Basic YWxhZGRpbjpvcGVu==, Bearer error="invalid_token"'], "invalid_token"),
        (['Basic realm="x"', 'bearer error="invalid_token"'], "invalid_token"),
        (['Bearer error="insufficient_scope", scope="admin"'], "insufficient_scope"),
        (['DPoP error="invalid_token"'], None),
        (['Bearer realm="error=\\"invalid_token\\""'], None),
        (["Bearer"], None),
        ([], None),
    ],
)
def test_bearer_error(headers: list[str], error: str | None) -> None:
    assert bearer_error(headers) == error


def test_only_401_invalid_token_is_retried() -> None:
    challenge = ['Bearer error="invalid_token"']
    assert should_retry_with_new_token(401, challenge)
    assert not should_retry_with_new_token(403, challenge)
    assert not should_retry_with_new_token(401, ['Bearer error="invalid_request"'])
    assert not should_retry_with_new_token(401, [])


# --- RFC 8414 §3.1 --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("issuer", "urls"),
    [
        (
            "https://as.example",
            [
                "https://as.example/.well-known/oauth-authorization-server",
                "https://as.example/.well-known/openid-configuration",
            ],
        ),
        (
            "https://as.example/tenant/",
            [
                "https://as.example/.well-known/oauth-authorization-server/tenant",
                "https://as.example/tenant/.well-known/oauth-authorization-server",
                "https://as.example/tenant/.well-known/openid-configuration",
            ],
        ),
    ],
)
def test_metadata_urls(issuer: str, urls: list[str]) -> None:
    assert metadata_urls(issuer) == urls


# --- configuration and timing ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("lifetime", "unit", "refresh_after"),
    [
        (3600, 0.5, 2880),  # 80 %
        (3600, 0.0, 2700),  # 80 % - 5 %
        (3600, 1.0, 3060),  # 80 % + 5 %
        (100, 0.5, 70),  # the 30 s margin wins over 80 %
        (40, 0.5, 20),  # but never before half the lifetime
    ],
)
def test_refresh_time(lifetime: float, unit: float, refresh_after: float) -> None:
    assert TokenPolicy().refresh_at(1000, lifetime, unit) == pytest.approx(1000 + refresh_after)


def test_backoff_grows_and_is_capped() -> None:
    policy = TokenPolicy(backoff_initial=1, backoff_max=5)
    assert [policy.backoff(n, 1.0, None) for n in range(1, 6)] == [1, 2, 4, 5, 5]
    assert [policy.backoff(n, 0.0, None) for n in range(1, 4)] == [0.5, 1, 2]
    assert policy.backoff(1, 0.0, retry_after=3) == 3
    assert policy.backoff(1, 0.0, retry_after=60) == 5


@pytest.mark.parametrize(
    "options",
    [
        {"refresh_fraction": 0.98},
        {"refresh_jitter": -0.1},
        {"max_attempts": 0},
        {"default_lifetime": 0},
        {"backoff_max": float("inf")},
    ],
)
def test_policy_rejects_nonsense(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        TokenPolicy(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"issuer": None, "token_endpoint": None}, "issuer"),
        ({"issuer": "as.example"}, "absolute"),
        ({"client_id": ""}, "client_id"),
        ({"scopes": ["read write"]}, "scope"),
        ({"scopes": ['a"b']}, "scope"),
        ({"resource": "https://api.example/#x"}, "fragment"),
        ({"auth_method": "none"}, "auth_method"),
    ],
)
def test_config_rejects_nonsense(options: dict[str, object], message: str) -> None:
    base: dict[str, object] = {
        "issuer": "https://as.example",
        "token_endpoint": None,
        "client_id": "c",
        "client_secret": "s",
        "scopes": (),
        "resource": None,
        "auth_method": "client_secret_basic",
    }
    with pytest.raises(ValueError, match=message):
        ClientConfig.build(**(base | options))  # type: ignore[arg-type]


def test_scopes_must_be_a_sequence_not_a_string() -> None:
    with pytest.raises(TypeError):
        normalize_scopes("read write")
