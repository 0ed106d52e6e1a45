"""``tokenward keys``: the signing keys and their states (next, active, retired)."""

from __future__ import annotations

from typing import Annotated

import typer

from tokenward.server.admin.schemas import KeyRetire, KeyRotate
from tokenward.server.cli.common import ACTOR, JsonOpt, emit, group, parse, run_admin, when

__all__ = ["app"]

app = group("Signing keys: list, rotate, retire.")


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
    as_json: JsonOpt = False,
) -> None:
    """Publish a new signing key; it signs after the publication delay."""
    spec = parse(KeyRotate, alg=alg, activate_in=activate_in)
    key = run_admin(lambda admin: admin.rotate_key(spec, actor=ACTOR))
    line = f"new {key.alg} key {key.kid}: published now, signs from {when(key.activates_at)}"
    emit(key, as_json, [line])


@app.command("retire")
def retire(
    kid: str,
    force: Annotated[
        bool,
        typer.Option(help="Also remove it from the JWKS now: tokens it signed stop verifying."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Stop signing with a key now (an active key's successor signs at once); it stays
    published until the tokens it signed have expired, unless --force."""
    spec = parse(KeyRetire, force=force)
    key = run_admin(lambda admin: admin.retire_key(kid, force=spec.force, actor=ACTOR))
    line = f"retired {key.alg} key {key.kid}: published until {when(key.removed_at)}"
    emit(key, as_json, [line])
