"""The ``tokenward`` command line: serve, migrate, and administer the registry.

Every command reads the same ``TOKENWARD_*`` settings as the server, so the CLI and the server
share the database (and the development secrets file on SQLite).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from tokenward.protocol.model import Api, Client, ClientSecret
from tokenward.server.registry_admin import Admin, AdminError, NewSecret, NotFoundError
from tokenward.server.settings import Settings

__all__ = ["app", "main"]

T = TypeVar("T")

app = typer.Typer(
    help="tokenward: OAuth 2.0 client credentials for machine-to-machine APIs.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
)
apis_app = typer.Typer(help="APIs (resource servers) and their scopes.", no_args_is_help=True)
clients_app = typer.Typer(help="Clients, their scopes and secrets.", no_args_is_help=True)
secrets_app = typer.Typer(help="A client's secrets: add, list, revoke.", no_args_is_help=True)
keys_app = typer.Typer(help="Signing keys.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail of administrative changes.", no_args_is_help=True)
app.add_typer(apis_app, name="apis")
app.add_typer(clients_app, name="clients")
clients_app.add_typer(secrets_app, name="secrets")
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _run(work: Callable[[Admin], Awaitable[T]]) -> T:
    """Run one admin operation against the configured database."""
    from tokenward.server.app import load_server_secrets, prepare_database
    from tokenward.server.storage.sql.repository import Repository

    settings = Settings()
    prepare_database(settings)
    server_secrets = load_server_secrets(settings)

    async def go() -> T:
        repo = Repository.from_url(settings.database_url)
        try:
            return await work(Admin(settings, repo, server_secrets))
        finally:
            await repo.close()

    try:
        return asyncio.run(go())
    except AdminError as exc:
        raise _fail(str(exc)) from None
    except NotFoundError as exc:
        raise _fail(f"not found: {exc}", 2) from None


def _ts(value: int | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value, UTC).isoformat().replace("+00:00", "Z")


def _print(data: Any, as_json: bool, lines: list[str]) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        typer.echo("\n".join(lines))


def _api_dict(api: Api) -> dict[str, Any]:
    return {
        "identifier": api.identifier,
        "name": api.name,
        "scopes": sorted(api.scopes),
        "token_ttl": api.token_ttl,
        "signing_alg": api.signing_alg,
        "token_format": api.token_format,
    }


def _secret_dict(secret: ClientSecret) -> dict[str, Any]:
    return {
        "id": secret.id,
        "label": secret.label,
        "created_at": _ts(secret.created_at),
        "expires_at": _ts(secret.expires_at),
        "last_used_at": _ts(secret.last_used_at),
    }


def _key_count(client: Client) -> int | None:
    keys = client.jwks.get("keys") if client.jwks is not None else None
    return len(keys) if isinstance(keys, list) else None


def _client_dict(client: Client) -> dict[str, Any]:
    return {
        "client_id": client.client_id,
        "name": client.name,
        "enabled": client.enabled,
        "auth_methods": sorted(client.auth_methods),
        "scopes": sorted(client.scopes),
        "default_scopes": None if client.default_scopes is None else sorted(client.default_scopes),
        "apis": sorted(client.apis),
        "token_ttl": client.token_ttl,
        "token_format": client.token_format,
        "jwks_uri": client.jwks_uri,
        "jwks_keys": _key_count(client),
        "assertion_alg": client.assertion_alg,
        "introspect_apis": sorted(client.introspect_apis),
        "not_before": _ts(client.not_before),
        "secrets": [_secret_dict(s) for s in client.secrets],
    }


# -- serve / migrate ----------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (uvicorn).")] = 1,
) -> None:
    """Run the authorization server (uvicorn + uvloop + httptools)."""
    import uvicorn

    from tokenward.server.app import load_server_secrets, prepare_database

    settings = Settings()
    try:
        settings.check_transport()
    except ValueError as exc:
        raise _fail(str(exc)) from None
    prepare_database(settings)
    load_server_secrets(settings)  # create the dev secrets file once, before workers fork
    _ensure_first_key(settings)
    typer.echo(
        f"tokenward serving {settings.issuer} on http://{host}:{port} "
        f"({workers} worker{'s' if workers > 1 else ''})\n"
        f"  discovery: {settings.issuer}/.well-known/oauth-authorization-server\n"
        f"  next: tokenward apis create --identifier https://api.example.com "
        f"--name 'Example API' --scope countries:read\n"
        f"        tokenward clients create --name billing --scope countries:read --json",
        err=True,
    )
    uvicorn.run(
        "tokenward.server.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=30,
        limit_concurrency=4096,
    )


def _ensure_first_key(settings: Settings) -> None:
    async def first(admin: Admin) -> None:
        await admin.ensure_key(settings.signing_alg)

    _run(first)


@app.command()
def migrate() -> None:
    """Upgrade the database schema to the latest version."""
    from tokenward.server.storage.sql.migrate import upgrade

    settings = Settings()
    changed = upgrade(settings.database_url)
    typer.echo("schema upgraded" if changed else "schema already current")


# -- APIs ---------------------------------------------------------------------------------------


@apis_app.command("create")
def apis_create(
    identifier: Annotated[str, typer.Option(help="The API's URI; the `aud` of its tokens.")],
    name: Annotated[str, typer.Option(help="A display name.")],
    scope: Annotated[list[str] | None, typer.Option(help="A scope it defines (repeat).")] = None,
    token_ttl: Annotated[int | None, typer.Option(help="Token lifetime, seconds.")] = None,
    signing_alg: Annotated[str | None, typer.Option(help="ES256, RS256, PS256, EdDSA.")] = None,
    token_format: Annotated[str, typer.Option(help="jwt or opaque.")] = "jwt",
    as_json: JsonOpt = False,
) -> None:
    """Register an API and the scopes it defines."""
    api = _run(
        lambda a: a.create_api(
            identifier=identifier,
            name=name,
            scopes=scope or [],
            token_ttl=token_ttl,
            signing_alg=signing_alg,
            token_format=token_format,
        )
    )
    _print(_api_dict(api), as_json, [f"created API {api.identifier}"])


@apis_app.command("list")
def apis_list(as_json: JsonOpt = False) -> None:
    """List APIs."""
    apis = _run(lambda a: a.repo.list_apis())
    lines = [f"{x.identifier}\t{x.name}\t{' '.join(sorted(x.scopes))}" for x in apis]
    _print([_api_dict(x) for x in apis], as_json, lines or ["(no APIs)"])


@apis_app.command("show")
def apis_show(identifier: str, as_json: JsonOpt = True) -> None:
    """Show one API."""
    api = _run(lambda a: a.repo.get_api(identifier))
    _print(_api_dict(api), True, [])


@apis_app.command("update")
def apis_update(
    identifier: str,
    add_scope: Annotated[list[str] | None, typer.Option(help="Add a scope (repeat).")] = None,
    remove_scope: Annotated[list[str] | None, typer.Option(help="Remove a scope.")] = None,
    token_ttl: Annotated[int | None, typer.Option(help="Token lifetime, seconds.")] = None,
    signing_alg: Annotated[str | None, typer.Option(help="ES256, RS256, PS256, EdDSA.")] = None,
    token_format: Annotated[str | None, typer.Option(help="jwt or opaque.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change an API's scopes or token policy."""
    api = _run(
        lambda a: a.update_api(
            identifier,
            add_scopes=add_scope or [],
            remove_scopes=remove_scope or [],
            token_ttl=token_ttl,
            signing_alg=signing_alg,
            token_format=token_format,
        )
    )
    _print(_api_dict(api), as_json, [f"updated API {api.identifier}"])


