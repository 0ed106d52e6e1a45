"""The console over HTTP, in process (the browser suite is tests/e2e/test_console_browser.py):
session cookie flags, security headers, CSRF on every POST, the read-only role on every change,
the sign-in double-submit token, lockout and its ways back, sessions that end, the usage
statistics behind the overview, and the admin layer's audit trail naming the operator."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from starlette.routing import Route

from tests.server.harness import InProcess, in_process, make_settings
from tests.support.clock import FakeClock
from tokenward.server.admin.console import console_routes
from tokenward.server.admin.schemas import (
    ApiCreate,
    ClientCreate,
    ClientUpdate,
    OperatorCreate,
    PasswordReset,
    SecretCreate,
)
from tokenward.server.stores import AuditQuery
from tokenward.server.usage import UNKNOWN_CLIENT

pytestmark = pytest.mark.anyio

PASSWORD = "correct horse battery staple"
SIGN_IN_REFUSED = "Sign-in refused: wrong name or password"


@pytest.fixture
async def tw(tmp_path: Path) -> AsyncIterator[InProcess]:
    async with in_process(make_settings(tmp_path), loops=False) as running:
        ops = running.server.operators
        for name, role in (("alice", "admin"), ("rita", "read-only")):
            spec = OperatorCreate(name=name, role=role, password=SecretStr(PASSWORD))
            await ops.create(spec, actor="test")
        admin = running.admin
        await admin.create_api(
            ApiCreate(identifier="https://api.example", name="Ex", scopes=["read"]), actor="test"
        )
        client = ClientCreate(name="billing", client_id="billing", scopes=["read"])
        await admin.create_client(client, actor="test")
        yield running


async def login_token(http: httpx.AsyncClient) -> str:
    page = await http.get("/admin/login")
    assert page.status_code == 200
    found = re.search(r'name="login_token" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


async def sign_in(
    http: httpx.AsyncClient, name: str, password: str = PASSWORD, **extra: str
) -> httpx.Response:
    """Sign in afresh (a signed-in browser is sent from the sign-in page to the overview)."""
    http.cookies.clear()
    token = await login_token(http)
    return await http.post(
        "/admin/login", data={"login_token": token, "name": name, "password": password, **extra}
    )


async def csrf_of(http: httpx.AsyncClient) -> str:
    page = await http.get("/admin/")
    found = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert found is not None, page.text[:500]
    return found.group(1)


async def audit_events(tw: InProcess) -> list[tuple[str, str]]:
    rows = await tw.admin.list_audit(AuditQuery(limit=1000))
    return [(e.event, e.actor) for e in rows]


def post_routes(tw: InProcess) -> list[str]:
    """Every POST path of the console, with real ids for its parameters."""
    routes = console_routes(
        tw.settings, admin=tw.admin, operators=tw.server.operators, usage=tw.server.usage
    )
    values = {"client_id": "billing", "secret_id": "sec_0", "name": "alice"}
    paths = []
    for route in routes:
        assert isinstance(route, Route)
        if route.methods and "POST" in route.methods and not route.path.endswith("/login"):
            paths.append(route.path.format(**values))
    return paths


async def test_sign_in_sets_a_hardened_session_cookie(tw: InProcess) -> None:
    response = await sign_in(tw.http, "alice")
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/"
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("tokenward_console=")
    )
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=lax", "secure", "path=/admin"} <= attributes
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    assert len(value) >= 43  # 256 random bits, base64url
    overview = await tw.http.get("/admin/")
    assert overview.status_code == 200
    assert "alice" in overview.text


async def test_an_http_issuer_on_loopback_gets_no_secure_flag(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, issuer="http://127.0.0.1:8000")
    async with in_process(settings, loops=False) as local:
        spec = OperatorCreate(name="alice", password=SecretStr(PASSWORD))
        await local.server.operators.create(spec, actor="test")
        response = await sign_in(local.http, "alice")
        cookie = response.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "secure" not in cookie


async def test_every_console_page_carries_the_security_headers(tw: InProcess) -> None:
    await sign_in(tw.http, "alice")
    for path in ("/admin/login", "/admin/", "/admin/clients", "/admin/clients/billing"):
        response = await tw.http.get(path, follow_redirects=True)
        assert response.status_code == 200, path
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
    css = await tw.http.get("/admin/static/console.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")


async def test_every_post_without_its_csrf_token_is_refused(tw: InProcess) -> None:
    await sign_in(tw.http, "alice")
    before = await audit_events(tw)
    paths = post_routes(tw)
    assert len(paths) >= 15
    for path in paths:
        for form in ({}, {"csrf_token": "forged"}):
            response = await tw.http.post(path, data={**form, "name": "x", "grace": "0"})
            assert response.status_code == 403, path
            assert "security token" in response.text
    assert await audit_events(tw) == before
    assert (await tw.admin.get_client("billing")).enabled


async def test_the_client_page_shows_every_setting_of_the_client(tw: InProcess) -> None:
    """Default scopes, public keys, introspection rights and quotas are set by the CLI, the
    API or configuration files; the console shows them on the client's page."""
    await sign_in(tw.http, "rita")
    page = (await tw.http.get("/admin/clients/billing")).text
    assert re.search(r'id="default-scopes">every granted scope<', page)
    for absent in ("public-keys", "introspect-apis", 'id="quota"'):
        assert absent not in page
    change = ClientUpdate(
        default_scopes=[],
        auth_methods=["private_key_jwt"],
        jwks_uri="https://keys.example/jwks.json",
        assertion_alg="ES256",
        introspect_apis=["https://api.example"],
        quota_per_minute=60,
        quota_per_hour=1000,
    )
    await tw.admin.update_client("billing", change, actor="test")
    page = (await tw.http.get("/admin/clients/billing")).text
    assert re.search(r'id="default-scopes">none<', page)
    assert re.search(r'id="public-keys"><code>https://keys.example/jwks.json</code>, ES256<', page)
    assert re.search(r'id="introspect-apis"><code>https://api.example</code>', page)
    assert re.search(r'id="quota">60 tokens a minute, 1000 tokens an hour<', page)


