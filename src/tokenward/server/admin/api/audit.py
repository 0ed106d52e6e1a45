"""``/audit``: the audit trail of administrative changes, newest first, a page at a time."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BeforeValidator

from tokenward.server.admin.api.auth import Caller
from tokenward.server.admin.operations import Admin
from tokenward.server.admin.views import AuditPage
from tokenward.server.stores import AuditQuery

__all__ = ["audit_routes"]

Limit = Annotated[int, Query(ge=1, le=1000, description="Events per page.")]
Cursor = Annotated[
    str | None,
    Query(pattern=r"^[0-9]{1,18}$", description="`next_cursor` of the previous page."),
]
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ]")


def _iso_8601(value: object) -> object:
    # pydantic also reads a number as seconds since the epoch; the document says date-time.
    if isinstance(value, str) and _DATE.match(value) is None:
        raise ValueError("must be an ISO 8601 date and time with a time zone")
    return value


When = Annotated[
    AwareDatetime | None,
    BeforeValidator(_iso_8601),
    Query(description="ISO 8601 with a time zone, e.g. 2026-01-31T12:00:00Z."),
]
Filter = Annotated[str | None, Query(max_length=255)]


def _seconds(value: AwareDatetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


def audit_routes(admin: Admin, *, read: Any, write: Any) -> APIRouter:
    router = APIRouter(tags=["Audit"])

    @router.get("/audit")
    async def list_audit(
        limit: Limit = 50,
        cursor: Cursor = None,
        client_id: Filter = None,
        event: Annotated[
            str | None, Query(max_length=64, description="e.g. client.created")
        ] = None,
        actor: Filter = None,
        since: When = None,
        until: When = None,
        caller: Caller = read,
    ) -> AuditPage:
        """Administrative events, newest first: filter by the client concerned, the event
        (the action), the actor (`cli`, `api:<client_id>`, ...) and the time (`since`
        inclusive, `until` exclusive); follow `next_cursor` for older events."""
        query = AuditQuery(
            limit=limit,
            before_id=None if cursor is None else int(cursor),
            client_id=client_id,
            event=event,
            actor=actor,
            since=_seconds(since),
            until=_seconds(until),
        )
        return await admin.audit_page(query)

    return router
