"""Flask decorator for bearer tokens — RFC 6750.

::

    BearerAuth(verifier, app=app)          # or BearerAuth(verifier).init_app(app)

    @app.get("/items")
    @require_token("read")
    def items():
        return {"client": current_token.client_id}

Verification uses the verifier's blocking path (``verify_sync``), which is thread-safe.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar, cast

from flask import Flask, Response, current_app, g, request
from werkzeug.local import LocalProxy

from tokenward.resource._request import (
    FORM_BODY_LIMIT,
    bearer_credentials,
    has_access_token_param,
    is_form_body,
)
from tokenward.resource.claims import AccessToken
from tokenward.resource.errors import BearerError
from tokenward.resource.verifier import TokenVerifier

__all__ = ["BearerAuth", "current_token", "require_token"]

_EXTENSION = "tokenward.resource"
_P = ParamSpec("_P")
_R = TypeVar("_R")


class BearerAuth:
    """Binds a :class:`TokenVerifier` (and the challenge's ``realm``) to a Flask app."""

    def __init__(
        self, verifier: TokenVerifier, *, app: Flask | None = None, realm: str | None = None
    ) -> None:
        self.verifier = verifier
        self.realm = realm or verifier.audience
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        app.extensions[_EXTENSION] = self

    def authenticate(self, scopes: tuple[str, ...]) -> AccessToken:
        """The current request's token, or a :class:`BearerError`."""
        authorization = request.headers.getlist("Authorization")
        in_query = in_form = False
        if authorization:
            in_query = "access_token" in request.args
            in_form = (
                is_form_body(request.method, request.content_type)
                and (request.content_length or 0) <= FORM_BODY_LIMIT
                and has_access_token_param(request.get_data(cache=True))
            )
        raw = bearer_credentials(authorization, token_in_query=in_query, token_in_form=in_form)
        token = self.verifier.verify_sync(raw)
        token.require_scopes(*scopes)
        return token

    def error_response(self, error: BearerError) -> Response:
        status, headers, body = error.render(self.realm)
        return Response(body, status=status, headers=headers)


def require_token(*scopes: str) -> Callable[[Callable[_P, _R]], Callable[_P, _R | Response]]:
    """Decorate a view: it runs only with a valid token carrying every one of ``scopes``."""

    def decorate(view: Callable[_P, _R]) -> Callable[_P, _R | Response]:
        @functools.wraps(view)
        def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R | Response:
            auth = current_app.extensions.get(_EXTENSION)
            if not isinstance(auth, BearerAuth):
                raise RuntimeError("call BearerAuth(verifier, app=app) before require_token")
            try:
                g.tokenward_token = auth.authenticate(scopes)
            except BearerError as error:
                return auth.error_response(error)
            return view(*args, **kwargs)

        return wrapper

    return decorate


def _current_token() -> AccessToken:
    token = g.get("tokenward_token")
    if not isinstance(token, AccessToken):
        raise RuntimeError("current_token is only set inside a @require_token view")
    return token


#: The verified token of the current request, inside a ``@require_token`` view.
current_token: AccessToken = cast(AccessToken, LocalProxy(_current_token))