async def test_a_read_only_operator_changes_nothing(tw: InProcess) -> None:
    await sign_in(tw.http, "rita")
    csrf = await csrf_of(tw.http)
    page = await tw.http.get("/admin/clients/billing")
    assert "read-only" in page.text
    assert "Rotate secret" not in page.text  # no change forms are offered
    before = await audit_events(tw)
    changes = [p for p in post_routes(tw) if not p.endswith("/logout")]
    for path in changes:
        response = await tw.http.post(path, data={"csrf_token": csrf, "name": "x", "grace": "0"})
        assert response.status_code == 403, path
        assert "read-only" in response.text
    assert await audit_events(tw) == before
    logout = await tw.http.post("/admin/logout", data={"csrf_token": csrf})
    assert logout.status_code == 303


async def test_the_sign_in_form_needs_its_double_submit_token(tw: InProcess) -> None:
    form = {"name": "alice", "password": PASSWORD}
    response = await tw.http.post("/admin/login", data={**form, "login_token": "x" * 43})
    assert response.status_code == 403
    tw.http.cookies.clear()
    await login_token(tw.http)
    response = await tw.http.post("/admin/login", data={**form, "login_token": "y" * 43})
    assert response.status_code == 403
    assert "tokenward_console" not in {c for c in tw.http.cookies if c != "tokenward_console_login"}


async def test_sign_in_refusals_all_look_the_same(tw: InProcess) -> None:
    await tw.server.operators.disable("rita", actor="test")
    answers = []
    for name, password in (("alice", "wrong password!"), ("nobody", PASSWORD), ("rita", PASSWORD)):
        response = await sign_in(tw.http, name, password)
        assert response.status_code == 401
        message = re.search(r'id="login-error">([^<]+)<', response.text)
        assert message is not None
        answers.append(message.group(1))
    assert len(set(answers)) == 1
    assert answers[0].startswith(SIGN_IN_REFUSED)


