"""`requests` auth for bearer tokens: `session.auth = RequestsAuth(tokens)`.

Attach the cached token; a response hook retries once with a fresh token when the API answers
401 `Bearer error="invalid_token"` (RFC 6750 §3.1). Never on 403, never twice. Needs the
`requests` extra.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import requests
from requests.cookies import extract_cookies_to_jar

from tokenward.client._cache import Token
from tokenward.client._challenge import should_retry_with_new_token
from tokenward.client.manager import TokenManager

__all__ = ["RequestsAuth"]


class RequestsAuth(requests.auth.AuthBase):
    """Bearer auth for `requests`, from a (thread-safe) `TokenManager`.

    `scopes` and `resource` pick the token (default: the manager's).
    """

    def __init__(
        self,
        manager: TokenManager,
        *,
        scopes: Sequence[str] | None = None,
        resource: str | None = None,
    ) -> None:
        self.manager = manager
        self._scopes, self._resource = scopes, resource

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self._token()
        request.headers["Authorization"] = token.authorization
        tell = getattr(request.body, "tell", None)
        position = tell() if tell is not None else None
        request.hooks["response"].append(partial(self._retry_once, token, position))
        return request

    def _token(self) -> Token:
        return self.manager.get_token(scopes=self._scopes, resource=self._resource)

    def _retry_once(
        self, token: Token, position: int | None, response: requests.Response, **send: Any
    ) -> requests.Response:
        challenges = [response.headers.get("www-authenticate", "")]
        if not should_retry_with_new_token(response.status_code, challenges):
            return response
        self.manager.invalidate(token)
        retry = _replayable(response, position)
        retry.headers["Authorization"] = self._token().authorization
        # Sent by the adapter, not the session: response hooks don't run again, so no 2nd retry.
        answer: requests.Response = response.connection.send(retry, **send)
        answer.history.append(response)
        answer.request = retry
        return answer

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.manager!r})"


def _replayable(response: requests.Response, position: int | None) -> requests.PreparedRequest:
    """A copy of the refused request, body rewound and cookies updated (as requests' own
    `HTTPDigestAuth.handle_401` does), after releasing the connection."""
    _ = response.content
    response.close()
    retry = response.request.copy()
    seek = getattr(retry.body, "seek", None)
    if position is not None and seek is not None:
        seek(position)
    jar = retry._cookies  # type: ignore[attr-defined]
    extract_cookies_to_jar(jar, response.request, response.raw)  # type: ignore[no-untyped-call, unused-ignore]
    retry.prepare_cookies(jar)
    return retry
