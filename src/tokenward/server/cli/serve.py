"""``tokenward serve`` and ``tokenward migrate``.

``serve`` checks the settings and the address, upgrades the schema and makes the first key
once, then runs one worker in this process (``--workers 1``) or a supervisor over N forked
workers (``supervisor.py``, ``worker.py``; docs/operations.md).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Annotated

import typer
from sqlalchemy.exc import InterfaceError, OperationalError

from tokenward.server.admin.bootstrap import IssuerMismatch, set_up_admin_api
from tokenward.server.admin.views import AdminApiSetup
from tokenward.server.app import check_settings
from tokenward.server.cli.common import ACTOR, fail, single
from tokenward.server.cli.init import hand_over
from tokenward.server.composition import build_server, load_server_secrets, prepare_database
from tokenward.server.events import configure_logging
from tokenward.server.secrets import ServerSecrets
from tokenward.server.settings import Settings
from tokenward.server.stores import describe_failure
from tokenward.server.supervisor import Supervisor
from tokenward.server.worker import check_address, run_worker

__all__ = ["migrate_app", "serve_app"]

log = logging.getLogger("tokenward.serve")
#: Beyond the drain time, how long a stopping worker may take to flush before it is killed.
STOP_FLUSH_GRACE = 10.0

serve_app = single("Run the authorization server.")
migrate_app = single("Upgrade the database schema.")


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
    settings = Settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    try:
        check_settings(settings)
    except ValueError as exc:
        raise fail(str(exc)) from None
    if problem := check_address(host, port):
        raise fail(problem)
    server_secrets = load_server_secrets(settings)  # once: every worker shares them
    setup = _prepare(settings, server_secrets)
    typer.echo(_banner(settings, host, port, workers), err=True)
    if setup is not None:
        hand_over(setup, settings)
    if workers == 1:
        # One worker is this process: no supervisor to add a hop, a process and a failure mode.
        # Restarting it is the job of what started it (systemd, Kubernetes, a container runtime).
        run_worker(settings, server_secrets, host=host, port=port, supervised=False)
        return
    supervisor = Supervisor(
        functools.partial(
            run_worker, settings, server_secrets, host=host, port=port, supervised=True
        ),
        workers=workers,
        stop_grace=settings.shutdown_drain_seconds + STOP_FLUSH_GRACE,
    )
    raise typer.Exit(supervisor.run())


def _prepare(settings: Settings, server_secrets: ServerSecrets) -> AdminApiSetup | None:
    """Upgrade the schema (``auto_migrate``), make the first key and (with the admin API on)
    its audience and first admin client, once for every worker.

    With PostgreSQL away this is skipped, with one line: the instance starts anyway and its
    workers load keys and registry when the database returns (the schema must then be current:
    run ``tokenward migrate`` in the deploy step, as recommended for several instances).
    """
    try:
        prepare_database(settings)
        return _first_start(settings, server_secrets)
    except IssuerMismatch as exc:
        raise fail(str(exc), 2) from None
    except (OperationalError, InterfaceError) as exc:
        if settings.is_sqlite:
            raise
        log.warning(
            "database unreachable at start (%s): serving anyway; keys and registry load when "
            "it returns",
            describe_failure(exc),
        )
        return None


def _banner(settings: Settings, host: str, port: int, workers: int) -> str:
    admin_docs = f"  admin API: {settings.issuer}/admin/api/docs\n" if settings.admin_api else ""
    return (
        f"tokenward serving {settings.issuer} on http://{host}:{port} "
        f"({workers} worker{'s' if workers > 1 else ''})\n"
        f"  discovery: {settings.issuer}/.well-known/oauth-authorization-server\n"
        f"{admin_docs}"
        f"  next: tokenward apis create --identifier https://api.example.com "
        f"--name 'Example API' --scope countries:read\n"
        f"        tokenward clients create --name billing --scope countries:read --json"
    )


def _first_start(settings: Settings, server_secrets: ServerSecrets) -> AdminApiSetup | None:
    """A signing key, and (with the admin API on) its audience and first admin client."""
    server = build_server(settings, server_secrets=server_secrets)

    async def first() -> AdminApiSetup | None:
        try:
            await server.admin.ensure_key(settings.signing_alg)
            if not settings.admin_api:
                return None
            return await set_up_admin_api(server.admin, issuer=settings.issuer, actor=ACTOR)
        finally:
            await server.aclose()

    return asyncio.run(first())


@migrate_app.command()
def migrate() -> None:
    """Upgrade the database schema to the latest version."""
    from tokenward.server.storage.sql.migrate import upgrade

    changed = upgrade(Settings().database_url)
    typer.echo("schema upgraded" if changed else "schema already current")
