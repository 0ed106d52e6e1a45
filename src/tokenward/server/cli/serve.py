"""``tokenward serve`` and ``tokenward migrate``.

Before the server starts, ``serve`` resolves the settings it runs with
(:func:`effective_settings`: the issuer follows ``--port`` when ``TOKENWARD_ISSUER`` is unset),
checks the port, the database and the secrets (``server/preflight.py``), and prints where its
state lives, once. Every problem found there is one line and exit status 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
from pathlib import Path
from typing import Annotated

import typer

from tokenward.cli.token import ISSUER_FILE
from tokenward.server.cli.common import discovery_url, group
from tokenward.server.composition import build_server
from tokenward.server.preflight import Checked, preflight
from tokenward.server.secrets import ServerSecrets
from tokenward.server.settings import ConfigError, Settings, is_loopback, load_settings
from tokenward.server.storage.sql.checks import DatabaseProblem, inspect_database
from tokenward.server.storage.sql.migrate import upgrade

__all__ = [
    "effective_settings",
    "migrate_app",
    "record_issuer",
    "serve_app",
    "worker_environment",
]

serve_app = group("Run the authorization server.")
migrate_app = group("Upgrade the database schema.")

#: Hosts that bind every interface (not a choice made here: the operator's ``--host``).
_WILDCARD = ("0.0.0.0", "::", "")  # noqa: S104


def effective_settings(host: str, port: int) -> Settings:
    """The settings ``serve --host HOST --port PORT`` runs with. With ``TOKENWARD_ISSUER``
    unset the issuer is ``http://HOST:PORT`` on a loopback host (``http://127.0.0.1:PORT``
    when binding every interface); any other host needs the issuer set. Raises
    :class:`ConfigError`."""
    settings = load_settings()
    if "issuer" not in settings.model_fields_set:
        settings = load_settings(issuer=_local_issuer(host, port))
    settings.check_transport()
    return settings


def _local_issuer(host: str, port: int) -> str:
    if host in _WILDCARD:
        host = "127.0.0.1"
    if not is_loopback(host):
        raise ConfigError(
            f"TOKENWARD_ISSUER is not set: serving on {host} needs the URL clients use, e.g. "
            "TOKENWARD_ISSUER=https://auth.example.com"
        )
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def worker_environment(settings: Settings) -> dict[str, str]:
    """What every worker process must see to build the same settings as ``serve``: the
    effective issuer and the resolved home."""
    return {"TOKENWARD_ISSUER": settings.issuer, "TOKENWARD_HOME": str(settings.home_dir)}


def check_port(host: str, port: int) -> None:
    """Refuse a port another process listens on, before anything starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            reason = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be used: {exc}"
            raise ConfigError(f"port {port} on {host} {reason} (--host, --port)") from None


def _notes(settings: Settings, host: str) -> list[str]:
    notes = []
    if host in _WILDCARD and "issuer" not in settings.model_fields_set:
        notes.append(
            f"warning: TOKENWARD_ISSUER is unset, so the issuer is {settings.issuer}: only this "
            "machine can use it; set TOKENWARD_ISSUER to the URL clients use"
        )
    old = Path("var/tokenward.db").absolute()
    if old.exists() and settings.sqlite_path != old:
        notes.append(
            f"warning: {old} is from an earlier tokenward (state relative to the working "
            f"directory); this server keeps its state in {settings.home_dir}: to keep that "
            f"database, stop the server and move var/tokenward.db* and var/secrets.json there"
        )
    if Path(".env").exists():
        notes.append(f"settings also read from {Path('.env').absolute()}")
    return notes


def _secrets_line(settings: Settings, secrets: ServerSecrets) -> str:
    if secrets.dev_file is not None:
        return f"development, {secrets.dev_file} (keep it with the database)"
    return "TOKENWARD_PEPPER and TOKENWARD_KEY_ENCRYPTION_KEY"


def _announce(settings: Settings, checked: Checked, host: str, port: int, workers: int) -> None:
    database = checked.state.location + f" (schema {checked.state.revision})"
    if checked.created_database:
        database += ", created now"
    lines = [
        f"tokenward serving {settings.issuer} on {host}:{port} "
        f"({workers} worker{'s' if workers > 1 else ''})",
        f"  home:      {settings.home_dir}",
        f"  database:  {database}",
        f"  secrets:   {_secrets_line(settings, checked.secrets)}",
        f"  discovery: {discovery_url(settings.issuer)}",
        "  next: tokenward apis create --identifier https://api.example.com "
        "--name 'Example API' --scope countries:read",
        "        tokenward clients create --name billing --scope countries:read --json",
        *_notes(settings, host),
    ]
    typer.echo("\n".join(lines), err=True)


@serve_app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (uvicorn).")] = 1,
) -> None:
    """Run the authorization server (uvicorn + uvloop + httptools)."""
    import uvicorn

    settings = effective_settings(host, port)
    check_port(host, port)
    checked = preflight(settings, writes=True)
    _ensure_first_key(settings, checked.secrets)
    _announce(settings, checked, host, port, workers)
    record_issuer(settings)
    os.environ.update(worker_environment(settings))
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


def record_issuer(settings: Settings) -> None:
    """Write the issuer served into the home (``issuer``), where ``tokenward token`` and
    ``tokenward doctor`` in another shell find it when ``TOKENWARD_ISSUER`` is unset there:
    ``make serve PORT=18000`` then needs nothing else. Skipped when the home does not exist (a
    PostgreSQL deployment without a home) or is read-only."""
    home = settings.home_dir
    if home.is_dir():
        with contextlib.suppress(OSError):
            (home / ISSUER_FILE).write_text(settings.issuer + "\n")


def _ensure_first_key(settings: Settings, secrets: ServerSecrets) -> None:
    server = build_server(settings, server_secrets=secrets)

    async def first() -> None:
        try:
            await server.admin.ensure_key(settings.signing_alg)
        finally:
            await server.aclose()

    asyncio.run(first())


@migrate_app.command()
def migrate() -> None:
    """Upgrade the database schema to the latest version (creating a SQLite database)."""
    settings = load_settings()
    try:
        state = inspect_database(settings.database_url, create=True)
        if state.unknown_revision:
            raise ConfigError(
                f"the database at {state.location} has schema revision {state.revision}, "
                f"newer than this tokenward's ({state.head}): upgrade tokenward"
            )
        changed = upgrade(settings.database_url)
    except DatabaseProblem as exc:
        raise ConfigError(str(exc)) from None
    done = "upgraded to" if changed else "already at"
    typer.echo(f"schema {done} {state.head}: {state.location}")
