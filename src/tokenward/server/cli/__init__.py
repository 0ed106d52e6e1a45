"""The server's commands (``tokenward serve``, ``apis``, ``clients``, ``keys``, ...), each a
small Typer module, run by the root command (``tokenward.cli``) through :func:`run` only when
invoked. Every administrative command is a thin surface over the admin layer
(``server/admin``)."""

from __future__ import annotations

import importlib

import typer.main  # the server extra: a plain install fails here, and the root command says so

__all__ = ["COMMANDS", "run"]

#: command name -> (module under tokenward.server.cli, its Typer app)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("serve", "serve_app"),
    "migrate": ("serve", "migrate_app"),
    "apis": ("apis", "app"),
    "clients": ("clients", "app"),
    "keys": ("keys", "app"),
    "audit": ("audit", "app"),
    "admins": ("admins", "app"),
}


def run(name: str, args: list[str]) -> object:
    """Run server command ``name`` with its command-line ``args``."""
    module, attribute = COMMANDS[name]
    app = getattr(importlib.import_module(f"tokenward.server.cli.{module}"), attribute)
    return typer.main.get_command(app).main(args=args, prog_name=f"tokenward {name}")
