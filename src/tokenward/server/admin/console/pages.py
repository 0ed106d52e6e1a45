"""The console's pages. Each handler reads a form into a typed admin input
(``admin/schemas.py``), calls one method of the admin layer with ``actor="console:<name>"``,
and renders a view (``admin/views.py``); nothing here touches storage."""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote_plus

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from tokenward.server.admin.console.charts import bar_chart
from tokenward.server.admin.console.web import LOGIN_COOKIE, Ctx, FormError, Web, read_form
from tokenward.server.admin.errors import AdminError, Invalid, NotFound
from tokenward.server.admin.operations import Admin
from tokenward.server.admin.operators import LoginRefused, Operators
from tokenward.server.admin.schemas import (
    ApiCreate,
    ApiUpdate,
    ClientCreate,
    ClientUpdate,
    KeyRotate,
    SecretCreate,
    SecretRevoke,
    describe,
)
from tokenward.server.admin.usage import UsageReports
from tokenward.server.admin.views import ClientView, NewSecretView
from tokenward.server.stores import AuditQuery

__all__ = ["Pages"]

M = TypeVar("M", bound=BaseModel)
#: Short outcome messages a redirect may name (``?notice=``); nothing else is ever shown.
NOTICES = {
    "api-created": "API created.",
    "api-updated": "API updated.",
    "scopes-updated": "Granted scopes updated.",
    "secret-revoked": "Secret revoked.",
    "secret-expiring": "Secret revoked: it keeps working until its grace period ends.",
    "client-disabled": "Client disabled: its token requests now fail, and its tokens are revoked.",
    "client-enabled": "Client enabled.",
    "client-deleted": "Client deleted.",
    "key-rotated": "New signing key published.",
    "operator-unlocked": "Operator unlocked.",
    "operator-disabled": "Operator disabled; their sessions have ended.",
    "operator-enabled": "Operator enabled.",
}
#: What each confirmation page asks, and the button that confirms it.
CONFIRM = {
    "disable": ("Disable client {}?", "Its token requests fail from now on and every token it "
                "holds is revoked. You can enable it again.", "Disable client"),
    "enable": ("Enable client {}?", "It can get tokens again with its current secrets.",
               "Enable client"),
    "delete": ("Delete client {}?", "Its secrets and settings are removed for good. This "
               "cannot be undone.", "Delete client"),
}  # fmt: skip
PAGE_SIZE = 50


