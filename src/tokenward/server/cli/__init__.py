"""The server's commands (``tokenward serve``, ``apis``, ``clients``, ``keys``, ...), each a
small Typer module, run by the root command (``tokenward.cli``) through :func:`run` only when
invoked. Every administrative command is a thin surface over the admin layer
(``server/admin``)."""

from __future__ import annotations

import importlib

import sqlalchemy as sa
import typer.main  # the server extra: a plain install fails here, and the root command says so

from tokenward.server.settings import ConfigError, load_settings, unknown_variables
from tokenward.server.storage.sql.checks import describe_location

__all__ = ["COMMANDS", "run"]

#: command name -> (module under tokenward.server.cli, its Typer app)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("serve", "serve_app"),
    "migrate": ("serve", "migrate_app"),
    "init": ("init", "init_app"),
    "apis": ("apis", "app"),
    "clients": ("clients", "app"),
    "keys": ("keys", "app"),
    "audit": ("audit", "app"),
    "admins": ("admins", "app"),
    "doctor": ("doctor", "app"),
    "export": ("config", "export_app"),
    "validate": ("config", "validate_app"),
    "apply": ("config", "apply_app"),
}


def run(name: str, args: list[str]) -> object:
    """Run server command ``name`` with its command-line ``args``. A configuration problem
    ends it with one line and exit status 2, never a traceback."""
    for warning in unknown_variables():
        typer.echo(f"warning: {warning}", err=True)
    module, attribute = COMMANDS[name]
    app = getattr(importlib.import_module(f"tokenward.server.cli.{module}"), attribute)
    try:
        return typer.main.get_command(app).main(args=args, prog_name=f"tokenward {name}")
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        typer.echo(f"error: {_database_failure(exc)}", err=True)
        raise SystemExit(2) from None


def _database_failure(exc: sa.exc.DBAPIError) -> str:
    """A database that went away after the start-up checks: where, and the driver's reason."""
    try:
        location = describe_location(load_settings().database_url)
    except ConfigError:
        location = "TOKENWARD_DATABASE_URL"
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
    return f"the database at {location} failed: {reason}"
