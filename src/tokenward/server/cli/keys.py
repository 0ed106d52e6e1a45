"""``tokenward keys``: the signing keys and their states (next, active, retired)."""

from __future__ import annotations

from typing import Annotated

import typer

from tokenward.server.admin import Admin, Conflict
from tokenward.server.admin.schemas import KeyRotate
from tokenward.server.cli.common import ACTOR, JsonOpt, emit, group, parse, run_admin, when

__all__ = ["app"]

app = group("Signing keys: list, rotate, retire, delete.")

#: For the commands that take a kid. A kid is an RFC 7638 thumbprint, base64url: one in 64
#: begins with "-", which the parser took for options ("No such option: -S"), or for ``-h``
#: when an "h" followed. Such a command knows only long options, and an argument that is not
#: one of them is the kid.
KID_COMMAND = {"ignore_unknown_options": True, "help_option_names": ["--help"]}


@app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """List signing keys and their state (next, active, retired)."""
    keys = run_admin(lambda admin: admin.list_keys(), writes=False)
    lines = [f"{k.kid}\t{k.alg}\t{k.state}\tsigns from {when(k.activates_at)}" for k in keys]
    emit(keys, as_json, lines or ["(no keys)"])


@app.command("rotate")
def rotate(
    alg: Annotated[str | None, typer.Option(help="Algorithm (default: the server's).")] = None,
    activate_in: Annotated[
        int | None,
        typer.Option(help="Seconds before it signs (default TOKENWARD_KEY_PUBLICATION_DELAY)."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Allow an activation sooner than the JWKS max-age plus the registry refresh "
            "(a compromised key only: tokens signed meanwhile fail at some verifiers).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Publish a new signing key; it signs after the publication delay."""
    spec = parse(KeyRotate, alg=alg, activate_in=activate_in, force=force)
    key = run_admin(lambda admin: admin.rotate_key(spec, actor=ACTOR))
    line = f"new {key.alg} key {key.kid}: published now, signs from {when(key.activates_at)}"
    emit(key, as_json, [line])


@app.command("retire", context_settings=KID_COMMAND)
def retire(kid: str, as_json: JsonOpt = False) -> None:
    """Stop signing with a key now; its successor signs at once. It stays published until
    every token it signed has expired (then `keys delete`, or the automatic upkeep, removes
    it)."""
    key = run_admin(lambda admin: admin.retire_key(kid, actor=ACTOR))
    line = f"retired {key.alg} key {key.kid}: published until {when(key.removed_at)}"
    emit(key, as_json, [line])


@app.command("delete", context_settings=KID_COMMAND)
def delete(
    kid: str,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Delete even if tokens it signed may be valid (a compromised key)."
        ),
    ] = False,
) -> None:
    """Remove a key from the JWKS and the database (an active key must be retired first)."""

    async def work(admin: Admin) -> None:
        try:
            await admin.delete_key(kid, force=force, actor=ACTOR)
        except Conflict as exc:
            hint = "" if force or "retire it" in exc.message else " (--force)"
            raise Conflict(exc.message + hint) from None

    run_admin(work)
    typer.echo(f"deleted key {kid}" + (" (forced)" if force else ""))