async def test_five_wrong_passwords_lock_until_the_period_ends(tw: InProcess) -> None:
    for _ in range(5):
        assert (await sign_in(tw.http, "alice", "wrong password!")).status_code == 401
    refused = await sign_in(tw.http, "alice")  # the right password, while locked
    assert refused.status_code == 401
    events = await audit_events(tw)
    assert events.count(("operator.login_failed", "console")) == 5
    assert ("operator.locked", "console") in events
    assert (await tw.server.operators.get("alice")).locked_until is not None
    tw.clock.advance(tw.settings.console_lockout_seconds - 1)
    assert (await sign_in(tw.http, "alice")).status_code == 401
    tw.clock.advance(1)
    assert (await sign_in(tw.http, "alice")).status_code == 303


async def test_an_admin_or_a_password_reset_lifts_a_lock(tw: InProcess) -> None:
    ops = tw.server.operators
    for name in ("alice", "rita"):
        for _ in range(5):
            await sign_in(tw.http, name, "wrong password!")
    await ops.unlock("alice", actor="cli")
    assert (await sign_in(tw.http, "alice")).status_code == 303
    csrf = await csrf_of(tw.http)
    page = await tw.http.get("/admin/operators")
    assert "locked until" in page.text
    unlocked = await tw.http.post("/admin/operators/rita/unlock", data={"csrf_token": csrf})
    assert unlocked.status_code == 303
    assert ("operator.unlocked", "console:alice") in await audit_events(tw)
    assert (await ops.get("rita")).locked_until is None
    for _ in range(5):
        await sign_in(tw.http, "rita", "wrong password!")
    await ops.reset_password(
        "rita", PasswordReset(password=SecretStr("a new long password")), actor="cli"
    )
    assert (await sign_in(tw.http, "rita", "a new long password")).status_code == 303


async def test_disabling_an_operator_or_resetting_the_password_ends_sessions(
    tw: InProcess,
) -> None:
    await sign_in(tw.http, "alice")
    assert (await tw.http.get("/admin/")).status_code == 200
    await tw.server.operators.reset_password(
        "alice", PasswordReset(password=SecretStr("another long password")), actor="cli"
    )
    gone = await tw.http.get("/admin/clients")
    assert gone.status_code == 303
    assert gone.headers["location"] == "/admin/login?next=%2Fadmin%2Fclients"
    await sign_in(tw.http, "alice", "another long password")
    assert (await tw.http.get("/admin/")).status_code == 200
    await tw.server.operators.disable("alice", actor="cli")
    assert (await tw.http.get("/admin/")).status_code == 303


async def test_an_idle_session_ends(tw: InProcess) -> None:
    await sign_in(tw.http, "alice")
    tw.clock.advance(tw.settings.console_session_idle_seconds - 5)
    assert (await tw.http.get("/admin/")).status_code == 200  # use keeps it alive
    tw.clock.advance(tw.settings.console_session_idle_seconds - 5)
    assert (await tw.http.get("/admin/")).status_code == 200
    tw.clock.advance(tw.settings.console_session_idle_seconds)
    assert (await tw.http.get("/admin/")).status_code == 303


async def test_next_never_leaves_the_console(tw: InProcess) -> None:
    for target, expected in (
        ("https://evil.example/", "/admin/"),
        ("//evil.example/admin/", "/admin/"),
        ("/admin/../token", "/admin/../token"),
        ("/admin/clients?q=x", "/admin/clients?q=x"),
    ):
        tw.http.cookies.clear()
        response = await sign_in(tw.http, "alice", next=target)
        assert response.headers["location"] == expected, target


async def test_forms_are_small_and_urlencoded(tw: InProcess) -> None:
    await sign_in(tw.http, "alice")
    csrf = await csrf_of(tw.http)
    as_json = await tw.http.post("/admin/apis/new", json={"csrf_token": csrf})
    assert as_json.status_code == 415
    huge = await tw.http.post("/admin/apis/new", data={"csrf_token": csrf, "name": "x" * 70_000})
    assert huge.status_code == 413


