"""``admin_api``: the admin REST API as one ASGI app, mounted by ``server/app.py`` at
``{issuer path}/admin/api``.

A FastAPI application (OpenAPI at ``/openapi.json``, interactive docs at ``/docs``) behind the
authentication :class:`~tokenward.server.admin.api.auth.Gate`. Its routes are thin: each parses
its body into a model of ``admin/schemas.py``, calls one :class:`Admin` operation with the
caller as the actor (``api:<client_id>``), and answers with a view of ``admin/views.py``.
"""

from __future__ import annotations

from fastapi import FastAPI, Security

from tokenward import __version__
from tokenward.server.admin.api.apis import api_routes
from tokenward.server.admin.api.audit import audit_routes
from tokenward.server.admin.api.auth import AdminBearer, Gate, TokenCheck
from tokenward.server.admin.api.clients import client_routes
from tokenward.server.admin.api.errors import add_error_handlers, error_responses
from tokenward.server.admin.api.keys import key_routes
from tokenward.server.admin.bootstrap import ADMIN_READ_SCOPE, ADMIN_SCOPE, admin_audience
from tokenward.server.admin.operations import Admin
from tokenward.server.clock import Clock
from tokenward.server.reader import TokenReader

__all__ = ["admin_api"]

DESCRIPTION = """\
Everything the `tokenward` CLI does, over HTTP. Authenticate with an access token of this
server for the audience `{audience}`: scope `tokenward:admin` to read and change,
`tokenward:admin:read` to read. `tokenward init` prints the first admin client's credentials.
"""


def admin_api(*, admin: Admin, reader: TokenReader, issuer: str, clock: Clock) -> Gate:
    audience = admin_audience(issuer)
    app = FastAPI(
        title="tokenward admin API",
        version=__version__,
        description=DESCRIPTION.format(audience=audience),
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        responses=error_responses(400, 401, 403, 411, 413, 422, 503),
    )
    add_error_handlers(app)
    bearer = AdminBearer(token_url=issuer.rstrip("/") + "/token")
    read = Security(bearer, scopes=[ADMIN_READ_SCOPE])
    write = Security(bearer, scopes=[ADMIN_SCOPE])
    for routes in (api_routes, client_routes, key_routes, audit_routes):
        app.include_router(routes(admin, read=read, write=write))
    return Gate(app, TokenCheck(reader, audience=audience, clock=clock))
