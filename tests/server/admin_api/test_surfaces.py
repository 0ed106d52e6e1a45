"""The CLI, the admin REST API and the console are three surfaces over one admin layer. Against
one real ``tokenward serve``, a change made through each reads back identically through the
other two: the same view, field for field, from the CLI (``--json``, ``show``) and the API, and
the same values on the console's rendered pages. The audit trail, read through all three, names
who made each change: ``cli``, ``api:<client_id>``, ``console:<operator>``."""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from tests.server.admin_api.support import (
    AdminSite,
    Console,
    HtmlPage,
    add_operator,
    api_path,
    console_session,
)

OPERATOR = "surfaces"
View = dict[str, Any]


# -- what the console must show of a view, and what it does show ------------------------------


def when(value: str | None) -> str | None:
    """A view's JSON time as the console prints it (``2026-11-30 12:00:00 UTC``)."""
    return None if value is None else f"{datetime.fromisoformat(value):%Y-%m-%d %H:%M:%S} UTC"


def shown_value(value: Any) -> str:
    """An audit data value as the console prints it."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={shown_value(v)}" for k, v in sorted(value.items()))
    if isinstance(value, list):
        return " ".join(shown_value(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    return "null" if value is None else str(value)


def page_of(view: View) -> View:
    """What the console must show of a client view: its row in the list, its detail page."""
    ttl, fmt = view["token_ttl"], view["token_format"]
    facts = {
        "Client id": view["client_id"],
        "Authentication": ", ".join(view["auth_methods"]),
        "Token lifetime": f"{ttl} s" if ttl else "the API's or the server's default",
        "Token format": fmt or "the API's",
        "Default scopes": (
            "every granted scope"
            if view["default_scopes"] is None
            else " ".join(view["default_scopes"]) or "none"
        ),
        "Created": when(view["created_at"]),
    }
    if view["jwks_uri"] or view["jwks_keys"] is not None:
        keys = view["jwks_uri"] or f"{view['jwks_keys']} registered"
        alg = view["assertion_alg"]
        facts["Public keys"] = f"{keys}, {alg}" if alg else keys
    if view["introspect_apis"]:
        facts["May introspect"] = " ".join(view["introspect_apis"])
    quotas = [
        f"{view[f'quota_per_{unit}']} tokens {article} {unit}"
        for unit, article in (("minute", "a"), ("hour", "an"))
        if view[f"quota_per_{unit}"]
    ]
    if quotas:
        facts["Issuance quota"] = ", ".join(quotas)
    if view["not_before"]:
        facts["Tokens revoked before"] = when(view["not_before"])
    listed = [view["client_id"], view["name"], "enabled" if view["enabled"] else "disabled",
              " ".join(view["scopes"]) or "\u2013", str(len(view["secrets"]))]  # fmt: skip
    return {
        "listed": listed,
        "title": view["name"] if view["enabled"] else f"{view['name']} disabled",
        "offers": "disable" if view["enabled"] else "enable",
        "facts": facts,
        "scopes": view["scopes"],
        "secrets": [
            [s["id"], s["label"] or "\u2013", when(s["created_at"]),
             when(s["expires_at"]) or "never", when(s["last_used_at"]) or "never"]
            for s in view["secrets"]
        ],
    }  # fmt: skip


def console_page(console: Console, client_id: str) -> tuple[View, HtmlPage]:
    """What the client's detail page and its row in the searched list show, and the page."""
    listed = console.page("/clients", q=client_id).table("Client id", "Name", "State").rows
    page = console.page(f"/clients/{client_id}")
    toggles = [a.rsplit("/", 1)[1] for a in page.links if re.search(r"/(dis|en)able$", a)]
    assert len(toggles) == 1, page.links
    secrets_table = page.table("Id", "Label", "Created", "Expires", "Last used")
    shown = {
        "listed": next((row for row in listed if row[0] == client_id), None),
        "title": page.h1,
        "offers": toggles[0],
        "facts": page.facts,
        "scopes": page.checked("scopes"),
        "secrets": [row[:5] for row in secrets_table.rows],
    }
    return shown, page


def audit_rows(events: list[View]) -> list[list[str | None]]:
    """The audit page's rows for these events (When, Event, By, Details)."""
    return [
        [when(e["at"]), e["event"], e["actor"],
         " ".join(f"{k}={shown_value(v)}" for k, v in sorted(e["data"].items()) if v is not None)]
        for e in events
    ]  # fmt: skip


# -- the walk ---------------------------------------------------------------------------------


@dataclass
class Walk:
    """The three surfaces of one server, and what the walk made: an API with three scopes
    (the CLI defines the first two, the admin API the third) and one client."""

    site: AdminSite
    api: httpx.Client
    console: Console
    identifier: str
    scopes: list[str]
    client_id: str = ""

    def cli_show(self) -> View:
        """``tokenward clients show`` (always JSON)."""
        shown: View = json.loads(self.site.env.cli("clients", "show", self.client_id).stdout)
        return shown

    def api_get(self) -> View:
        response = self.api.get(f"/clients/{self.client_id}")
        assert response.status_code == 200, response.text
        got: View = response.json()
        return got


