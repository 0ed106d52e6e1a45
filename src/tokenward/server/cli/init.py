"""``tokenward init``: register the admin REST API and create its first admin client.

The client's secret is printed once. A second ``init`` creates nothing and says what exists.
``tokenward serve`` does the same on its first start (:func:`hand_over` decides where the
secret goes: a terminal, never a log).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer

from tokenward.server.admin.bootstrap import (
    ADMIN_READ_SCOPE,
    ADMIN_SCOPE,
    IssuerMismatch,
    set_up_admin_api,
)
from tokenward.server.admin.views import AdminApiSetup, NewSecretView
from tokenward.server.cli.common import ACTOR, JsonOpt, emit, fail, run_admin, served_issuer
from tokenward.server.settings import Settings, load_settings

__all__ = ["credential_lines", "hand_over", "init_app", "setup_lines"]

init_app = typer.Typer(
    help="Register the admin REST API and create its first admin client.",
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _new_secret(setup: AdminApiSetup) -> NewSecretView:
    assert setup.created is not None
    assert setup.created.secret is not None
    return setup.created.secret


def credential_lines(setup: AdminApiSetup) -> list[str]:
    """The new admin client's credentials and how to use them (shown once)."""
    new = _new_secret(setup)
    return [
        f"admin API:     {setup.api.identifier}",
        f"client_id:     {new.client_id}",
        f"client_secret: {new.client_secret}",
        "(the secret is shown once; store it now)",
        f'get a token:   curl -s -u "{new.client_id}:$SECRET" -d grant_type=client_credentials '
        f"{setup.token_endpoint}",
    ]


def setup_lines(setup: AdminApiSetup) -> list[str]:
    if setup.created is not None:
        return credential_lines(setup)
    return [
        f"admin API {setup.api.identifier} exists (scopes {', '.join(setup.api.scopes)})",
        f"admin clients: {', '.join(setup.admin_clients)}",
        "nothing created; `tokenward clients secrets add CLIENT_ID` gives a client a new secret",
    ]


@init_app.command()
def init(as_json: JsonOpt = False) -> None:
    """Register the admin API (audience {issuer}/admin/api, scopes tokenward:admin and
    tokenward:admin:read) and, if no client holds tokenward:admin, create one and print its
    secret once."""
    issuer = served_issuer(load_settings())
    try:
        setup = run_admin(lambda admin: set_up_admin_api(admin, issuer=issuer, actor=ACTOR))
    except IssuerMismatch as exc:
        raise fail(str(exc), 2) from None
    emit(setup, as_json, setup_lines(setup))


def _write_private(path: Path, setup: AdminApiSetup) -> None:
    new = _new_secret(setup)
    document = {
        "client_id": new.client_id,
        "client_secret": new.client_secret,
        "token_endpoint": setup.token_endpoint,
        "audience": setup.api.identifier,
        "scope": f"{ADMIN_SCOPE} {ADMIN_READ_SCOPE}",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(document, handle, indent=2)


def hand_over(setup: AdminApiSetup, settings: Settings) -> None:
    """Show a newly created admin client's secret once, and never where logs go: on the
    terminal when stdout or stderr is one, else in ``admin_credentials_file`` (mode 0600),
    whose path (not the secret) is printed."""
    if setup.created is None or setup.created.secret is None:
        return
    terminal = next((s for s in (sys.stdout, sys.stderr) if s.isatty()), None)
    if terminal is not None:
        print("\n".join(["first admin client created:", *credential_lines(setup)]), file=terminal)
        return
    path = settings.admin_credentials_file
    _write_private(path, setup)
    typer.echo(
        f"first admin client {setup.created.client.client_id} created: no terminal to print its "
        f"secret on, so it is in {path} (mode 0600); read it, then delete the file",
        err=True,
    )
