"""``tokenward keys``: the signing keys and their states (next, active, retired)."""

from __future__ import annotations

from typing import Annotated

import typer

from tokenward.server.admin.schemas import KeyDelete, KeyRotate
from tokenward.server.cli.common import ACTOR, JsonOpt, emit, group, parse, run_admin, when

__all__ = ["app"]

app = group("Signing keys: list, rotate.")


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


@app.command("delete")
def delete(
    kid: str,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Also delete a retired key whose tokens may still be valid (a compromised "
            "key: they stop verifying).",
        ),
    ] = False,
) -> None:
    """Remove a key that no longer signs from the JWKS (a compromised key, after rotating)."""
    spec = parse(KeyDelete, force=force)
    run_admin(lambda admin: admin.delete_key(kid, spec, actor=ACTOR))
    typer.echo(f"deleted key {kid}: every instance stops publishing it within its refresh bound")