async def test_console_changes_are_audited_with_the_operator(tw: InProcess) -> None:
    await sign_in(tw.http, "alice")
    csrf = await csrf_of(tw.http)
    form: dict[str, Any] = {"csrf_token": csrf, "name": "reports", "client_id": "reports"}
    created = await tw.http.post(
        "/admin/clients/new", data={**form, "scopes": ["read"], "secret_mode": "generate"}
    )
    assert created.status_code == 200
    assert "shown only this once" in created.text
    secret = re.search(r'id="client-secret" value="([^"]+)"', created.text)
    assert secret is not None
    assert (await tw.token(auth=("reports", secret.group(1)))).status_code == 200
    assert secret.group(1) not in (await tw.http.get("/admin/clients/reports")).text
    bad = await tw.http.post(
        "/admin/clients/new", data={**form, "scopes": ["nope"], "secret_mode": "generate"}
    )
    assert bad.status_code == 422
    assert "unknown scope" in bad.text
    disabled = await tw.http.post("/admin/clients/reports/disable", data={"csrf_token": csrf})
    assert disabled.status_code == 303
    assert (await tw.token(auth=("reports", secret.group(1)))).status_code == 401
    events = await audit_events(tw)
    assert ("client.created", "console:alice") in events
    assert ("client.updated", "console:alice") in events
    missing = await tw.http.get("/admin/clients/nobody")
    assert missing.status_code == 404


async def test_token_outcomes_reach_the_overview_off_the_request_path(tw: InProcess) -> None:
    created = await tw.admin.add_secret("billing", SecretCreate(label="test"), actor="test")
    for _ in range(3):
        assert (await tw.token(auth=("billing", created.client_secret))).status_code == 200
    await tw.token(auth=("billing", "wrong"))
    for made_up in ("ghost-1", "ghost-2"):
        await tw.token(auth=(made_up, "wrong"))
    assert (await tw.server.usage.overview()).last_hour.total_issued == 0  # not yet flushed
    await tw.server.audit.flush()
    overview = await tw.server.usage.overview()
    assert overview.last_hour.total_issued == 3
    assert overview.last_hour.total_failed == 3
    assert overview.last_day.total_issued == 3
    assert overview.top_failing == [(UNKNOWN_CLIENT, 2), ("billing", 1)]
    await sign_in(tw.http, "alice")
    page = await tw.http.get("/admin/")
    assert "Last hour, per minute: 3 tokens issued, 3 failures" in page.text
    assert "unregistered client ids" in page.text


async def test_outcomes_are_counted_by_the_servers_clock(tmp_path: Path) -> None:
    """The audit events carry the time of the server's clock, the one the charts end at: with
    the clock two hours behind the wall, a token issued now is in its last hour (stamped by the
    wall clock, it fell outside the chart, as when a test's minute ended mid-test)."""
    clock = FakeClock(time.time() - 7200)
    async with in_process(make_settings(tmp_path), clock=clock, loops=False) as tw:
        spec = ClientCreate(name="billing", client_id="billing", scopes=["read"])
        await tw.admin.create_api(
            ApiCreate(identifier="https://api.example", name="Ex", scopes=["read"]), actor="t"
        )
        await tw.admin.create_client(spec, actor="test")
        created = await tw.admin.add_secret("billing", SecretCreate(label="t"), actor="test")
        assert (await tw.token(auth=("billing", created.client_secret))).status_code == 200
        assert (await tw.token(auth=("billing", "wrong"))).status_code == 401
        await tw.server.audit.flush()
        last_hour = (await tw.server.usage.overview()).last_hour
        assert (last_hour.total_issued, last_hour.total_failed) == (1, 1)
        assert last_hour.issued[-1] == 1  # the clock's current minute


async def test_the_console_can_be_turned_off(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, console_enabled=False)
    async with in_process(settings, loops=False) as off:
        assert (await off.http.get("/admin/login")).status_code == 404


