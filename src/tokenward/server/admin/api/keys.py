"""``/keys``: the signing keys and their states (next, active, retired)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from tokenward.server.admin.api.auth import Caller
from tokenward.server.admin.api.errors import error_responses
from tokenward.server.admin.operations import Admin
from tokenward.server.admin.schemas import KeyRotate
from tokenward.server.admin.views import KeyView

__all__ = ["key_routes"]


def key_routes(admin: Admin, *, read: Any, write: Any) -> APIRouter:
    router = APIRouter(tags=["Signing keys"])

    @router.get("/keys")
    async def list_keys(caller: Caller = read) -> list[KeyView]:
        """Every published key with its state and the times it changes."""
        return await admin.list_keys()

    @router.post("/keys/rotate", status_code=201, responses=error_responses(409))
    async def rotate_key(spec: KeyRotate | None = None, caller: Caller = write) -> KeyView:
        """Publish a new key now; it signs after `activate_in` seconds (default: the
        publication delay), and the key it replaces retires then."""
        return await admin.rotate_key(spec or KeyRotate(), actor=caller.actor)

    @router.post("/keys/{kid}/retire", responses=error_responses(404, 409))
    async def retire_key(kid: str, caller: Caller = write) -> KeyView:
        """Stop signing with a key now: its successor (the next key, brought forward, or a
        new one) signs at once. It stays published until every token it signed has expired.
        Retiring a retired key changes nothing; a key that never signed (next) is deleted
        instead (409)."""
        return await admin.retire_key(kid, actor=caller.actor)

    @router.delete("/keys/{kid}", status_code=204, responses=error_responses(404, 409))
    async def delete_key(kid: str, force: bool = False, caller: Caller = write) -> Response:
        """Remove a key from the JWKS and the database. An active key must be retired first
        (409); a retired key whose tokens may still be valid is kept (409) unless `force`:
        the answer to a compromised key, whose tokens then stop verifying."""
        await admin.delete_key(kid, force=force, actor=caller.actor)
        return Response(status_code=204)

    return router
