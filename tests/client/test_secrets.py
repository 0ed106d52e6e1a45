"""The client secret and access tokens never show in a repr, a message or a log line."""

from __future__ import annotations

import logging
import pickle

import pytest

from tests.client.conftest import (
    CLIENT_SECRET,
    AuthState,
    Failure,
    ManagerFactory,
    Spawned,
)
from tests.support.clock import FakeClock
from tokenward.client import (
    HttpxAuth,
    TokenEndpointUnavailable,
    TokenError,
    TokenRequestError,
)
from tokenward.client._config import Secret
from tokenward.client.requests import RequestsAuth


def test_reprs_hide_the_secret_and_the_token(auth: AuthState, make_manager: ManagerFactory) -> None:
    with make_manager() as manager:
        token = manager.get_token()
        shown = " ".join(
            [
                repr(manager),
                str(manager),
                repr(token),
                repr(HttpxAuth(manager)),
                repr(RequestsAuth(manager)),
            ]
        )
        shown += repr(vars(manager))

    assert "svc-reporting" in shown  # the client id is fine to show
    assert CLIENT_SECRET not in shown
    assert token.access_token not in shown
    assert repr(Secret(CLIENT_SECRET)) == str(Secret(CLIENT_SECRET)) == "Secret('**********')"


def test_errors_and_logs_never_carry_the_secret_or_a_token(
    auth: AuthState,
    make_manager: ManagerFactory,
    clock: FakeClock,
    spawned: Spawned,
    dead_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[TokenError] = []
    with make_manager(auth_method="client_secret_post") as manager:
        token = manager.get_token()
        auth.fail_always = Failure(500)
        clock.advance(token.refresh_at - token.obtained_at)
        manager.get_token()
        spawned.run_sync()  # background renewal fails with warnings
        clock.advance(token.expires_at - clock.now)
        with pytest.raises(TokenEndpointUnavailable) as unavailable:
            manager.get_token()
        errors.append(unavailable.value)

        # A server that echoes the secret back in its error description
        auth.fail_always = Failure(401, "invalid_client", f"secret {CLIENT_SECRET} unknown")
        with pytest.raises(TokenRequestError) as refused:
            manager.get_token()
        errors.append(refused.value)

    with make_manager(issuer=None, token_endpoint=f"{dead_url}/t") as manager:
        with pytest.raises(TokenEndpointUnavailable) as unreachable:
            manager.get_token()
        errors.append(unreachable.value)

    text = caplog.text + " ".join(f"{error!s} {error!r}" for error in errors)
    assert "retrying" in caplog.text
    assert "background token renewal failed" in caplog.text
    assert CLIENT_SECRET not in text
    for issued in auth.issued:
        assert issued not in text


def test_typed_errors_survive_pickling() -> None:
    error = TokenEndpointUnavailable(error="temporarily_unavailable", status=503, description="x")
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own object
    assert type(copy) is TokenEndpointUnavailable
    assert (copy.error, copy.status, copy.description) == ("temporarily_unavailable", 503, "x")
    assert str(copy) == "temporarily_unavailable (HTTP 503): x"
