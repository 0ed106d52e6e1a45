"""``/clients``: clients, their scopes, keys, tokens and secrets.

A secret's value is in exactly one answer: the one that created it (``POST /clients``,
``POST /clients/{client_id}/secrets``). Scopes are granted and withdrawn with ``PATCH``
(``add_scopes``, ``remove_scopes``), like every other setting of a client.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tokenward.server.admin.api.auth import Caller
from tokenward.server.admin.api.errors import error_responses
from tokenward.server.admin.operations import Admin
from tokenward.server.admin.schemas import ClientCreate, ClientUpdate, SecretCreate, SecretRevoke
from tokenward.server.admin.views import (
    ClientCreated,
    ClientView,
    NewSecretView,
    SecretView,
    TokensRevokedView,
)

__all__ = ["client_routes"]

ONE = "/clients/{client_id}"
_NOT_FOUND = error_responses(404)


def client_routes(admin: Admin, *, read: Any, write: Any) -> APIRouter:
    router = APIRouter(tags=["Clients"])

    @router.get("/clients")
    async def list_clients(caller: Caller = read) -> list[ClientView]:
        """Every client (never a secret's value)."""
        return await admin.list_clients()

    @router.post("/clients", status_code=201, responses=error_responses(409))
    async def create_client(spec: ClientCreate, caller: Caller = write) -> ClientCreated:
        """Register a client. Its secret (generated, or the one given) is in this answer
        only: it cannot be read later, only replaced."""
        return await admin.create_client(spec, actor=caller.actor)

    @router.get(ONE, responses=_NOT_FOUND)
    async def get_client(client_id: str, caller: Caller = read) -> ClientView:
        """One client, with its secrets' ids and last use (never their values)."""
        return await admin.get_client(client_id)

    @router.patch(ONE, responses=_NOT_FOUND)
    async def update_client(
        client_id: str, changes: ClientUpdate, caller: Caller = write
    ) -> ClientView:
        """Change what is given: grant (`add_scopes`) or withdraw (`remove_scopes`) scopes,
        default scopes, token lifetime and format, auth methods, public keys or `jwks_uri`;
        `null` clears an override."""
        return await admin.update_client(client_id, changes, actor=caller.actor)

    @router.delete(ONE, status_code=204, responses=_NOT_FOUND)
    async def delete_client(client_id: str, caller: Caller = write) -> None:
        """Delete a client and its secrets."""
        await admin.delete_client(client_id, actor=caller.actor)

    @router.post(ONE + "/disable", responses=_NOT_FOUND)
    async def disable_client(client_id: str, caller: Caller = write) -> ClientView:
        """Refuse its authentications (on every worker within the refresh bound) and report
        every token it holds inactive at once."""
        return await admin.update_client(client_id, ClientUpdate(enabled=False), actor=caller.actor)

    @router.post(ONE + "/enable", responses=_NOT_FOUND)
    async def enable_client(client_id: str, caller: Caller = write) -> ClientView:
        """Let a disabled client authenticate again (its earlier tokens stay revoked)."""
        return await admin.update_client(client_id, ClientUpdate(enabled=True), actor=caller.actor)

    @router.post(ONE + "/revoke-tokens", responses=_NOT_FOUND)
    async def revoke_tokens(client_id: str, caller: Caller = write) -> TokensRevokedView:
        """Revoke every token issued to the client so far."""
        not_before = await admin.revoke_tokens(client_id, actor=caller.actor)
        return TokensRevokedView.of(client_id, not_before)

    _secret_routes(router, admin, read=read, write=write)
    return router


def _secret_routes(router: APIRouter, admin: Admin, *, read: Any, write: Any) -> None:
    @router.get(ONE + "/secrets", responses=_NOT_FOUND)
    async def list_secrets(client_id: str, caller: Caller = read) -> list[SecretView]:
        """A client's secrets: id, label, created, expires and last used (never the value)."""
        return await admin.list_secrets(client_id)

    @router.post(ONE + "/secrets", status_code=201, responses=_NOT_FOUND)
    async def add_secret(
        client_id: str, spec: SecretCreate | None = None, caller: Caller = write
    ) -> NewSecretView:
        """Add a secret beside the others (rotation without downtime); its value is in this
        answer only."""
        return await admin.add_secret(client_id, spec or SecretCreate(), actor=caller.actor)

    @router.post(ONE + "/secrets/{secret_id}/revoke", status_code=204, responses=_NOT_FOUND)
    async def revoke_secret(
        client_id: str, secret_id: str, spec: SecretRevoke | None = None, caller: Caller = write
    ) -> None:
        """Revoke a secret now, or after `grace` seconds (rotation with overlap)."""
        await admin.revoke_secret(client_id, secret_id, spec or SecretRevoke(), actor=caller.actor)
