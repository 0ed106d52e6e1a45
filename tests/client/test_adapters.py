"""httpx (sync, async), httpx2 and requests adapters, end to end against a real API."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import pytest
import requests

from tests.client.conftest import AsyncManagerFactory, AuthState, ManagerFactory
from tokenward.client import HttpxAuth
from tokenward.client.requests import RequestsAuth


def _payload() -> Iterator[bytes]:
    yield b"pay"
    yield b"load"


def _tokens_used(auth: AuthState) -> list[str | None]:
    return [authorization for authorization, _ in auth.api_calls]


# --- httpx, sync ----------------------------------------------------------------------------


def test_httpx_client_sends_the_token(auth: AuthState, make_manager: ManagerFactory) -> None:
    with make_manager() as manager, httpx.Client(auth=HttpxAuth(manager)) as client:
        first = client.get(f"{auth.issuer}/api/data")
        second = client.get(f"{auth.issuer}/api/data")

    assert (first.status_code, second.status_code) == (200, 200)
    assert _tokens_used(auth) == ["Bearer tok-1", "Bearer tok-1"]
    assert auth.token_requests == 1


def test_httpx_retries_once_with_a_new_token_after_invalid_token(
    auth: AuthState, make_manager: ManagerFactory
) -> None:
    with make_manager() as manager, httpx.Client(auth=HttpxAuth(manager)) as client:
        auth.rejected.add(manager.get_token().access_token)  # e.g. revoked at the server
        response = client.post(f"{auth.issuer}/api/data", content=_payload())

    assert response.status_code == 200
    assert response.json() == {"token": "tok-2", "body": "payload"}
    assert [response.status_code for response in response.history] == [401]
    assert _tokens_used(auth) == ["Bearer tok-1", "Bearer tok-2"]
    assert [body for _, body in auth.api_calls] == [b"payload", b"payload"]


def test_httpx_does_not_retry_a_403(auth: AuthState, make_manager: ManagerFactory) -> None:
    with make_manager() as manager, httpx.Client(auth=HttpxAuth(manager)) as client:
        auth.forbidden.add(manager.get_token().access_token)
        response = client.get(f"{auth.issuer}/api/data")

    assert response.status_code == 403
    assert len(auth.api_calls) == 1
    assert auth.token_requests == 1


def test_httpx_retries_only_once(auth: AuthState, make_manager: ManagerFactory) -> None:
    auth.reject_all = True
    with make_manager() as manager, httpx.Client(auth=HttpxAuth(manager)) as client:
        response = client.get(f"{auth.issuer}/api/data")

    assert response.status_code == 401
    assert _tokens_used(auth) == ["Bearer tok-1", "Bearer tok-2"]
    assert auth.token_requests == 2


def test_httpx_auth_picks_scopes_and_resource(
    auth: AuthState, make_manager: ManagerFactory
) -> None:
    with make_manager() as manager:
        auth_for_billing = HttpxAuth(manager, scopes=["bill"], resource="https://billing.example/")
        with httpx.Client(auth=auth_for_billing) as client:
            client.get(f"{auth.issuer}/api/data")

    (call,) = auth.token_calls
    assert call.form["scope"] == ["bill"]
    assert call.form["resource"] == ["https://billing.example/"]


@pytest.mark.anyio
async def test_sync_manager_in_an_async_client_is_refused(
    auth: AuthState, make_manager: ManagerFactory
) -> None:
    with make_manager() as manager:
        async with httpx.AsyncClient(auth=HttpxAuth(manager)) as client:
            with pytest.raises(RuntimeError, match="AsyncTokenManager"):
                await client.get(f"{auth.issuer}/api/data")
    assert auth.api_calls == []


# --- httpx, async ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_httpx_async_client_retries_once_after_invalid_token(
    auth: AuthState, make_async_manager: AsyncManagerFactory
) -> None:
    async with (
        make_async_manager() as manager,
        httpx.AsyncClient(auth=HttpxAuth(manager)) as client,
    ):
        ok = await client.get(f"{auth.issuer}/api/data")
        auth.rejected.add("tok-1")
        retried = await client.get(f"{auth.issuer}/api/data")

    assert (ok.status_code, retried.status_code) == (200, 200)
    assert _tokens_used(auth) == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]


@pytest.mark.anyio
async def test_httpx_async_client_gives_up_after_one_retry_and_skips_403(
    auth: AuthState, make_async_manager: AsyncManagerFactory
) -> None:
    async with (
        make_async_manager() as manager,
        httpx.AsyncClient(auth=HttpxAuth(manager)) as client,
    ):
        auth.forbidden.add((await manager.get_token()).access_token)
        forbidden = await client.get(f"{auth.issuer}/api/data")
        auth.reject_all = True
        refused = await client.get(f"{auth.issuer}/api/data")

    assert (forbidden.status_code, refused.status_code) == (403, 401)
    assert _tokens_used(auth) == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]


@pytest.mark.anyio
async def test_async_manager_in_a_sync_client_is_refused(
    auth: AuthState, make_async_manager: AsyncManagerFactory
) -> None:
    async with make_async_manager() as manager:
        with (
            httpx.Client(auth=HttpxAuth(manager)) as client,
            pytest.raises(RuntimeError, match="TokenManager"),
        ):
            client.get(f"{auth.issuer}/api/data")


# --- httpx2 ---------------------------------------------------------------------------------


def test_httpx2_client_retries_once_after_invalid_token(
    auth: AuthState, make_manager: ManagerFactory
) -> None:
    httpx2 = pytest.importorskip("httpx2")
    from tokenward.client.httpx2 import Httpx2Auth

    with make_manager() as manager, httpx2.Client(auth=Httpx2Auth(manager)) as client:
        assert client.get(f"{auth.issuer}/api/data").status_code == 200
        auth.rejected.add("tok-1")
        assert client.post(f"{auth.issuer}/api/data", content=b"x").status_code == 200
        auth.reject_all = True
        assert client.get(f"{auth.issuer}/api/data").status_code == 401

    assert _tokens_used(auth) == [
        "Bearer tok-1",
        "Bearer tok-1",
        "Bearer tok-2",
        "Bearer tok-2",
        "Bearer tok-3",
    ]
    with pytest.raises(TypeError):
        httpx.Client(auth=Httpx2Auth(manager))  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_httpx2_async_client(
    auth: AuthState, make_async_manager: AsyncManagerFactory
) -> None:
    httpx2 = pytest.importorskip("httpx2")
    from tokenward.client.httpx2 import Httpx2Auth

    async with (
        make_async_manager() as manager,
        httpx2.AsyncClient(auth=Httpx2Auth(manager)) as client,
    ):
        auth.rejected.add((await manager.get_token()).access_token)
        response = await client.get(f"{auth.issuer}/api/data")

    assert response.status_code == 200
    assert _tokens_used(auth) == ["Bearer tok-1", "Bearer tok-2"]


# --- requests -------------------------------------------------------------------------------


def test_requests_session_sends_the_token(auth: AuthState, make_manager: ManagerFactory) -> None:
    with make_manager() as manager, requests.Session() as session:
        session.auth = RequestsAuth(manager)
        response = session.get(f"{auth.issuer}/api/data")

    assert response.status_code == 200
    assert _tokens_used(auth) == ["Bearer tok-1"]


def test_requests_retries_once_with_a_new_token_and_replays_the_body(
    auth: AuthState, make_manager: ManagerFactory
) -> None:
    with make_manager() as manager, requests.Session() as session:
        session.auth = RequestsAuth(manager)
        auth.rejected.add(manager.get_token().access_token)
        response = session.post(f"{auth.issuer}/api/data", data=io.BytesIO(b"payload"))

    assert response.status_code == 200
    assert response.json() == {"token": "tok-2", "body": "payload"}
    assert [old.status_code for old in response.history] == [401]
    assert [body for _, body in auth.api_calls] == [b"payload", b"payload"]


def test_requests_does_not_retry_a_403(auth: AuthState, make_manager: ManagerFactory) -> None:
    with make_manager() as manager, requests.Session() as session:
        session.auth = RequestsAuth(manager)
        auth.forbidden.add(manager.get_token().access_token)
        response = session.get(f"{auth.issuer}/api/data")

    assert response.status_code == 403
    assert len(auth.api_calls) == 1


def test_requests_retries_only_once(auth: AuthState, make_manager: ManagerFactory) -> None:
    auth.reject_all = True
    with make_manager() as manager, requests.Session() as session:
        session.auth = RequestsAuth(manager)
        response = session.get(f"{auth.issuer}/api/data")

    assert response.status_code == 401
    assert _tokens_used(auth) == ["Bearer tok-1", "Bearer tok-2"]
    assert auth.token_requests == 2


def test_requests_per_call_auth(auth: AuthState, make_manager: ManagerFactory) -> None:
    with make_manager() as manager:
        response = requests.get(f"{auth.issuer}/api/data", auth=RequestsAuth(manager), timeout=10)

    assert response.json()["token"] == "tok-1"