async def test_secrets_and_the_client_lifecycle_through_the_console(tw: InProcess) -> None:
    await sign_in(tw.http, "alice")
    csrf = {"csrf_token": await csrf_of(tw.http)}
    added = await tw.http.post("/admin/clients/billing/secrets", data={**csrf, "label": "ci"})
    assert added.status_code == 200
    value = re.search(r'id="client-secret" value="([^"]+)"', added.text)
    assert value is not None
    assert (await tw.token(auth=("billing", value.group(1)))).status_code == 200
    secret_id = (await tw.admin.get_client("billing")).secrets[-1].id
    revoke = f"/admin/clients/billing/secrets/{secret_id}/revoke"
    later = await tw.http.post(revoke, data={**csrf, "grace": "60"})
    assert later.headers["location"] == "/admin/clients/billing?notice=secret-expiring"
    assert (await tw.token(auth=("billing", value.group(1)))).status_code == 200
    tw.clock.advance(61)
    assert (await tw.token(auth=("billing", value.group(1)))).status_code == 401
    bad_grace = await tw.http.post(revoke, data={**csrf, "grace": "soon"})
    assert bad_grace.status_code == 422
    confirm = await tw.http.get("/admin/clients/billing/delete")
    assert "Delete client billing?" in confirm.text
    assert (await tw.admin.get_client("billing")).client_id == "billing"  # asking changes nothing
    for action in ("disable", "enable"):
        done = await tw.http.post(f"/admin/clients/billing/{action}", data=csrf)
        assert done.headers["location"] == f"/admin/clients/billing?notice=client-{action}d"
    assert (await tw.admin.get_client("billing")).enabled
    deleted = await tw.http.post("/admin/clients/billing/delete", data=csrf)
    assert deleted.headers["location"] == "/admin/clients?notice=client-deleted"
    assert (await tw.http.get("/admin/clients/billing")).status_code == 404
    events = [e for e in await audit_events(tw) if e[1] == "console:alice"]
    for event in ("secret.added", "secret.revoked", "client.updated", "client.deleted"):
        assert (event, "console:alice") in events
    own = await tw.http.post("/admin/operators/alice/disable", data=csrf)
    assert own.status_code == 422
    assert (await tw.server.operators.get("alice")).enabled


async def test_apis_are_created_and_edited_through_the_console(tw: InProcess) -> None:
    await sign_in(tw.http, "alice")
    csrf = {"csrf_token": await csrf_of(tw.http)}
    form = {**csrf, "identifier": "https://orders.example", "name": "Orders", "token_ttl": ""}
    created = await tw.http.post("/admin/apis/new", data={**form, "scopes": "o:read o:write"})
    assert created.headers["location"] == "/admin/apis?notice=api-created"
    again = await tw.http.post("/admin/apis/new", data={**form, "scopes": "o:read"})
    assert again.status_code == 409
    assert 'value="https://orders.example"' in again.text  # the form keeps what was typed
    not_uri = await tw.http.post("/admin/apis/new", data={**form, "identifier": "orders"})
    assert not_uri.status_code == 422
    assert "identifier" in not_uri.text
    edit = "/admin/apis/edit?identifier=https%3A%2F%2Forders.example"
    assert "o:write" in (await tw.http.get(edit)).text
    changes = {**csrf, "name": "Orders v2", "add_scopes": "o:admin", "remove_scopes": "o:write"}
    saved = await tw.http.post(edit, data=changes)
    assert saved.headers["location"] == "/admin/apis?notice=api-updated"
    api = await tw.admin.get_api("https://orders.example")
    assert (api.name, api.scopes) == ("Orders v2", ["o:admin", "o:read"])
    assert ("api.updated", "console:alice") in await audit_events(tw)
    trail = await tw.http.get("/admin/audit", params={"event": "api.updated"})
    assert "changes=<code>add_scopes=o:admin, name=Orders v2, remove_scopes=o:write</code>" in (
        trail.text
    )
