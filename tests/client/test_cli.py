"""`token_command`, the body of `tokenward token`, against the loopback server."""

from __future__ import annotations

import json

import pytest

from tests.client.conftest import CLIENT_ID, CLIENT_SECRET, AuthState
from tokenward.client import TokenRequestError
from tokenward.client.cli import token_command


def _run(auth: AuthState, **overrides: object) -> str:
    options: dict[str, object] = {
        "issuer": auth.issuer,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scopes": ["read"],
        "resource": None,
        "auth_method": "client_secret_basic",
        "as_json": False,
    }
    return token_command(**(options | overrides))  # type: ignore[arg-type]


def test_prints_the_access_token(auth: AuthState) -> None:
    assert _run(auth) == "tok-1"


def test_prints_the_token_response_as_json(auth: AuthState) -> None:
    output = _run(
        auth, as_json=True, auth_method="client_secret_post", resource="https://a.example/"
    )

    assert json.loads(output) == {
        "access_token": "tok-1",
        "token_type": "Bearer",
        "expires_in": 3600,
        "scope": "read",
    }
    (call,) = auth.token_calls
    assert call.form["resource"] == ["https://a.example/"]
    assert call.authorization is None


def test_omits_what_the_server_did_not_send(auth: AuthState) -> None:
    auth.expires_in = None
    assert json.loads(_run(auth, as_json=True, scopes=[])) == {
        "access_token": "tok-1",
        "token_type": "Bearer",
    }


def test_raises_the_typed_error(auth: AuthState) -> None:
    with pytest.raises(TokenRequestError) as raised:
        _run(auth, client_secret="wrong")
    assert raised.value.error == "invalid_client"


def test_rejects_an_unknown_auth_method(auth: AuthState) -> None:
    with pytest.raises(ValueError, match="auth_method"):
        _run(auth, auth_method="tls_client_auth")
    assert auth.token_requests == 0
