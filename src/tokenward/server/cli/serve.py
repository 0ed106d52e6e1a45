"""``tokenward serve`` and ``tokenward migrate``."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from tokenward.server.cli.common import fail, group
from tokenward.server.composition import build_server, load_server_secrets, prepare_database
from tokenward.server.settings import Settings

__all__ = ["migrate_app", "serve_app"]

serve_app = group("Run the authorization server.")
migrate_app = group("Upgrade the database schema.")


@serve_app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (uvicorn).")] = 1,
) -> None:
    """Run the authorization server (uvicorn + uvloop + httptools)."""
    import uvicorn

    settings = Settings()
    try:
        settings.check_transport()
    except ValueError as exc:
        raise fail(str(exc)) from None
    prepare_database(settings)
    load_server_secrets(settings)  # create the dev secrets file once, before workers fork
    _ensure_first_key(settings)
    typer.echo(
        f"tokenward serving {settings.issuer} on http://{host}:{port} "
        f"({workers} worker{'s' if workers > 1 else ''})\n"
        f"  discovery: {settings.issuer}/.well-known/oauth-authorization-server\n"
        f"  next: tokenward apis create --identifier https://api.example.com "
        f"--name 'Example API' --scope countries:read\n"
        f"        tokenward clients create --name billing --scope countries:read --json",
        err=True,
    )
    uvicorn.run(
        "tokenward.server.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="tokenward.server.http.limits:LimitedHttpToolsProtocol",  # header limits
        proxy_headers=False,  # the app decides whom to trust (TOKENWARD_TRUSTED_PROXIES)
        access_log=False,
        log_level="warning",
        timeout_keep_alive=30,
        limit_concurrency=settings.max_concurrent_connections,  # 503: http/limits.py
    )


def _ensure_first_key(settings: Settings) -> None:
    server = build_server(settings)

    async def first() -> None:
        try:
            await server.admin.ensure_key(settings.signing_alg)
        finally:
            await server.aclose()

    asyncio.run(first())


@migrate_app.command()
def migrate() -> None:
    """Upgrade the database schema to the latest version."""
    from tokenward.server.storage.sql.migrate import upgrade

    changed = upgrade(Settings().database_url)
    typer.echo("schema upgraded" if changed else "schema already current")
