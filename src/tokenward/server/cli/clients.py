"""``tokenward clients``: clients, their scopes, keys and secrets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from tokenward.server.admin.schemas import ClientCreate, ClientUpdate, SecretCreate, SecretRevoke
from tokenward.server.admin.views import ClientView, NewSecretView
from tokenward.server.cli.common import (
    ACTOR,
    JsonOpt,
    emit,
    fail,
    group,
    parse,
    run_admin,
    when,
)

__all__ = ["app"]

app = group("Clients, their scopes and secrets.")
secrets_app = group("A client's secrets: add, list, revoke.")
app.add_typer(secrets_app, name="secrets")

Scopes = Annotated[list[str] | None, typer.Option("--scope", help="A granted scope (repeat).")]
TtlOpt = Annotated[int | None, typer.Option(help="Token lifetime override, s.")]
FormatOpt = Annotated[str | None, typer.Option(help="jwt or opaque override.")]
JwksFileOpt = Annotated[Path | None, typer.Option(help="Public keys (private_key_jwt), a JWKS.")]
JwksUriOpt = Annotated[str | None, typer.Option(help="URL of the public keys.")]
AssertionAlgOpt = Annotated[
    str | None,
    typer.Option(
        help="private_key_jwt algorithm: ES256, RS256, PS256, EdDSA, Ed25519 (default: from "
        "the JWKS; ES256 with --jwks-uri)."
    ),
]
QuotaMinuteOpt = Annotated[
    int | None, typer.Option(help="Issuance quota: most tokens per minute (429 past it).")
]
QuotaHourOpt = Annotated[
    int | None, typer.Option(help="Issuance quota: most tokens per hour (429 past it).")
]
MethodsOpt = Annotated[
    list[str] | None,
    typer.Option(
        help="client_secret_basic, client_secret_post, private_key_jwt, client_secret_jwt "
        "(repeat; default: both secret methods)."
    ),
]


def _jwks_from(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        document: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise fail(f"cannot read JWKS file: {exc}") from None
    return document


def _secret_lines(client_id: str, new: NewSecretView | None) -> list[str]:
    if new is None:
        return [f"client_id:     {client_id}"]
    if new.warning:
        typer.echo(f"warning: {new.warning}", err=True)
    return [
        f"client_id:     {client_id}",
        f"client_secret: {new.client_secret}",
        "(the secret is shown once; store it now)",
    ]


def _line(client: ClientView) -> str:
    state = "enabled" if client.enabled else "DISABLED"
    return f"{client.client_id}\t{client.name}\t{state}\t{' '.join(client.scopes)}"


@app.command("create")
def create(
    name: Annotated[str, typer.Option(help="A display name.")],
    client_id: Annotated[str | None, typer.Option(help="Choose the id (default: a UUID).")] = None,
    scope: Scopes = None,
    default_scope: Annotated[
        list[str] | None, typer.Option(help="Scope used when a request names none (repeat).")
    ] = None,
    api: Annotated[
        list[str] | None, typer.Option(help="Grant an API without scopes (repeat).")
    ] = None,
    auth_method: MethodsOpt = None,
    secret: Annotated[
        str | None, typer.Option(help="An operator-chosen secret (default: generated).")
    ] = None,
    token_ttl: TtlOpt = None,
    token_format: FormatOpt = None,
    jwks_file: JwksFileOpt = None,
    jwks_uri: JwksUriOpt = None,
    assertion_alg: AssertionAlgOpt = None,
    introspect: Annotated[
        list[str] | None,
        typer.Option(help="An API whose tokens this client (a resource server) may introspect."),
    ] = None,
    quota_per_minute: QuotaMinuteOpt = None,
    quota_per_hour: QuotaHourOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a client; its secret is printed once."""
    spec = parse(
        ClientCreate,
        name=name,
        client_id=client_id,
        scopes=scope,
        default_scopes=default_scope,
        apis=api,
        auth_methods=auth_method,
        secret=secret,
        token_ttl=token_ttl,
        token_format=token_format,
        jwks=_jwks_from(jwks_file),
        jwks_uri=jwks_uri,
        assertion_alg=assertion_alg,
        introspect_apis=introspect,
        quota_per_minute=quota_per_minute,
        quota_per_hour=quota_per_hour,
    )
    created = run_admin(lambda admin: admin.create_client(spec, actor=ACTOR))
    client, new = created.client, created.secret
    data = client.model_dump(mode="json")
    if new is not None:
        data.update(client_secret=new.client_secret, secret_id=new.secret_id)
    emit(data, as_json, _secret_lines(client.client_id, new))


@app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """List clients."""
    clients = run_admin(lambda admin: admin.list_clients(), writes=False)
    emit(clients, as_json, [_line(c) for c in clients] or ["(no clients)"])


@app.command("show")
def show(client_id: str) -> None:
    """Show one client (JSON; never its secrets' values)."""
    emit(run_admin(lambda admin: admin.get_client(client_id), writes=False), True, [])


