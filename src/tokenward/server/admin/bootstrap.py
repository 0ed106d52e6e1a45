"""The admin REST API's own audience and its first client.

The admin API is protected by this server's own access tokens (RFC 9068): it is registered as
an API whose identifier, the ``aud`` of its tokens, is derived from the issuer
(``{issuer}/admin/api``), with two scopes: ``tokenward:admin`` (read and write) and
``tokenward:admin:read``. :func:`set_up_admin_api` registers it and, when no client holds the
read-write scope, creates one (``tokenward-admin``), whose secret is in the answer once. It is
what ``tokenward init`` runs, and ``tokenward serve`` on its first start; it calls only
:class:`Admin`, so the API and the client are audited like any other change.
"""

from __future__ import annotations

from tokenward.server.admin.errors import Conflict, NotFound
from tokenward.server.admin.operations import Admin
from tokenward.server.admin.schemas import ApiCreate, ApiUpdate, ClientCreate
from tokenward.server.admin.views import AdminApiSetup, ApiView, ClientCreated

__all__ = [
    "ADMIN_READ_SCOPE",
    "ADMIN_SCOPE",
    "FIRST_CLIENT_ID",
    "IssuerMismatch",
    "admin_audience",
    "set_up_admin_api",
]

ADMIN_SCOPE = "tokenward:admin"
ADMIN_READ_SCOPE = "tokenward:admin:read"
FIRST_CLIENT_ID = "tokenward-admin"
_DESCRIPTIONS = {
    ADMIN_SCOPE: "Read and change everything through the admin REST API",
    ADMIN_READ_SCOPE: "Read everything through the admin REST API (never a secret)",
}


class IssuerMismatch(ValueError):
    """Another issuer's admin API holds the admin scopes: instances disagree on the issuer."""


def admin_audience(issuer: str) -> str:
    """The admin API's identifier: the ``aud`` its tokens must carry."""
    return issuer.rstrip("/") + "/admin/api"


async def _admin_api(admin: Admin, identifier: str, actor: str) -> ApiView:
    try:
        api = await admin.get_api(identifier)
    except NotFound:
        spec = ApiCreate(
            identifier=identifier,
            name="tokenward admin API",
            scopes=sorted(_DESCRIPTIONS),
            scope_descriptions=_DESCRIPTIONS,
        )
        try:
            return await admin.create_api(spec, actor=actor)
        except Conflict:  # another instance, starting at the same moment, created it
            try:
                return await admin.get_api(identifier)
            except NotFound:  # no: its scopes belong to an API of another issuer
                raise IssuerMismatch(
                    f"TOKENWARD_ISSUER: the admin API scopes on this database belong to "
                    f"another issuer's admin API, not {identifier}; every instance on one "
                    f"database must have the same issuer"
                ) from None
    missing = sorted(set(_DESCRIPTIONS) - set(api.scopes))
    if missing:
        return await admin.update_api(identifier, ApiUpdate(add_scopes=missing), actor=actor)
    return api


async def _admin_clients(admin: Admin) -> list[str]:
    return [c.client_id for c in await admin.list_clients() if ADMIN_SCOPE in c.scopes]


async def _first_client(admin: Admin, actor: str) -> ClientCreated | None:
    taken = {c.client_id for c in await admin.list_clients()}
    spec = ClientCreate(
        name="tokenward admin",
        client_id=None if FIRST_CLIENT_ID in taken else FIRST_CLIENT_ID,
        scopes=[ADMIN_SCOPE],
    )
    try:
        return await admin.create_client(spec, actor=actor)
    except Conflict:  # another instance created it first
        return None


async def set_up_admin_api(admin: Admin, *, issuer: str, actor: str) -> AdminApiSetup:
    """Register the admin API if it is missing, and an admin client if none exists."""
    api = await _admin_api(admin, admin_audience(issuer), actor)
    holders = await _admin_clients(admin)
    created = None if holders else await _first_client(admin, actor)
    return AdminApiSetup(
        api=api,
        token_endpoint=issuer.rstrip("/") + "/token",
        admin_clients=holders or await _admin_clients(admin),
        created=created,
    )
