"""What every administrative command shares: building the server once, running one admin
operation, turning typed-input and admin errors into one line, and printing views."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

import typer
from pydantic import BaseModel, ValidationError

from tokenward.cli.token import ISSUER_FILE
from tokenward.protocol.metadata import well_known_paths
from tokenward.server.admin import Admin, AdminError, NotFound
from tokenward.server.admin.schemas import describe
from tokenward.server.composition import Server, build_server
from tokenward.server.preflight import preflight
from tokenward.server.settings import Settings, load_settings

__all__ = [
    "ACTOR",
    "JsonOpt",
    "checked_server",
    "discovery_url",
    "emit",
    "fail",
    "group",
    "parse",
    "run_admin",
    "run_on_server",
    "served_issuer",
    "single",
    "when",
]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

#: The actor recorded in the audit trail for changes made with the CLI.
ACTOR = "cli"
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def single(help_text: str) -> typer.Typer:
    """The app of one command (``tokenward serve``)."""
    return typer.Typer(
        help=help_text,
        no_args_is_help=False,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
        add_completion=False,
    )


def group(help_text: str) -> typer.Typer:
    """A command group (``tokenward audit list``): stays a group even with one subcommand,
    which Typer would otherwise collapse into the command itself."""
    app = single(help_text)
    app.info.no_args_is_help = True

    @app.callback()
    def _group() -> None:
        pass

    return app


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def parse(model: type[M], **values: Any) -> M:
    """Build a typed admin input from command-line values (``None`` means not given)."""
    try:
        return model(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        raise fail(describe(exc)) from None


def checked_server(*, writes: bool) -> Server:
    """The server built from the environment's settings, after the start-up checks
    (``server/preflight.py``). Read-only commands (``writes=False``) never create or migrate
    the database."""
    settings = load_settings()
    checked = preflight(settings, writes=writes)
    if checked.created_database:
        typer.echo(
            f"note: created a new database at {checked.state.location} "
            f"(TOKENWARD_HOME={settings.home_dir})",
            err=True,
        )
    return build_server(settings, server_secrets=checked.secrets)


def run_on_server(work: Callable[[Server], Awaitable[T]], *, writes: bool = True) -> T:
    """Run one operation on the server built from the settings (see :func:`checked_server`):
    a thing not found is exit status 2, any other refusal of the admin layer status 1."""
    server = checked_server(writes=writes)

    async def go() -> T:
        try:
            return await work(server)
        finally:
            await server.aclose()

    try:
        return asyncio.run(go())
    except NotFound as exc:
        raise fail(exc.message, 2) from None
    except AdminError as exc:
        raise fail(exc.message) from None


def run_admin(work: Callable[[Admin], Awaitable[T]], *, writes: bool = True) -> T:
    """Run one admin operation against the configured database."""
    return run_on_server(lambda server: work(server.admin), writes=writes)


def _plain(data: BaseModel | Sequence[BaseModel] | dict[str, Any]) -> Any:
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    if isinstance(data, dict):
        return data
    return [item.model_dump(mode="json") for item in data]


def emit(
    data: BaseModel | Sequence[BaseModel] | dict[str, Any], as_json: bool, lines: list[str]
) -> None:
    """Print ``data`` as JSON, or the human ``lines``."""
    if as_json:
        typer.echo(json.dumps(_plain(data), indent=2, sort_keys=True))
    else:
        typer.echo("\n".join(lines))


def when(value: Any) -> str:
    """A view's datetime for human output: ISO 8601 UTC, or ``-``."""
    if value is None:
        return "-"
    text: str = value.isoformat()
    return text.replace("+00:00", "Z")


def served_issuer(settings: Settings) -> str:
    """The issuer of this home's server: ``TOKENWARD_ISSUER`` when set, else the one
    ``tokenward serve`` recorded in the home (it follows ``--port``), else the default."""
    if "issuer" in settings.model_fields_set:
        return settings.issuer
    try:
        recorded = (settings.home_dir / ISSUER_FILE).read_text().strip()
    except OSError:
        return settings.issuer
    return recorded or settings.issuer


def discovery_url(issuer: str) -> str:
    """RFC 8414 §3.1: the well-known segment goes between the host and the issuer's path."""
    parts = urlsplit(issuer)
    return f"{parts.scheme}://{parts.netloc}{well_known_paths(parts.path)[0]}"
