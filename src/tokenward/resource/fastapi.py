"""FastAPI dependency for bearer tokens — RFC 6750, with OpenAPI's client-credentials flow.

:class:`BearerAuth` is a ``fastapi.security.OAuth2`` scheme whose OpenAPI description is the
``clientCredentials`` flow (token URL and scopes), so the Authorize button of ``/docs`` gets
tokens from the authorization server. Used with ``Security(...)``, it collects the scopes of
the whole dependency chain through ``SecurityScopes`` and requires all of them::

    bearer = BearerAuth(verifier, token_url="https://as.example/token", scopes={"read": "..."})
    add_bearer_error_handler(app)

    @app.get("/items")
    async def items(token: Annotated[AccessToken, Security(bearer, scopes=["read"])]): ...

Refusals raise :class:`BearerHTTPException`, an ``HTTPException`` carrying the status and the
``WWW-Authenticate`` challenge. :func:`add_bearer_error_handler` renders its body as RFC 6750
JSON (``{"error": ...}``); without it FastAPI's default handler still sends the right status
and challenge, with a ``{"detail": ...}`` body.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.openapi.models import OAuthFlowClientCredentials
from fastapi.openapi.models import OAuthFlows as OAuthFlowsModel
from fastapi.responses import Response
from fastapi.security import OAuth2, SecurityScopes
from starlette.exceptions import HTTPException

from tokenward.resource._request import (
    FORM_BODY_LIMIT,
    bearer_credentials,
    has_access_token_param,
    is_form_body,
)
from tokenward.resource.claims import AccessToken
from tokenward.resource.errors import BearerError
from tokenward.resource.verifier import TokenVerifier

__all__ = ["BearerAuth", "BearerHTTPException", "add_bearer_error_handler"]


class BearerHTTPException(HTTPException):
    """A refused request; ``error`` is the :class:`BearerError` with its reason for logs."""

    def __init__(self, error: BearerError, realm: str) -> None:
        status, headers, self.body = error.render(realm)
        wire_headers = {k: v for k, v in headers if k != "content-type"}
        super().__init__(status, detail=error.description, headers=wire_headers)
        self.error = error


async def _form_has_token(request: Request) -> bool:
    if not is_form_body(request.method, request.headers.get("content-type")):
        return False
    length = request.headers.get("content-length", "")
    if not length.isdigit() or int(length) > FORM_BODY_LIMIT:
        return False
    # body() is cached on the request, so the endpoint can still read the body or the form.
    return has_access_token_param(await request.body())


class BearerAuth(OAuth2):
    """Dependency returning the verified :class:`AccessToken`; requires ``SecurityScopes``."""

    def __init__(
        self,
        verifier: TokenVerifier,
        *,
        token_url: str,
        scopes: Mapping[str, str] | None = None,
        realm: str | None = None,
        scheme_name: str | None = None,
        description: str | None = None,
    ) -> None:
        flow = OAuthFlowClientCredentials(tokenUrl=token_url, scopes=dict(scopes or {}))
        super().__init__(
            flows=OAuthFlowsModel(clientCredentials=flow),
            scheme_name=scheme_name,
            description=description,
        )
        self.verifier = verifier
        self.realm = realm or verifier.audience

    # FastAPI injects dependencies by the parameters of __call__, so this signature differs
    # from OAuth2.__call__(request) on purpose: it asks for the chain's SecurityScopes too.
    async def __call__(  # type: ignore[override]
        self, request: Request, security_scopes: SecurityScopes
    ) -> AccessToken:
        try:
            authorization = request.headers.getlist("authorization")
            in_query = in_form = False
            if authorization:
                in_query = "access_token" in request.query_params
                in_form = await _form_has_token(request)
            raw = bearer_credentials(authorization, token_in_query=in_query, token_in_form=in_form)
            token = await self.verifier.verify(raw)
            token.require_scopes(*security_scopes.scopes)
        except BearerError as error:
            raise BearerHTTPException(error, self.realm) from None
        return token


async def bearer_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BearerHTTPException)
    return Response(
        exc.body, status_code=exc.status_code, headers=exc.headers, media_type="application/json"
    )


def add_bearer_error_handler(app: FastAPI) -> None:
    """Render refusals as RFC 6750 JSON bodies (``{"error": ..., "error_description": ...}``)."""
    app.add_exception_handler(BearerHTTPException, bearer_error_handler)
