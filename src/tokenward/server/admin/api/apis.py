"""``/apis``: APIs (resource servers) and the scopes they define."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tokenward.server.admin.api.auth import Caller
from tokenward.server.admin.api.errors import error_responses
from tokenward.server.admin.operations import Admin
from tokenward.server.admin.schemas import ApiCreate, ApiUpdate
from tokenward.server.admin.views import ApiView

__all__ = ["api_routes"]

# An API's identifier is a URI: in a path it is percent-encoded (``https%3A%2F%2Fapi.example``).
ONE = "/apis/{identifier:path}"


def api_routes(admin: Admin, *, read: Any, write: Any) -> APIRouter:
    router = APIRouter(tags=["APIs"])

    @router.get("/apis")
    async def list_apis(caller: Caller = read) -> list[ApiView]:
        """Every API with its scopes and token policy."""
        return await admin.list_apis()

    @router.post("/apis", status_code=201, responses=error_responses(409))
    async def create_api(spec: ApiCreate, caller: Caller = write) -> ApiView:
        """Register an API (its identifier is the `aud` of its tokens) and its scopes."""
        return await admin.create_api(spec, actor=caller.actor)

    @router.get(ONE, responses=error_responses(404))
    async def get_api(identifier: str, caller: Caller = read) -> ApiView:
        """One API."""
        return await admin.get_api(identifier)

    @router.patch(ONE, responses=error_responses(404, 409))
    async def update_api(identifier: str, changes: ApiUpdate, caller: Caller = write) -> ApiView:
        """Rename it, add or remove scopes, change its token lifetime, format or algorithm."""
        return await admin.update_api(identifier, changes, actor=caller.actor)

    @router.delete(ONE, status_code=204, responses=error_responses(404))
    async def delete_api(identifier: str, caller: Caller = write) -> None:
        """Delete an API and its scopes."""
        await admin.delete_api(identifier, actor=caller.actor)

    return router