def through_the_cli(walk: Walk) -> None:
    """The CLI registers a client; the API and the console read it back."""
    made = walk.site.env.cli_json(
        "clients", "create", "--name", "made by cli", "--scope", walk.scopes[0],
        "--token-ttl", "900", "--token-format", "opaque",
    )  # fmt: skip
    walk.client_id = made.pop("client_id")
    for once_only in ("client_secret", "secret_id"):
        assert made.pop(once_only)
    view = walk.api_get()
    assert view == {"client_id": walk.client_id, **made}
    assert (view["scopes"], view["token_ttl"], view["token_format"]) == (
        walk.scopes[:1], 900, "opaque",
    )  # fmt: skip
    shown, _ = console_page(walk.console, walk.client_id)
    assert shown == page_of(view)
    assert shown["facts"]["Token lifetime"] == "900 s"


def through_the_api(walk: Walk) -> None:
    """The API adds a scope to the API, grants the client another, changes its token policy
    and adds it a secret; the CLI and the console read the change back."""
    api, scopes, client = walk.api, walk.scopes, f"/clients/{walk.client_id}"
    before = walk.api_get()
    widened = api.patch(api_path(walk.identifier), json={"add_scopes": [scopes[2]]})
    assert widened.status_code == 200, widened.text
    changes = {"add_scopes": [scopes[1]], "token_ttl": 600, "token_format": "jwt"}
    patched = api.patch(client, json=changes)
    assert patched.status_code == 200, patched.text
    added = api.post(client + "/secrets", json={"label": "added by api"})
    assert added.status_code == 201, added.text
    view = walk.cli_show()
    assert view == walk.api_get()
    assert view != before
    assert patched.json() == {**view, "secrets": view["secrets"][:-1]}
    assert (view["scopes"], view["token_ttl"], view["token_format"]) == (scopes[:2], 600, "jwt")
    assert [s["label"] for s in view["secrets"]] == ["initial", "added by api"]
    shown, page = console_page(walk.console, walk.client_id)
    assert shown == page_of(view)
    assert [s for s in page.values("scopes") if s in scopes] == scopes  # the form offers all


def through_the_console(walk: Walk) -> None:
    """An operator replaces the granted scopes, adds a secret and disables the client, each a
    form posted with the session's CSRF token; the CLI and the API read the change back."""
    console, scopes, client = walk.console, walk.scopes, f"/clients/{walk.client_id}"
    granted = console.post(client + "/scopes", scopes=scopes[1:])
    assert granted.headers["location"] == f"/admin{client}?notice=scopes-updated"
    added = console.post(client + "/secrets", label="added by console")
    assert added.status_code == 200, added.text
    value = re.search(r'id="client-secret" value="([^"]+)"', added.text)
    assert value is not None
    disabled = console.post(client + "/disable")
    assert disabled.headers["location"] == f"/admin{client}?notice=client-disabled"
    view = walk.cli_show()
    assert view == walk.api_get()
    assert (view["scopes"], view["enabled"]) == (scopes[1:], False)
    assert view["not_before"] is not None
    assert [s["label"] for s in view["secrets"]] == ["initial", "added by api", "added by console"]
    shown, page = console_page(console, walk.client_id)
    assert shown == page_of(view)
    leaks = json.dumps(view) + walk.api.get("/audit").text + str(page.tables)
    assert value.group(1) not in leaks  # shown once, on the page that made it


def the_audit_trail(walk: Walk) -> None:
    """Read through each surface, the client's trail is the same and names who acted."""
    site, console = walk.site, walk.console
    events = walk.api.get("/audit", params={"client_id": walk.client_id}).json()["events"]
    assert site.env.cli_json("audit", "list", "--client", walk.client_id) == events
    assert [(e["event"], e["actor"]) for e in events] == [
        ("client.updated", f"console:{OPERATOR}"),  # disabled
        ("secret.added", f"console:{OPERATOR}"),
        ("client.updated", f"console:{OPERATOR}"),  # scopes replaced
        ("secret.added", f"api:{site.client_id}"),
        ("client.updated", f"api:{site.client_id}"),
        ("client.created", "cli"),
    ]
    trail = console.page("/audit", client_id=walk.client_id)
    assert trail.table("When", "Event", "By", "Details").rows == audit_rows(events)
    recent = console_page(console, walk.client_id)[1].table("When", "Event", "By")
    assert recent.rows == [row[:3] for row in audit_rows(events)]


def test_a_change_through_each_surface_reads_back_through_the_other_two(
    site: AdminSite,
) -> None:
    tag = secrets.token_hex(4)
    scopes = sorted(f"s{tag}:{name}" for name in ("a-read", "b-write", "c-admin"))
    identifier = f"https://{tag}.example"
    site.env.cli("apis", "create", "--identifier", identifier, "--name", "Surfaces", "--scope",
                 scopes[0], "--scope", scopes[1])  # fmt: skip
    add_operator(site.env, OPERATOR)
    with site.api() as api, console_session(site, OPERATOR) as console:
        walk = Walk(site, api, console, identifier, scopes)
        through_the_cli(walk)
        through_the_api(walk)
        through_the_console(walk)
        the_audit_trail(walk)
