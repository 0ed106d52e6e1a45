"""The console's request plumbing: templates, forms, cookies, the session and CSRF guard, and
the security headers every console response carries.

Every POST is checked, in this order: a live session (else back to sign-in), the session's
CSRF token in the form (else 403; OWASP CSRF Prevention Cheat Sheet, synchronizer token
pattern), and, for a change, the admin role (else 403: a read-only operator changes nothing).
The sign-in form, which has no session yet, uses a double-submit cookie instead.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.datastructures import MultiDict
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from tokenward.server.admin.errors import AdminError
from tokenward.server.admin.operators import Operators, OperatorSession
from tokenward.server.settings import Settings

__all__ = [
    "COOKIE",
    "LOGIN_COOKIE",
    "Ctx",
    "FormError",
    "Handler",
    "Web",
    "read_form",
    "when",
]

COOKIE = "tokenward_console"
LOGIN_COOKIE = "tokenward_console_login"
#: A console form is small: names, scopes, a secret. Anything larger is refused.
MAX_FORM_BYTES = 64 * 1024

#: No inline script or style, no framing, forms post only to this origin.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def when(value: datetime | None) -> str:
    """A view's time for people: ``2026-11-30 12:00 UTC``, or an en dash (U+2013)."""
    return "\u2013" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def detail(value: Any) -> str:
    """An audit event's data value for people: lists space-separated, mappings ``k=v``."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={detail(v)}" for k, v in sorted(value.items()))
    if isinstance(value, list | tuple):
        return " ".join(detail(v) for v in value)
    if isinstance(value, bool) or value is None:
        return str(value).lower() if value is not None else "null"
    return str(value)


class FormError(Exception):
    """A request body the console cannot read (400, 413 or 415)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def read_form(request: Request) -> MultiDict:
    """An ``application/x-www-form-urlencoded`` body, at most 64 KiB (no multipart parser)."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise FormError(415, "forms are posted as application/x-www-form-urlencoded")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                raise FormError(413, "the form is too large")
    except ClientDisconnect:
        raise FormError(400, "the request ended early") from None
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=1000)
    except (UnicodeDecodeError, ValueError):
        raise FormError(400, "the form could not be read") from None
    return MultiDict(pairs)


@dataclass
class Ctx:
    """One signed-in request: the session and, for a POST, the checked form."""

    request: Request
    session: OperatorSession
    form: MultiDict = field(default_factory=MultiDict)

    def field(self, name: str) -> str:
        return str(self.form.get(name, "")).strip()

    def fields(self, name: str) -> list[str]:
        return [str(v).strip() for v in self.form.getlist(name) if str(v).strip()]


Handler = Callable[[Ctx], Awaitable[Response]]


class Web:
    """Rendering and guarding, bound to one server's settings and operators."""

    def __init__(self, settings: Settings, operators: Operators) -> None:
        self.settings = settings
        self.operators = operators
        self.base = urlsplit(settings.issuer).path.rstrip("/") + "/admin"
        self.secure = urlsplit(settings.issuer).scheme == "https"
        self.env = Environment(
            loader=PackageLoader("tokenward.server.admin.console", "templates"),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["when"] = when
        self.env.filters["detail"] = detail
        self.env.globals["base"] = self.base
        self.env.globals["issuer"] = settings.issuer

    # -- responses ----------------------------------------------------------------------------

    def html(
        self, template: str, *, session: OperatorSession | None, status: int = 200, **values: Any
    ) -> Response:
        body = self.env.get_template(template).render(session=session, **values)
        return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)

    def redirect(self, path: str, **query: str) -> Response:
        target = self.base + path + (("?" + urlencode(query)) if query else "")
        return RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)

    def error(
        self, status: int, message: str, *, session: OperatorSession | None = None
    ) -> Response:
        return self.html(
            "error.html", session=session, status=status, status_code=status, message=message
        )

    def set_session_cookie(self, response: Response, value: str) -> None:
        response.set_cookie(
            COOKIE, value, path=self.base, httponly=True, samesite="lax", secure=self.secure
        )

    def clear_session_cookie(self, response: Response) -> None:
        response.delete_cookie(
            COOKIE, path=self.base, httponly=True, samesite="lax", secure=self.secure
        )

    def login_token(self, request: Request) -> tuple[str, bool]:
        """The sign-in form's double-submit value, and whether the cookie must be set."""
        current = request.cookies.get(LOGIN_COOKIE, "")
        if 20 <= len(current) <= 100:
            return current, False
        return secrets.token_urlsafe(32), True

    def set_login_cookie(self, response: Response, value: str) -> None:
        response.set_cookie(
            LOGIN_COOKIE,
            value,
            max_age=3600,
            path=self.base,
            httponly=True,
            samesite="lax",
            secure=self.secure,
        )

    # -- the guard ----------------------------------------------------------------------------

    async def current(self, request: Request) -> OperatorSession | None:
        token = request.cookies.get(COOKIE)
        if not token or len(token) > 100:
            return None
        return await self.operators.session(token)

    def to_login(self, request: Request) -> Response:
        target = request.url.path
        if request.url.query and request.method == "GET":
            target += "?" + request.url.query
        response = self.redirect("/login", next=target)
        self.clear_session_cookie(response)
        return response

    def guard(self, handler: Handler, *, change: bool) -> Callable[[Request], Awaitable[Response]]:
        """Wrap a page: session required; on POST, CSRF checked and (``change``) admin role."""

        async def endpoint(request: Request) -> Response:
            session = await self.current(request)
            if session is None:
                return self.to_login(request)
            ctx = Ctx(request, session)
            if request.method == "POST":
                try:
                    ctx.form = await read_form(request)
                except FormError as exc:
                    return self.error(exc.status, exc.message, session=session)
                refused = self.check_post(ctx, change=change)
                if refused is not None:
                    return refused
            try:
                return await handler(ctx)
            except AdminError as exc:
                return self.error(exc.status, exc.message, session=session)

        return endpoint

    def check_post(self, ctx: Ctx, *, change: bool) -> Response | None:
        sent = str(ctx.form.get("csrf_token", ""))
        if not hmac.compare_digest(sent.encode(), ctx.session.csrf_token.encode()):
            return self.error(
                403,
                "This form is missing its security token or it is out of date. Go back, reload "
                "the page and try again.",
                session=ctx.session,
            )
        if change and not ctx.session.may_change:
            return self.error(
                403, "Your account is read-only: it can see everything and change nothing.",
                session=ctx.session,
            )  # fmt: skip
        return None
