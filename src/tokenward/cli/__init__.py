"""The ``tokenward`` command: a small root that loads each command only when it runs.

``tokenward --help``, ``--version`` and ``tokenward token`` need only the base install
(``pip install tokenward``): they import no server code. The server's commands live in
``tokenward.server.cli`` and need the ``server`` extra; without it they say so in one line.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from tokenward import __version__

__all__ = ["main", "root"]

#: name -> one-line help shown by ``tokenward --help``; run by ``tokenward.server.cli.run``.
SERVER_COMMANDS: dict[str, str] = {
    "serve": "Run the authorization server.",
    "migrate": "Upgrade the database schema.",
    "init": "Register the admin REST API and its first admin client.",
    "apis": "APIs (resource servers) and their scopes.",
    "clients": "Clients, their scopes and secrets.",
    "keys": "Signing keys: list, rotate, retire, delete.",
    "audit": "The audit trail of administrative changes.",
    "admins": "Console operators: create, list, disable, reset-password.",
    "doctor": "Check the settings, database, keys and the running server.",
    "export": "Write the APIs, scopes and clients as YAML (never secrets).",
    "validate": "Check a configuration file without a server.",
    "apply": "Make the server match a configuration file (--dry-run, --prune).",
}
#: name -> (module, attribute, one-line help): commands of the base install.
CLIENT_COMMANDS: dict[str, tuple[str, str, str]] = {
    "token": ("tokenward.cli.token", "token", "Get an access token and print it (client)."),
}
_SERVER_EXTRA = "pip install 'tokenward[server]'"


def _import(name: str, module: str, attribute: str) -> Any:
    try:
        return getattr(importlib.import_module(module), attribute)
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.startswith("tokenward"):
            raise
        click.echo(f"error: `tokenward {name}` needs the server extra: {_SERVER_EXTRA}", err=True)
        sys.exit(2)


class _ServerCommand(click.Command):
    """A server command: its arguments, ``--help`` included, are handed unparsed to
    ``tokenward.server.cli.run``, imported only now."""

    def __init__(self, name: str, help_text: str) -> None:
        super().__init__(
            name,
            help=help_text,
            add_help_option=False,
            context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        )

    def invoke(self, ctx: click.Context) -> Any:
        assert self.name is not None
        run = _import(self.name, "tokenward.server.cli", "run")
        return run(self.name, ctx.args)


class LazyGroup(click.Group):
    """Lists commands from a static table and imports one only to run it."""

    def __init__(self, *args: Any, lazy: dict[str, tuple[str, str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy, *SERVER_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in SERVER_COMMANDS:
            return _ServerCommand(cmd_name, SERVER_COMMANDS[cmd_name])
        if cmd_name in self.lazy:
            module, attribute, _ = self.lazy[cmd_name]
            command: click.Command = _import(cmd_name, module, attribute)
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        helps = {**SERVER_COMMANDS, **{name: row[2] for name, row in self.lazy.items()}}
        rows = [(name, helps[name]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=LazyGroup,
    lazy=CLIENT_COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, "--version", prog_name="tokenward")
def root() -> None:
    """tokenward: OAuth 2.0 client credentials for machine-to-machine APIs."""


def main() -> None:
    root(prog_name="tokenward")