@app.command("update")
def update(
    client_id: str,
    name: Annotated[str | None, typer.Option(help="New display name.")] = None,
    scope: Annotated[list[str] | None, typer.Option(help="Replace granted scopes.")] = None,
    add_scope: Annotated[list[str] | None, typer.Option(help="Grant a scope.")] = None,
    remove_scope: Annotated[list[str] | None, typer.Option(help="Withdraw a scope.")] = None,
    default_scope: Annotated[list[str] | None, typer.Option(help="Replace defaults.")] = None,
    api: Annotated[list[str] | None, typer.Option(help="Replace granted APIs.")] = None,
    auth_method: Annotated[list[str] | None, typer.Option(help="Replace methods.")] = None,
    token_ttl: TtlOpt = None,
    token_format: FormatOpt = None,
    jwks_file: JwksFileOpt = None,
    jwks_uri: JwksUriOpt = None,
    assertion_alg: AssertionAlgOpt = None,
    introspect: Annotated[
        list[str] | None, typer.Option(help="Replace the APIs it may introspect.")
    ] = None,
    quota_per_minute: QuotaMinuteOpt = None,
    quota_per_hour: QuotaHourOpt = None,
    no_quotas: Annotated[bool, typer.Option(help="Remove both issuance quotas.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Change a client's scopes, methods, keys, token policy or quotas."""
    quotas: dict[str, Any] = {}
    if no_quotas:
        if quota_per_minute is not None or quota_per_hour is not None:
            raise fail("--no-quotas cannot be combined with --quota-per-minute/--quota-per-hour")
        quotas = {"quota_per_minute": None, "quota_per_hour": None}
    changes = parse(
        ClientUpdate,
        name=name,
        scopes=scope,
        add_scopes=add_scope,
        remove_scopes=remove_scope,
        default_scopes=default_scope,
        apis=api,
        auth_methods=auth_method,
        token_ttl=token_ttl,
        token_format=token_format,
        jwks=_jwks_from(jwks_file),
        jwks_uri=jwks_uri,
        assertion_alg=assertion_alg,
        introspect_apis=introspect,
        quota_per_minute=quota_per_minute,
        quota_per_hour=quota_per_hour,
    )
    if quotas:  # null removes a quota (merge-patch); ``parse`` treats None as "not given"
        changes = ClientUpdate(**changes.model_dump(exclude_unset=True), **quotas)
    client = run_admin(lambda admin: admin.update_client(client_id, changes, actor=ACTOR))
    emit(client, as_json, [f"updated client {client.client_id}"])


@app.command("disable")
def disable(client_id: str) -> None:
    """Disable a client: its authentications fail on every worker within seconds, and every
    token it holds is reported inactive by introspection at once."""
    changes = ClientUpdate(enabled=False)
    run_admin(lambda admin: admin.update_client(client_id, changes, actor=ACTOR))
    typer.echo(f"disabled client {client_id}")


@app.command("enable")
def enable(client_id: str) -> None:
    """Enable a disabled client."""
    changes = ClientUpdate(enabled=True)
    run_admin(lambda admin: admin.update_client(client_id, changes, actor=ACTOR))
    typer.echo(f"enabled client {client_id}")


@app.command("revoke-tokens")
def revoke_tokens(client_id: str) -> None:
    """Revoke every token issued to a client so far (introspection reports them inactive)."""
    from tokenward.server.admin.views import timestamp

    not_before = run_admin(lambda admin: admin.revoke_tokens(client_id, actor=ACTOR))
    typer.echo(f"revoked every token of {client_id} issued before {when(timestamp(not_before))}")


@app.command("delete")
def delete(client_id: str) -> None:
    """Delete a client and its secrets."""
    run_admin(lambda admin: admin.delete_client(client_id, actor=ACTOR))
    typer.echo(f"deleted client {client_id}")


@secrets_app.command("add")
def secrets_add(
    client_id: str,
    label: Annotated[str, typer.Option(help="A note, e.g. the deploy it is for.")] = "",
    secret: Annotated[str | None, typer.Option(help="Operator-chosen value.")] = None,
    expires_in: Annotated[int | None, typer.Option(help="Seconds until it expires.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a secret (the old ones keep working until revoked: rotation without downtime)."""
    spec = parse(SecretCreate, label=label, secret=secret, expires_in=expires_in)
    new = run_admin(lambda admin: admin.add_secret(client_id, spec, actor=ACTOR))
    emit(new, as_json, [f"secret_id:     {new.secret_id}", *_secret_lines(client_id, new)])


@secrets_app.command("list")
def secrets_list(client_id: str, as_json: JsonOpt = False) -> None:
    """List a client's secrets with their last-used time (never their values)."""
    listed = run_admin(lambda admin: admin.list_secrets(client_id), writes=False)
    lines = [
        f"{s.id}\t{s.label}\tcreated {when(s.created_at)}\tlast used {when(s.last_used_at)}"
        f"\texpires {when(s.expires_at)}"
        for s in listed
    ]
    emit(listed, as_json, lines or ["(no secrets)"])


@secrets_app.command("revoke")
def secrets_revoke(
    client_id: str,
    secret_id: str,
    grace: Annotated[int, typer.Option(help="Keep it valid this many more seconds.")] = 0,
) -> None:
    """Revoke one secret, now or after a grace period."""
    spec = parse(SecretRevoke, grace=grace)
    run_admin(lambda admin: admin.revoke_secret(client_id, secret_id, spec, actor=ACTOR))
    typer.echo(f"revoked secret {secret_id}" + (f" (valid {grace} s more)" if grace else ""))
