"""OAuth 2.0 errors as data: one class per wire code (RFC 6749 §5.2, RFC 8707 §2, RFC 7009
§2.2.1, RFC 6749 §4.1.2.1), each rendering its status, JSON body and headers."""

from __future__ import annotations

import pytest

from tokenward.protocol.errors import (
    AccessDenied,
    InvalidClient,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    OAuthError,
    RequestTimeout,
    ServerError,
    SlowDown,
    TemporarilyUnavailable,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedTokenType,
    safe_description,
)

CASES: list[tuple[OAuthError, int, dict[str, str], dict[str, str]]] = [
    (
        InvalidRequest("grant_type is required"),
        400,
        {"error": "invalid_request", "error_description": "grant_type is required"},
        {},
    ),
    (InvalidRequest(), 400, {"error": "invalid_request"}, {}),
    # RFC 6749 §5.2: 401 and a challenge "matching the authentication scheme used by the client"
    (
        InvalidClient(reason="x"),
        401,
        {"error": "invalid_client", "error_description": "client authentication failed"},
        {},
    ),
    (
        InvalidClient(reason="x", basic_realm="tw"),
        401,
        {"error": "invalid_client", "error_description": "client authentication failed"},
        {"WWW-Authenticate": 'Basic realm="tw"'},
    ),
    (
        UnauthorizedClient(),
        400,
        {
            "error": "unauthorized_client",
            "error_description": "client is not allowed to use this grant type",
        },
        {},
    ),
    (
        UnsupportedGrantType(),
        400,
        {
            "error": "unsupported_grant_type",
            "error_description": "only grant_type=client_credentials is supported",
        },
        {},
    ),
    (
        InvalidScope("scope is malformed"),
        400,
        {"error": "invalid_scope", "error_description": "scope is malformed"},
        {},
    ),
    (
        InvalidTarget(),
        400,
        {
            "error": "invalid_target",
            "error_description": "the requested resource is not available to this client",
        },
        {},
    ),
    (
        UnsupportedTokenType("only access tokens"),
        400,
        {"error": "unsupported_token_type", "error_description": "only access tokens"},
        {},
    ),
    (
        AccessDenied("not yours"),
        403,
        {"error": "access_denied", "error_description": "not yours"},
        {},
    ),
    (
        SlowDown(retry_after=7, reason="throttled"),
        429,
        {"error": "slow_down", "error_description": "too many failed attempts, retry later"},
        {"Retry-After": "7"},
    ),
    (
        TemporarilyUnavailable(),
        503,
        {
            "error": "temporarily_unavailable",
            "error_description": "the service is temporarily unavailable",
        },
        {"Retry-After": "1"},
    ),
    (ServerError(), 500, {"error": "server_error", "error_description": "internal error"}, {}),
]


@pytest.mark.parametrize(
    ("error", "status", "body", "headers"), CASES, ids=[type(c[0]).__name__ for c in CASES]
)
def test_wire_form(
    error: OAuthError, status: int, body: dict[str, str], headers: dict[str, str]
) -> None:
    assert (error.status, error.body(), error.headers()) == (status, body, headers)


def test_reason_goes_to_logs_not_to_the_client() -> None:
    error = InvalidClient(reason="secret of client c1 expired")
    assert error.reason == str(error) == "secret of client c1 expired"
    assert "c1" not in str(error.body())
    assert SlowDown(retry_after=1, reason="c1 throttled").reason == "c1 throttled"
    assert InvalidScope("scope is malformed").reason == "scope is malformed"  # the default
    assert InvalidRequest().reason == "invalid_request"


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        ("plain text", "plain text"),
        ('say "hi"\\', "say hi"),  # %x22 and %x5C are outside the allowed set
        ("tab\tnewline\n", "tabnewline"),
        ("caf\u00e9 \U0001f600", "caf "),
        ("~!#[]", "~!#[]"),
    ],
)
def test_error_description_characters(text: str, safe: str) -> None:
    """RFC 6749 §5.2: "Values for the "error_description" parameter MUST NOT include characters
    outside the set %x20-21 / %x23-5B / %x5D-7E."""
    assert safe_description(text) == safe
    assert InvalidRequest(text).body().get("error_description", "") == safe


def test_a_body_not_received_in_time_is_408_and_closes_the_connection() -> None:
    error = RequestTimeout()
    assert (error.status, error.error) == (408, "invalid_request")
    assert error.headers() == {"Connection": "close"}
    assert error.body()["error_description"] == "request body not received in time"
