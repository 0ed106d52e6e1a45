"""The auth flow shared by the httpx and httpx2 adapters (RFC 6750 §2.1 and §3.1).

Attach the cached token; on `401` with `Bearer error="invalid_token"`, drop that token, get a
fresh one and send the request once more. Never on 403, never twice.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, MutableMapping, Sequence
from typing import Generic, Protocol, TypeVar

from tokenward.client._cache import Token
from tokenward.client._challenge import should_retry_with_new_token
from tokenward.client.manager import AsyncTokenManager, TokenManager


class _Request(Protocol):
    @property
    def headers(self) -> MutableMapping[str, str]: ...
    def read(self) -> bytes: ...
    async def aread(self) -> bytes: ...


class _Headers(Protocol):
    def get_list(self, key: str, split_commas: bool = False) -> list[str]: ...


class _Response(Protocol):
    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> _Headers: ...


Req = TypeVar("Req", bound=_Request)
Resp = TypeVar("Resp", bound=_Response)


class BearerFlows(Generic[Req, Resp]):
    # The body is read up front so that the one retry can send it again (streams included).
    requires_request_body = True

    def __init__(
        self,
        manager: TokenManager | AsyncTokenManager,
        *,
        scopes: Sequence[str] | None = None,
        resource: str | None = None,
    ) -> None:
        self.manager = manager
        self._scopes, self._resource = scopes, resource

    def sync_auth_flow(self, request: Req) -> Generator[Req, Resp, None]:
        manager = self.manager
        if not isinstance(manager, TokenManager):
            raise RuntimeError("an AsyncTokenManager needs an async client; use a TokenManager")
        request.read()
        token = manager.get_token(scopes=self._scopes, resource=self._resource)
        response = yield _authorize(request, token)
        if _rejected(response):
            manager.invalidate(token)
            yield _authorize(
                request, manager.get_token(scopes=self._scopes, resource=self._resource)
            )

    async def async_auth_flow(self, request: Req) -> AsyncGenerator[Req, Resp]:
        manager = self.manager
        if not isinstance(manager, AsyncTokenManager):
            raise RuntimeError("a TokenManager blocks the event loop; use an AsyncTokenManager")
        await request.aread()
        token = await manager.get_token(scopes=self._scopes, resource=self._resource)
        response = yield _authorize(request, token)
        if _rejected(response):
            manager.invalidate(token)
            token = await manager.get_token(scopes=self._scopes, resource=self._resource)
            yield _authorize(request, token)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.manager!r})"


def _authorize(request: Req, token: Token) -> Req:
    request.headers["Authorization"] = token.authorization
    return request


def _rejected(response: _Response) -> bool:
    return should_retry_with_new_token(
        response.status_code, response.headers.get_list("www-authenticate")
    )
