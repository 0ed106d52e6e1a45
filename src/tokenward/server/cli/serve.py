"""``tokenward serve`` and ``tokenward migrate``.

Before the server starts, ``serve`` resolves the settings it runs with
(:func:`effective_settings`: the issuer follows ``--port`` when ``TOKENWARD_ISSUER`` is unset),
checks the address, the database and the secrets (``server/preflight.py``), makes the first key
and (with the admin API on) its first admin client, and prints where its state lives, once.
Every problem found there is one line and exit status 2, with one exception: a PostgreSQL that
cannot be reached. Then the instance starts anyway, not ready, and its workers load keys and
registry when the database returns (an outage must never keep an instance down; run
``tokenward migrate`` in the deploy step). Then it runs one worker in this process
(``--workers 1``) or a supervisor over N forked workers (``supervisor.py``, ``worker.py``;
docs/operations.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from pathlib import Path
from typing import Annotated

import typer

from tokenward.cli.token import ISSUER_FILE
from tokenward.server.admin.bootstrap import IssuerMismatch, set_up_admin_api
from tokenward.server.admin.views import AdminApiSetup
from tokenward.server.app import check_settings
from tokenward.server.cli.common import ACTOR, discovery_url, single
from tokenward.server.cli.init import hand_over
from tokenward.server.composition import build_server
from tokenward.server.events import configure_logging
from tokenward.server.metrics import prepare_metrics_dir, remove_metrics_dir
from tokenward.server.preflight import Checked, DatabaseUnreachable, preflight, server_secrets
from tokenward.server.secrets import ServerSecrets
from tokenward.server.settings import ConfigError, Settings, is_loopback, load_settings
from tokenward.server.storage.sql.checks import (
    DatabaseProblem,
    describe_location,
    inspect_database,
)
from tokenward.server.storage.sql.migrate import upgrade
from tokenward.server.supervisor import Supervisor
from tokenward.server.worker import check_address, run_worker

__all__ = ["effective_settings", "migrate_app", "record_issuer", "serve_app"]

log = logging.getLogger("tokenward.serve")
#: Beyond the drain time, how long a stopping worker may take to flush before it is killed.
STOP_FLUSH_GRACE = 10.0

serve_app = single("Run the authorization server.")
migrate_app = single("Upgrade the database schema.")

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


def _announce(
    settings: Settings,
    checked: Checked | None,
    secrets: ServerSecrets,
    at: tuple[str, int, int],
) -> None:
    host, port, workers = at
    if checked is None:
        database = f"{describe_location(settings.database_url)} (unreachable: not ready yet)"
    else:
        database = checked.state.location + f" (schema {checked.state.revision})"
        if checked.created_database:
            database += ", created now"
    admin_docs = f"{settings.issuer}/admin/api/docs" if settings.admin_api else "off"
    lines = [
        f"tokenward serving {settings.issuer} on {host}:{port} "
        f"({workers} worker{'s' if workers > 1 else ''})",
        f"  home:      {settings.home_dir}",
        f"  database:  {database}",
        f"  secrets:   {_secrets_line(settings, secrets)}",
        f"  discovery: {discovery_url(settings.issuer)}",
        f"  admin API: {admin_docs}",
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
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes, each with its own socket (SO_REUSEPORT); more than one "
            "runs a supervisor that restarts any that dies.",
        ),
    ] = 1,
) -> None:
    """Run the authorization server (uvicorn + uvloop + httptools)."""
    settings = effective_settings(host, port)
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    if problem := check_address(host, port):
        raise ConfigError(f"{problem} (--host, --port)")
    checked = _checked(settings)
    check_settings(settings)  # past every refusal: its warning is not mixed with an error line
    secrets = checked.secrets if checked is not None else server_secrets(settings)
    setup = _first_start(settings, secrets) if checked is not None else None
    _announce(settings, checked, secrets, (host, port, workers))
    record_issuer(settings)
    if setup is not None:
        hand_over(setup, settings)
    metrics_dir = prepare_metrics_dir(settings)  # before any worker imports prometheus_client
    try:
        raise typer.Exit(_run(settings, secrets, host=host, port=port, workers=workers))
    finally:
        remove_metrics_dir(settings, metrics_dir)


def _run(settings: Settings, secrets: ServerSecrets, *, host: str, port: int, workers: int) -> int:
    if workers == 1:
        # One worker is this process: no supervisor to add a hop, a process and a failure mode.
        # Restarting it is the job of what started it (systemd, Kubernetes, a container runtime).
        run_worker(settings, secrets, host=host, port=port, supervised=False)
        return 0
    supervisor = Supervisor(
        functools.partial(run_worker, settings, secrets, host=host, port=port, supervised=True),
        workers=workers,
        stop_grace=settings.shutdown_drain_seconds + STOP_FLUSH_GRACE,
    )
    return supervisor.run()


def _checked(settings: Settings) -> Checked | None:
    """The start-up checks; None when PostgreSQL cannot be reached (one line; the workers
    load keys and registry when it returns, and ``/readyz`` says so meanwhile)."""
    try:
        return preflight(settings, writes=True)
    except DatabaseUnreachable as exc:
        if settings.is_sqlite:
            raise
        log.warning("%s: serving anyway, not ready until it is reachable", exc)
        return None


def record_issuer(settings: Settings) -> None:
    """Write the issuer served into the home (``issuer``), where ``tokenward token`` and
    ``tokenward doctor`` in another shell find it when ``TOKENWARD_ISSUER`` is unset there:
    ``make serve PORT=18000`` then needs nothing else. Skipped when the home does not exist (a
    PostgreSQL deployment without a home) or is read-only."""
    home = settings.home_dir
    if home.is_dir():
        with contextlib.suppress(OSError):
            (home / ISSUER_FILE).write_text(settings.issuer + "\n")


def _first_start(settings: Settings, secrets: ServerSecrets) -> AdminApiSetup | None:
    """A signing key, and (with the admin API on) its audience and first admin client, once
    for every worker (metrics off: prometheus_client is imported by the workers only)."""
    server = build_server(settings.model_copy(update={"metrics": False}), server_secrets=secrets)

    async def first() -> AdminApiSetup | None:
        try:
            await server.admin.ensure_key(settings.signing_alg)
            if not settings.admin_api:
                return None
            return await set_up_admin_api(server.admin, issuer=settings.issuer, actor=ACTOR)
        except IssuerMismatch as exc:
            raise ConfigError(str(exc)) from None
        finally:
            await server.aclose()

    return asyncio.run(first())


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
