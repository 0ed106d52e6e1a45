"""``/keys``: the signing keys and their states (next, active, retired)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tokenward.server.admin.api.auth import Caller
from tokenward.server.admin.api.errors import error_responses
from tokenward.server.admin.operations import Admin
from tokenward.server.admin.schemas import KeyRetire, KeyRotate
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
    async def retire_key(
        kid: str, spec: KeyRetire | None = None, caller: Caller = write
    ) -> KeyView:
        """Stop signing with a key now (an active key's successor signs at once); `force`
        also removes it from the JWKS, so the tokens it signed stop verifying."""
        force = spec is not None and spec.force
        return await admin.retire_key(kid, force=force, actor=caller.actor)

    return router
