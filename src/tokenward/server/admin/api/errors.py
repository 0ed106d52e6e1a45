"""The admin REST API's one error shape, and the handlers that map every refusal onto it.

Every error answer is ``{"error": "<code>", "message": "<safe text>"}``, plus ``details`` (one
entry per refused field) on a validation failure; codes and statuses:

| status | error | when |
|---|---|---|
| 400 | ``invalid_request`` | the body is not JSON, or the admin layer refuses the request |
| 401 | ``unauthorized``, ``invalid_token`` | no bearer token; a token not valid here |
| 403 | ``insufficient_scope`` | the token lacks the scope the route needs (RFC 6750 §3.1) |
| 404 | ``not_found`` | no such API, client, secret, key or route |
| 405 | ``method_not_allowed`` | the route exists, the method does not |
| 409 | ``conflict`` | a duplicate id or scope, a concurrent key rotation, a key still signing |
| 411, 413 | ``length_required``, ``body_too_large`` | a body without a length, or over 64 KiB |
| 422 | ``validation_failed`` | a value of the body, path or query is not acceptable |
| 503 | ``temporarily_unavailable`` | the database cannot be reached to check the token |
| 500 | ``server_error`` | a bug: logged, never described |

A message never contains a value the caller sent (it could be a secret): validation errors name
the field and the rule, never the input.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from tokenward.server.admin.api.auth import SERVER_ERROR, BearerRefused, render_refusal
from tokenward.server.admin.errors import AdminError

__all__ = ["ErrorBody", "FieldError", "add_error_handlers", "error_responses"]

log = logging.getLogger("tokenward.admin.api")
_HTTP_CODES = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed"}


class FieldError(BaseModel):
    #: Where: ``body.token_ttl``, ``query.limit``, ``path.client_id``.
    field: str
    message: str


class ErrorBody(BaseModel):
    error: str
    message: str
    details: list[FieldError] | None = None


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries: these statuses answer with :class:`ErrorBody`."""
    return {status: {"model": ErrorBody, "description": "An error"} for status in statuses}


def _answer(status: int, body: ErrorBody, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse(body.model_dump(exclude_none=True), status, headers=dict(headers or {}))


def _details(errors: Iterable[Mapping[str, Any]]) -> list[FieldError]:
    # Only the location and pydantic's message: never "input", which may hold a secret.
    return [
        FieldError(field=".".join(str(part) for part in item["loc"]), message=str(item["msg"]))
        for item in errors
    ]


async def _admin_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AdminError)
    return _answer(exc.status, ErrorBody(error=exc.code, message=exc.message))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(item["type"] == "json_invalid" for item in errors):
        return _answer(400, ErrorBody(error="invalid_request", message="the body is not JSON"))
    details = _details(errors)
    message = "; ".join(f"{d.field}: {d.message}" for d in details)
    return _answer(422, ErrorBody(error="validation_failed", message=message, details=details))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "invalid_request")
    message = exc.detail if isinstance(exc.detail, str) else code
    return _answer(exc.status_code, ErrorBody(error=code, message=message), exc.headers)


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BearerRefused)
    status, headers, body = render_refusal(exc.error)
    return _answer(status, ErrorBody(**body), headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("admin API request failed", exc_info=exc)
    return _answer(500, ErrorBody(**SERVER_ERROR))


def add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AdminError, _admin_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(BearerRefused, _refused)
    app.add_exception_handler(Exception, _server_error)
