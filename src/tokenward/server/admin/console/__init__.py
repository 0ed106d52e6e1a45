"""The web console, served under ``{issuer path}/admin`` by ``tokenward serve``.

Server-rendered (Jinja2 templates and one CSS file, packaged here; one small script for the
copy buttons), every page a thin surface over the admin layer: the same ``Admin`` the CLI and
the admin REST API call, with ``actor="console:<operator>"``. See docs/console.md.

The routes are listed one by one rather than mounted under ``/admin``, so that
``/admin/api`` (the admin REST API) stays free, and the token endpoint's raw handler keeps
running in front of all of them (``server/app.py``).
"""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tokenward.server.admin.console.pages import Pages
from tokenward.server.admin.console.web import Handler, Web
from tokenward.server.admin.operations import Admin
from tokenward.server.admin.operators import Operators
from tokenward.server.admin.usage import UsageReports
from tokenward.server.settings import Settings

__all__ = ["console_routes"]

_STATIC = {"console.css": "text/css", "console.js": "text/javascript"}


def _static(path: str, name: str) -> Route:
    body = resources.files(__package__).joinpath("static", name).read_bytes()
    headers = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}

    async def serve(request: Request) -> Response:
        return Response(body, media_type=_STATIC[name], headers=headers)

    return Route(f"{path}/static/{name}", serve, methods=["GET"])


def console_routes(
    settings: Settings, *, admin: Admin, operators: Operators, usage: UsageReports
) -> list[BaseRoute]:
    """Every console route, each path under ``{issuer path}/admin``."""
    web = Web(settings, operators)
    pages = Pages(web, admin=admin, operators=operators, usage=usage)
    routes: list[BaseRoute] = []

    def see(path: str, handler: Handler) -> None:
        routes.append(Route(web.base + path, web.guard(handler, change=False), methods=["GET"]))

    def change(path: str, handler: Handler) -> None:
        routes.append(Route(web.base + path, web.guard(handler, change=True), methods=["POST"]))

    routes.append(Route(web.base + "/login", pages.login_form, methods=["GET"]))
    routes.append(Route(web.base + "/login", pages.login, methods=["POST"]))
    routes.append(
        Route(web.base + "/logout", web.guard(pages.logout, change=False), methods=["POST"])
    )
    for path in ("", "/"):
        see(path, pages.overview)
    see("/apis", pages.apis)
    see("/apis/new", pages.api_new)
    change("/apis/new", pages.api_create)
    see("/apis/edit", pages.api_edit)
    change("/apis/edit", pages.api_update)
    see("/clients", pages.clients)
    see("/clients/new", pages.client_new)
    change("/clients/new", pages.client_create)
    client = "/clients/{client_id}"
    see(client, pages.client)
    change(client + "/scopes", pages.scopes_update)
    change(client + "/secrets", pages.secret_add)
    change(client + "/rotate", pages.secret_rotate)
    change(client + "/secrets/{secret_id}/revoke", pages.secret_revoke)
    for action in ("disable", "enable", "delete"):
        see(f"{client}/{action}", pages.client_confirm)
        change(f"{client}/{action}", pages.client_act)
    see("/keys", pages.keys)
    change("/keys/rotate", pages.key_rotate)
    see("/audit", pages.audit)
    see("/operators", pages.operators_page)
    for action in ("unlock", "disable", "enable"):
        change(f"/operators/{{name}}/{action}", pages.operator_act)
    routes.extend(_static(web.base, name) for name in _STATIC)
    return routes
