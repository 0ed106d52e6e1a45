"""The CLI and the admin API are two surfaces over one admin layer: a change made through one
reads back identically through the other (the same view, field for field), and the audit trail
names who made it."""

from __future__ import annotations

import json
import secrets
from typing import Any

from tests.server.admin_api.support import AdminSite, api_path


def _show(site: AdminSite, group: str, key: str) -> Any:
    return json.loads(site.env.cli(group, "show", key).stdout)  # `show` always prints JSON


def test_a_change_through_one_surface_reads_back_through_the_other(site: AdminSite) -> None:
    cli = site.env
    scope, extra = f"s{secrets.token_hex(4)}:read", f"s{secrets.token_hex(4)}:write"
    identifier = f"https://{secrets.token_hex(4)}.example"
    cli.cli("apis", "create", "--identifier", identifier, "--name", "Both", "--scope", scope)
    created = cli.cli_json("clients", "create", "--name", "both", "--scope", scope)
    client_id = created["client_id"]

    with site.api() as api:
        assert api.get(f"/clients/{client_id}").json() == _show(site, "clients", client_id)
        changed = api.patch(api_path(identifier), json={"add_scopes": [extra]})
        assert changed.status_code == 200
        granted = api.patch(f"/clients/{client_id}", json={"add_scopes": [extra]}).json()
        shown = _show(site, "clients", client_id)
        assert shown == granted
        assert shown["scopes"] == sorted([scope, extra])
        cli.cli("clients", "disable", client_id)
        assert api.get(f"/clients/{client_id}").json()["enabled"] is False
        events = api.get("/audit", params={"client_id": client_id}).json()["events"]
    assert [(e["event"], e["actor"]) for e in events] == [
        ("client.updated", "cli"),
        ("client.updated", f"api:{site.client_id}"),
        ("client.created", "cli"),
    ]
    assert cli.cli_json("audit", "list", "--client", client_id) == events
