"""``tokenward apis``: APIs (resource servers) and the scopes they define."""

from __future__ import annotations

from typing import Annotated

import typer

from tokenward.server.admin.schemas import ApiCreate, ApiUpdate
from tokenward.server.admin.views import ApiView
from tokenward.server.cli.common import ACTOR, JsonOpt, emit, group, parse, run_admin

__all__ = ["app"]

app = group("APIs (resource servers) and their scopes.")
AlgOpt = Annotated[str | None, typer.Option(help="ES256, RS256, PS256 or EdDSA.")]
TtlOpt = Annotated[int | None, typer.Option(help="Token lifetime, seconds.")]


def _line(api: ApiView) -> str:
    return f"{api.identifier}\t{api.name}\t{' '.join(api.scopes)}"


@app.command("create")
def create(
    identifier: Annotated[str, typer.Option(help="The API's URI; the `aud` of its tokens.")],
    name: Annotated[str, typer.Option(help="A display name.")],
    scope: Annotated[list[str] | None, typer.Option(help="A scope it defines (repeat).")] = None,
    token_ttl: TtlOpt = None,
    signing_alg: AlgOpt = None,
    token_format: Annotated[str, typer.Option(help="jwt or opaque.")] = "jwt",
    as_json: JsonOpt = False,
) -> None:
    """Register an API and the scopes it defines."""
    spec = parse(
        ApiCreate,
        identifier=identifier,
        name=name,
        scopes=scope or [],
        token_ttl=token_ttl,
        signing_alg=signing_alg,
        token_format=token_format,
    )
    api = run_admin(lambda admin: admin.create_api(spec, actor=ACTOR))
    emit(api, as_json, [f"created API {api.identifier}"])


@app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """List APIs."""
    apis = run_admin(lambda admin: admin.list_apis(), writes=False)
    emit(apis, as_json, [_line(a) for a in apis] or ["(no APIs)"])


@app.command("show")
def show(identifier: str) -> None:
    """Show one API (JSON)."""
    api = run_admin(lambda admin: admin.get_api(identifier), writes=False)
    emit(api, True, [])


@app.command("update")
def update(
    identifier: str,
    name: Annotated[str | None, typer.Option(help="New display name.")] = None,
    add_scope: Annotated[list[str] | None, typer.Option(help="Add a scope (repeat).")] = None,
    remove_scope: Annotated[list[str] | None, typer.Option(help="Remove a scope.")] = None,
    token_ttl: TtlOpt = None,
    signing_alg: AlgOpt = None,
    token_format: Annotated[str | None, typer.Option(help="jwt or opaque.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change an API's scopes or token policy."""
    changes = parse(
        ApiUpdate,
        name=name,
        add_scopes=add_scope,
        remove_scopes=remove_scope,
        token_ttl=token_ttl,
        signing_alg=signing_alg,
        token_format=token_format,
    )
    api = run_admin(lambda admin: admin.update_api(identifier, changes, actor=ACTOR))
    emit(api, as_json, [f"updated API {api.identifier}"])


@app.command("delete")
def delete(identifier: str) -> None:
    """Delete an API and its scopes."""
    run_admin(lambda admin: admin.delete_api(identifier, actor=ACTOR))
    typer.echo(f"deleted API {identifier}")