@apis_app.command("delete")
def apis_delete(identifier: str) -> None:
    """Delete an API and its scopes."""
    _run(lambda a: a.delete_api(identifier))
    typer.echo(f"deleted API {identifier}")


# -- clients ------------------------------------------------------------------------------------


def _jwks_from(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise _fail(f"cannot read JWKS file: {exc}") from None
    return doc


def _secret_lines(client_id: str, new: NewSecret | None) -> list[str]:
    if new is None:
        return [f"client_id:     {client_id}"]
    lines = [
        f"client_id:     {client_id}",
        f"client_secret: {new.value}",
        "(the secret is shown once; store it now)",
    ]
    if new.warning:
        typer.echo(f"warning: {new.warning}", err=True)
    return lines


@clients_app.command("create")
def clients_create(
    name: Annotated[str, typer.Option(help="A display name.")],
    client_id: Annotated[str | None, typer.Option(help="Choose the id (default: a UUID).")] = None,
    scope: Annotated[list[str] | None, typer.Option(help="A granted scope (repeat).")] = None,
    default_scope: Annotated[
        list[str] | None, typer.Option(help="Scope used when a request names none (repeat).")
    ] = None,
    api: Annotated[
        list[str] | None, typer.Option(help="Grant an API without scopes (repeat).")
    ] = None,
    auth_method: Annotated[
        list[str] | None,
        typer.Option(
            help="client_secret_basic, client_secret_post, private_key_jwt, client_secret_jwt "
            "(repeat; default: both secret methods)."
        ),
    ] = None,
    secret: Annotated[
        str | None, typer.Option(help="An operator-chosen secret (default: generated).")
    ] = None,
    token_ttl: Annotated[int | None, typer.Option(help="Token lifetime override, s.")] = None,
    token_format: Annotated[str | None, typer.Option(help="jwt or opaque override.")] = None,
    jwks_file: Annotated[Path | None, typer.Option(help="Public keys (private_key_jwt).")] = None,
    jwks_uri: Annotated[str | None, typer.Option(help="URL of public keys.")] = None,
    assertion_alg: Annotated[
        str | None,
        typer.Option(
            help="private_key_jwt algorithm: ES256, RS256, PS256, EdDSA, Ed25519 (default: "
            "from the JWKS; ES256 with --jwks-uri)."
        ),
    ] = None,
    introspect: Annotated[
        list[str] | None,
        typer.Option(help="An API whose tokens this client (a resource server) may introspect."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a client; its secret is printed once."""
    client, new = _run(
        lambda a: a.create_client(
            name=name,
            client_id=client_id,
            scopes=scope or [],
            default_scopes=default_scope,
            apis=api or [],
            auth_methods=auth_method or [],
            secret=secret,
            token_ttl=token_ttl,
            token_format=token_format,
            jwks=_jwks_from(jwks_file),
            jwks_uri=jwks_uri,
            assertion_alg=assertion_alg,
            introspect_apis=introspect or [],
        )
    )
    data = _client_dict(client)
    if new is not None:
        data["client_secret"] = new.value
        data["secret_id"] = new.record.id
        if new.warning and as_json:
            typer.echo(f"warning: {new.warning}", err=True)
    _print(data, as_json, _secret_lines(client.client_id, new))


@clients_app.command("list")
def clients_list(as_json: JsonOpt = False) -> None:
    """List clients."""
    clients = _run(lambda a: a.repo.list_clients())
    lines = [
        f"{c.client_id}\t{c.name}\t{'enabled' if c.enabled else 'DISABLED'}\t"
        f"{' '.join(sorted(c.scopes))}"
        for c in clients
    ]
    _print([_client_dict(c) for c in clients], as_json, lines or ["(no clients)"])


@clients_app.command("show")
def clients_show(client_id: str) -> None:
    """Show one client (never its secrets)."""
    client = _run(lambda a: a.repo.get_client(client_id))
    _print(_client_dict(client), True, [])


@clients_app.command("update")
def clients_update(
    client_id: str,
    name: Annotated[str | None, typer.Option(help="New display name.")] = None,
    scope: Annotated[list[str] | None, typer.Option(help="Replace granted scopes.")] = None,
    add_scope: Annotated[list[str] | None, typer.Option(help="Grant a scope.")] = None,
    remove_scope: Annotated[list[str] | None, typer.Option(help="Withdraw a scope.")] = None,
    default_scope: Annotated[list[str] | None, typer.Option(help="Replace defaults.")] = None,
    api: Annotated[list[str] | None, typer.Option(help="Replace granted APIs.")] = None,
    auth_method: Annotated[list[str] | None, typer.Option(help="Replace methods.")] = None,
    token_ttl: Annotated[int | None, typer.Option(help="Token lifetime override, s.")] = None,
    token_format: Annotated[str | None, typer.Option(help="jwt or opaque.")] = None,
    jwks_file: Annotated[Path | None, typer.Option(help="Replace the public keys.")] = None,
    jwks_uri: Annotated[str | None, typer.Option(help="Replace the keys' URL.")] = None,
    assertion_alg: Annotated[str | None, typer.Option(help="private_key_jwt alg.")] = None,
    introspect: Annotated[
        list[str] | None, typer.Option(help="Replace the APIs it may introspect.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a client's scopes, methods, keys or token policy."""
    client = _run(
        lambda a: a.update_client(
            client_id,
            name=name,
            scopes=scope,
            add_scopes=add_scope or [],
            remove_scopes=remove_scope or [],
            default_scopes=default_scope,
            apis=api,
            auth_methods=auth_method,
            token_ttl=token_ttl,
            token_format=token_format,
            jwks=_jwks_from(jwks_file),
            jwks_uri=jwks_uri,
            assertion_alg=assertion_alg,
            introspect_apis=introspect,
        )
    )
    _print(_client_dict(client), as_json, [f"updated client {client.client_id}"])


@clients_app.command("disable")
def clients_disable(client_id: str) -> None:
    """Disable a client: its authentications fail on every worker within seconds, and every
    token it holds is reported inactive by introspection at once."""
    _run(lambda a: a.update_client(client_id, enabled=False))
    typer.echo(f"disabled client {client_id}")


@clients_app.command("revoke-tokens")
def clients_revoke_tokens(client_id: str) -> None:
    """Revoke every token issued to a client so far (introspection reports them inactive)."""
    not_before = _run(lambda a: a.revoke_tokens(client_id))
    typer.echo(f"revoked every token of {client_id} issued before {_ts(not_before)}")


@clients_app.command("enable")
def clients_enable(client_id: str) -> None:
    """Enable a disabled client."""
    _run(lambda a: a.update_client(client_id, enabled=True))
    typer.echo(f"enabled client {client_id}")


@clients_app.command("delete")
def clients_delete(client_id: str) -> None:
    """Delete a client and its secrets."""
    _run(lambda a: a.delete_client(client_id))
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
    new = _run(lambda a: a.add_secret(client_id, label=label, secret=secret, expires_in=expires_in))
    data = {**_secret_dict(new.record), "client_id": client_id, "client_secret": new.value}
    _print(data, as_json, [f"secret_id:     {new.record.id}", *_secret_lines(client_id, new)])


@secrets_app.command("list")
def secrets_list(client_id: str, as_json: JsonOpt = False) -> None:
    """List a client's secrets with their last-used time (never their values)."""
    client = _run(lambda a: a.repo.get_client(client_id))
    rows = [_secret_dict(s) for s in client.secrets]
    lines = [
        f"{r['id']}\t{r['label']}\tcreated {r['created_at']}\tlast used {r['last_used_at']}"
        f"\texpires {r['expires_at']}"
        for r in rows
    ]
    _print(rows, as_json, lines or ["(no secrets)"])


@secrets_app.command("revoke")
def secrets_revoke(
    client_id: str,
    secret_id: str,
    grace: Annotated[int, typer.Option(help="Keep it valid this many more seconds.")] = 0,
) -> None:
    """Revoke one secret, now or after a grace period."""
    _run(lambda a: a.revoke_secret(client_id, secret_id, grace=grace))
    typer.echo(f"revoked secret {secret_id}" + (f" (valid {grace} s more)" if grace else ""))


# -- keys / audit -------------------------------------------------------------------------------


@keys_app.command("list")
def keys_list(as_json: JsonOpt = False) -> None:
    """List signing keys and their state (next, active, retired)."""
    states = _run(lambda a: a.key_states())
    rows = [
        {
            "kid": s.kid,
            "alg": s.alg,
            "state": s.state,
            "activates_at": _ts(s.activates_at),
            "retires_at": _ts(s.retires_at),
            "removed_at": _ts(s.removable_at),
        }
        for s in states
    ]
    lines = [f"{r['kid']}\t{r['alg']}\t{r['state']}\tsigns from {r['activates_at']}" for r in rows]
    _print(rows, as_json, lines or ["(no keys)"])


@keys_app.command("rotate")
def keys_rotate(
    alg: Annotated[str | None, typer.Option(help="Algorithm (default: the server's).")] = None,
    activate_in: Annotated[
        int | None,
        typer.Option(help="Seconds before it signs (default TOKENWARD_KEY_PUBLICATION_DELAY)."),
    ] = None,
) -> None:
    """Publish a new signing key; it signs after the publication delay."""
    state = _run(lambda a: a.rotate_key(alg, activate_in=activate_in))
    typer.echo(
        f"new {state.alg} key {state.kid}: published now, signs from {_ts(state.activates_at)}"
    )


@audit_app.command("list")
def audit_list(
    limit: Annotated[int, typer.Option(help="How many events.")] = 50, as_json: JsonOpt = False
) -> None:
    """Show the latest administrative events."""
    events = _run(lambda a: a.repo.list_audit(limit=limit))
    lines = [f"{_ts(e['at'])}\t{e['event']}\t{e['actor']}\t{json.dumps(e['data'])}" for e in events]
    _print(events, as_json, lines or ["(no events)"])


@app.command()
def token(
    client_id: Annotated[str, typer.Option(envvar="TOKENWARD_CLIENT_ID", help="Client id.")],
    client_secret: Annotated[
        str,
        typer.Option(
            envvar="TOKENWARD_CLIENT_SECRET",
            help="Client secret (prefer the TOKENWARD_CLIENT_SECRET variable: argv is visible).",
        ),
    ],
    issuer: Annotated[
        str | None, typer.Option(help="Issuer URL (default: TOKENWARD_ISSUER).")
    ] = None,
    scope: Annotated[list[str] | None, typer.Option(help="A scope to request (repeat).")] = None,
    resource: Annotated[str | None, typer.Option(help="The API (RFC 8707 resource).")] = None,
    auth_method: Annotated[
        str, typer.Option(help="client_secret_basic or client_secret_post.")
    ] = "client_secret_basic",
    token_endpoint: Annotated[
        str | None, typer.Option(help="Skip discovery and use this token endpoint.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Get an access token (client library) and print it, for shell scripts and curl."""
    from tokenward.client import TokenError
    from tokenward.client.cli import token_command

    try:
        out = token_command(
            issuer=issuer or (None if token_endpoint else Settings().issuer),
            client_id=client_id,
            client_secret=client_secret,
            scopes=scope or [],
            resource=resource,
            auth_method=auth_method,
            as_json=as_json,
            token_endpoint=token_endpoint,
        )
    except (TokenError, ValueError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(out)


def main() -> None:
    os.environ.setdefault("TYPER_USE_RICH", "0")
    app(prog_name="tokenward")


if __name__ == "__main__":
    main()
