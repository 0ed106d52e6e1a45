"""Thin transports that move the flow's requests over httpx2 or httpx.

httpx2 (the maintained, API-compatible fork) is preferred when installed, else httpx. A caller
can pass its own `httpx.Client`/`httpx2.Client` (or the async ones), e.g. for a private CA:
TLS verification stays on unless that client turns it off (RFC 6749 §10.9).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import Protocol

import httpx

from tokenward.client._wire import HttpRequest, HttpResponse, Reply, TransportFailure


class ResponseLike(Protocol):
    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def content(self) -> bytes: ...


class SyncHTTPClient(Protocol):
    """What we use of `httpx.Client` / `httpx2.Client`."""

    def request(
        self, method: str, url: str, *, headers: Mapping[str, str], content: bytes | None
    ) -> ResponseLike: ...

    def close(self) -> None: ...


class AsyncHTTPClient(Protocol):
    """What we use of `httpx.AsyncClient` / `httpx2.AsyncClient`."""

    async def request(
        self, method: str, url: str, *, headers: Mapping[str, str], content: bytes | None
    ) -> ResponseLike: ...

    async def aclose(self) -> None: ...


def _optional(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


_httpx2 = _optional("httpx2")
_HTTP_MODULE: ModuleType = _httpx2 or httpx
_TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx.TransportError,) + (
    (_httpx2.TransportError,) if _httpx2 else ()
)


def _reply(response: ResponseLike) -> HttpResponse:
    headers = {name.lower(): value for name, value in response.headers.items()}
    return HttpResponse(response.status_code, headers, response.content)


def _failure(exc: Exception) -> TransportFailure:
    return TransportFailure(f"{type(exc).__name__}: {exc}"[:300])


class HttpxTransport:
    def __init__(self, client: SyncHTTPClient | None, *, timeout: float) -> None:
        self._owned = client is None
        self._client: SyncHTTPClient = client or _HTTP_MODULE.Client(timeout=timeout)

    def send(self, request: HttpRequest) -> Reply:
        try:
            response = self._client.request(
                request.method, request.url, headers=request.headers, content=request.body
            )
        except _TRANSPORT_ERRORS as exc:
            return _failure(exc)
        return _reply(response)

    def close(self) -> None:
        if self._owned:
            self._client.close()


class AsyncHttpxTransport:
    def __init__(self, client: AsyncHTTPClient | None, *, timeout: float) -> None:
        self._owned = client is None
        self._client: AsyncHTTPClient = client or _HTTP_MODULE.AsyncClient(timeout=timeout)

    async def send(self, request: HttpRequest) -> Reply:
        try:
            response = await self._client.request(
                request.method, request.url, headers=request.headers, content=request.body
            )
        except _TRANSPORT_ERRORS as exc:
            return _failure(exc)
        return _reply(response)

    async def aclose(self) -> None:
        if self._owned:
            await self._client.aclose()
