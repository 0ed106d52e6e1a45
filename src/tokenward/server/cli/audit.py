"""``tokenward audit``: the audit trail of administrative changes."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from tokenward.server.cli.common import JsonOpt, emit, group, run_admin, when
from tokenward.server.stores import AuditQuery

__all__ = ["app"]

app = group("The audit trail of administrative changes.")


@app.command("list")
def list_(
    limit: Annotated[int, typer.Option(help="How many events.")] = 50,
    client: Annotated[str | None, typer.Option(help="Only events about this client.")] = None,
    event: Annotated[str | None, typer.Option(help="Only this event, e.g. client.created.")] = None,
    actor: Annotated[str | None, typer.Option(help="Only changes by this actor.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the latest administrative events, newest first."""
    query = AuditQuery(limit=limit, client_id=client, event=event, actor=actor)
    events = run_admin(lambda admin: admin.list_audit(query), writes=False)
    lines = [f"{when(e.at)}\t{e.event}\t{e.actor}\t{json.dumps(e.data)}" for e in events]
    emit(events, as_json, lines or ["(no events)"])