def typed(model: type[M], **values: Any) -> M:
    """A typed admin input from form values; ``Invalid`` names the refused fields."""
    try:
        return model(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        raise Invalid(describe(exc)) from None


def optional_int(value: str, what: str) -> int | None:
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise Invalid(f"{what}: a whole number of seconds") from None


def curl_command(token_endpoint: str, client: ClientView, secret: str, scopes: list[str]) -> str:
    """A ready-to-run token request for this server (RFC 6749 §4.4.2, §2.3.1)."""
    parts = ["curl", "-sS", token_endpoint]
    if "client_secret_basic" in client.auth_methods:
        # RFC 6749 §2.3.1: id and secret are form-urlencoded before the Basic encoding.
        parts += ["-u", f"{quote_plus(client.client_id)}:{quote_plus(secret)}"]
    else:
        parts += ["--data-urlencode", f"client_id={client.client_id}"]
        parts += ["--data-urlencode", f"client_secret={secret}"]
    parts += ["-d", "grant_type=client_credentials"]
    if scopes:
        parts += ["--data-urlencode", "scope=" + " ".join(scopes)]
    return " ".join(shlex.quote(p) for p in parts)


def parse_time(value: str, what: str) -> int | None:
    """``YYYY-MM-DDTHH:MM`` (a datetime-local input), read as UTC."""
    if not value:
        return None
    try:
        return int(datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp())
    except ValueError:
        raise Invalid(f"{what}: a date and time such as 2026-01-31T12:00") from None


class Pages:
    def __init__(
        self, web: Web, *, admin: Admin, operators: Operators, usage: UsageReports
    ) -> None:
        self.web = web
        self.admin = admin
        self.operators = operators
        self.usage = usage
        self.token_endpoint = web.settings.issuer + "/token"

    def html(self, ctx: Ctx, template: str, *, status: int = 200, **values: Any) -> Response:
        notice = NOTICES.get(ctx.request.query_params.get("notice", ""))
        return self.web.html(template, session=ctx.session, status=status, notice=notice, **values)

    # -- sign-in ------------------------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        if await self.web.current(request) is not None:
            return self.web.redirect("/")
        return self.login_page(request, status=200, error=None)

    def login_page(self, request: Request, *, status: int, error: str | None) -> Response:
        token, fresh = self.web.login_token(request)
        response = self.web.html(
            "login.html",
            session=None,
            status=status,
            error=error,
            login_token=token,
            next=self.safe_next(request.query_params.get("next", "")),
        )
        if fresh:
            self.web.set_login_cookie(response, token)
        return response

    def safe_next(self, target: str) -> str:
        """Only a console path of this server (no open redirect)."""
        base = self.web.base
        inside = target == base or target.startswith(base + "/")
        return target if inside and "//" not in target and "\\" not in target else base + "/"

    async def login(self, request: Request) -> Response:
        try:
            form = await read_form(request)
        except FormError as exc:
            return self.web.error(exc.status, exc.message)
        sent = str(form.get("login_token", ""))
        cookie = request.cookies.get(LOGIN_COOKIE, "")
        if not cookie or sent != cookie:
            return self.web.error(
                403, "The sign-in form is out of date or was not sent by this console. Reload "
                "the sign-in page and try again."
            )  # fmt: skip
        source = request.client.host if request.client else "-"
        try:
            token, _ = await self.operators.login(
                str(form.get("name", "")), str(form.get("password", "")), source=source
            )
        except LoginRefused:
            message = (
                "Sign-in refused: wrong name or password, or the account is disabled or locked "
                "after repeated failures. An admin can unlock it."
            )
            return self.login_page(request, status=401, error=message)
        response = self.web.redirect("")
        response.headers["location"] = self.safe_next(str(form.get("next", "")))
        self.web.set_session_cookie(response, token)
        response.delete_cookie(LOGIN_COOKIE, path=self.web.base)
        return response

    async def logout(self, ctx: Ctx) -> Response:
        await self.operators.logout(ctx.session)
        response = self.web.redirect("/login")
        self.web.clear_session_cookie(response)
        return response

    # -- overview -----------------------------------------------------------------------------

    async def overview(self, ctx: Ctx) -> Response:
        report = await self.usage.overview()
        clients = await self.admin.list_clients()
        return self.html(
            ctx,
            "overview.html",
            report=report,
            hour_chart=bar_chart(report.last_hour, caption="Last hour, per minute"),
            day_chart=bar_chart(report.last_day, caption="Last 24 hours, per hour"),
            apis=len(await self.admin.list_apis()),
            clients=len(clients),
            disabled=sum(not c.enabled for c in clients),
            keys=await self.admin.list_keys(),
        )

    # -- APIs ---------------------------------------------------------------------------------

    async def apis(self, ctx: Ctx) -> Response:
        return self.html(ctx, "apis.html", apis=await self.admin.list_apis())

    async def api_new(self, ctx: Ctx) -> Response:
        return self.html(ctx, "api_new.html", values={}, error=None)

    async def api_create(self, ctx: Ctx) -> Response:
        values = {k: ctx.field(k) for k in ("identifier", "name", "scopes", "token_ttl")}
        values |= {k: ctx.field(k) for k in ("token_format", "signing_alg")}
        try:
            spec = typed(
                ApiCreate,
                identifier=values["identifier"],
                name=values["name"],
                scopes=values["scopes"].split(),
                token_ttl=optional_int(values["token_ttl"], "token lifetime"),
                token_format=values["token_format"] or None,
                signing_alg=values["signing_alg"] or None,
            )
            await self.admin.create_api(spec, actor=ctx.session.actor)
        except AdminError as exc:
            return self.html(
                ctx, "api_new.html", status=exc.status, values=values, error=exc.message
            )
        return self.web.redirect("/apis", notice="api-created")

    async def api_edit(self, ctx: Ctx) -> Response:
        identifier = ctx.request.query_params.get("identifier", "")
        api = await self.admin.get_api(identifier)
        return self.html(ctx, "api_edit.html", api=api, error=None)

    async def api_update(self, ctx: Ctx) -> Response:
        identifier = ctx.request.query_params.get("identifier", "")
        api = await self.admin.get_api(identifier)
        try:
            changes = typed(
                ApiUpdate,
                name=ctx.field("name") or None,
                add_scopes=ctx.field("add_scopes").split(),
                remove_scopes=ctx.fields("remove_scopes"),
                token_ttl=optional_int(ctx.field("token_ttl"), "token lifetime"),
                token_format=ctx.field("token_format") or None,
            )
            await self.admin.update_api(identifier, changes, actor=ctx.session.actor)
        except AdminError as exc:
            return self.html(ctx, "api_edit.html", status=exc.status, api=api, error=exc.message)
        return self.web.redirect("/apis", notice="api-updated")

    # -- clients ------------------------------------------------------------------------------

    async def clients(self, ctx: Ctx) -> Response:
        query = ctx.request.query_params.get("q", "").strip()
        clients = await self.admin.list_clients()
        if query:
            needle = query.lower()
            clients = [
                c
                for c in clients
                if needle in c.client_id.lower()
                or needle in c.name.lower()
                or any(needle in s.lower() for s in c.scopes)
            ]
        return self.html(ctx, "clients.html", clients=clients, q=query)

    async def client_new(self, ctx: Ctx) -> Response:
        return self.html(
            ctx, "client_new.html", apis=await self.admin.list_apis(), values={}, error=None
        )

    async def client_create(self, ctx: Ctx) -> Response:
        values = {k: ctx.field(k) for k in ("name", "client_id", "secret_mode")}
        scopes = ctx.fields("scopes")
        chosen = ctx.form.get("secret", "") if values["secret_mode"] == "set" else None
        try:
            spec = typed(
                ClientCreate,
                name=values["name"],
                client_id=values["client_id"] or None,
                scopes=scopes,
                secret=chosen,
            )
            created = await self.admin.create_client(spec, actor=ctx.session.actor)
        except AdminError as exc:
            return self.html(
                ctx,
                "client_new.html",
                status=exc.status,
                apis=await self.admin.list_apis(),
                values=values | {"scopes": scopes},
                error=exc.message,
            )
        assert created.secret is not None
        return self.secret_once(ctx, created.client, created.secret, created=True)

    def secret_once(
        self, ctx: Ctx, client: ClientView, secret: NewSecretView, *, created: bool
    ) -> Response:
        """The one page that shows a secret; never cached, never shown again."""
        return self.html(
            ctx,
            "secret_once.html",
            client=client,
            secret=secret,
            created=created,
            curl=curl_command(self.token_endpoint, client, secret.client_secret, client.scopes),
        )

    async def client(self, ctx: Ctx) -> Response:
        client = await self.admin.get_client(ctx.request.path_params["client_id"])
        return await self.client_page(ctx, client, status=200, error=None)

    async def client_page(
        self, ctx: Ctx, client: ClientView, *, status: int, error: str | None
    ) -> Response:
        activity = await self.admin.list_audit(AuditQuery(limit=20, client_id=client.client_id))
        day = await self.usage.client_day(client.client_id)
        return self.html(
            ctx,
            "client.html",
            status=status,
            error=error,
            client=client,
            apis=await self.admin.list_apis(),
            activity=activity,
            day=day,
            day_chart=bar_chart(day, caption="Last 24 hours, per hour"),
            now=datetime.now(UTC),
        )

    async def _client_change(self, ctx: Ctx, change: Callable[[str], Any], notice: str) -> Response:
        client_id = ctx.request.path_params["client_id"]
        try:
            await change(client_id)
        except NotFound:
            raise
        except AdminError as exc:
            client = await self.admin.get_client(client_id)
            return await self.client_page(ctx, client, status=exc.status, error=exc.message)
        return self.web.redirect(f"/clients/{client_id}", notice=notice)

    async def scopes_update(self, ctx: Ctx) -> Response:
        changes = typed(ClientUpdate, scopes=ctx.fields("scopes"))
        actor = ctx.session.actor
        return await self._client_change(
            ctx, lambda cid: self.admin.update_client(cid, changes, actor=actor), "scopes-updated"
        )

    async def secret_add(self, ctx: Ctx) -> Response:
        client_id = ctx.request.path_params["client_id"]
        spec = typed(SecretCreate, label=ctx.field("label"))
        secret = await self.admin.add_secret(client_id, spec, actor=ctx.session.actor)
        client = await self.admin.get_client(client_id)
        return self.secret_once(ctx, client, secret, created=False)

    async def secret_rotate(self, ctx: Ctx) -> Response:
        """A new secret now; every current one keeps working for the grace period, then
        stops (rotation with overlap)."""
        client_id = ctx.request.path_params["client_id"]
        grace = typed(SecretRevoke, grace=optional_int(ctx.field("grace"), "grace") or 0)
        old = await self.admin.get_client(client_id)
        secret = await self.admin.add_secret(
            client_id, SecretCreate(label="rotated"), actor=ctx.session.actor
        )
        limit = time.time() + grace.grace
        for current in old.secrets:
            if current.expires_at is None or current.expires_at.timestamp() > limit:
                await self.admin.revoke_secret(
                    client_id, current.id, grace, actor=ctx.session.actor
                )
        client = await self.admin.get_client(client_id)
        return self.secret_once(ctx, client, secret, created=False)

    async def secret_revoke(self, ctx: Ctx) -> Response:
        secret_id = ctx.request.path_params["secret_id"]
        spec = typed(SecretRevoke, grace=optional_int(ctx.field("grace"), "grace") or 0)
        actor = ctx.session.actor
        notice = "secret-expiring" if spec.grace else "secret-revoked"
        return await self._client_change(
            ctx, lambda cid: self.admin.revoke_secret(cid, secret_id, spec, actor=actor), notice
        )

    async def client_confirm(self, ctx: Ctx) -> Response:
        action = ctx.request.url.path.rsplit("/", 1)[1]
        client = await self.admin.get_client(ctx.request.path_params["client_id"])
        question, detail, button = CONFIRM[action]
        return self.html(
            ctx,
            "confirm.html",
            question=question.format(client.client_id),
            detail=detail,
            button=button,
            action=f"/clients/{client.client_id}/{action}",
            back=f"/clients/{client.client_id}",
            danger=action != "enable",
        )

    async def client_act(self, ctx: Ctx) -> Response:
        action = ctx.request.url.path.rsplit("/", 1)[1]
        client_id = ctx.request.path_params["client_id"]
        actor = ctx.session.actor
        if action == "delete":
            await self.admin.delete_client(client_id, actor=actor)
            return self.web.redirect("/clients", notice="client-deleted")
        changes = ClientUpdate(enabled=action == "enable")
        await self.admin.update_client(client_id, changes, actor=actor)
        return self.web.redirect(f"/clients/{client_id}", notice=f"client-{action}d")

    # -- keys, audit, operators ---------------------------------------------------------------

    async def keys(self, ctx: Ctx) -> Response:
        return self.html(ctx, "keys.html", keys=await self.admin.list_keys(), error=None)

    async def key_rotate(self, ctx: Ctx) -> Response:
        try:
            spec = typed(
                KeyRotate,
                alg=ctx.field("alg") or None,
                activate_in=optional_int(ctx.field("activate_in"), "activate in"),
            )
            await self.admin.rotate_key(spec, actor=ctx.session.actor)
        except AdminError as exc:
            keys = await self.admin.list_keys()
            return self.html(ctx, "keys.html", status=exc.status, keys=keys, error=exc.message)
        return self.web.redirect("/keys", notice="key-rotated")

    async def audit(self, ctx: Ctx) -> Response:
        params = ctx.request.query_params
        filters = {k: params.get(k, "").strip() for k in ("client_id", "event", "actor")}
        times = {k: params.get(k, "").strip() for k in ("since", "until")}
        before = params.get("before", "")
        try:
            query = AuditQuery(
                limit=PAGE_SIZE,
                before_id=int(before) if before.isdigit() else None,
                since=parse_time(times["since"], "from"),
                until=parse_time(times["until"], "until"),
                **{k: v or None for k, v in filters.items()},
            )
            events = await self.admin.list_audit(query)
        except AdminError as exc:
            return self.html(
                ctx, "audit.html", status=exc.status, events=[], filters=filters | times,
                error=exc.message, older=None,
            )  # fmt: skip
        older = None
        if len(events) == PAGE_SIZE:
            older = {**{k: v for k, v in (filters | times).items() if v}, "before": events[-1].id}
        return self.html(
            ctx, "audit.html", events=events, filters=filters | times, error=None, older=older
        )

    async def operators_page(self, ctx: Ctx) -> Response:
        operators = await self.operators.list_operators()
        return self.html(ctx, "operators.html", operators=operators)

    async def operator_act(self, ctx: Ctx) -> Response:
        name = ctx.request.path_params["name"]
        action = ctx.request.url.path.rsplit("/", 1)[1]
        actor = ctx.session.actor
        if action == "unlock":
            await self.operators.unlock(name, actor=actor)
        elif action == "disable":
            if name == ctx.session.name:
                raise Invalid("you cannot disable your own account")
            await self.operators.disable(name, actor=actor)
        else:
            await self.operators.enable(name, actor=actor)
        notice = {"unlock": "operator-unlocked", "disable": "operator-disabled"}
        return self.web.redirect("/operators", notice=notice.get(action, "operator-enabled"))
