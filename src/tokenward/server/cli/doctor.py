"""``tokenward doctor``: what this machine's tokenward is configured to use, and whether it works.

It prints the resolved settings (secrets masked, each with where it came from), the database
and its schema, the signing keys and their states, then runs the checks: database reachable
and migrated, pepper and key-encryption key matching the database, every signing key readable,
and the issuer answering at its own discovery URL (RFC 8414 §3) with this database's keys.
It writes nothing. Exit status 0 when every check passes, 1 otherwise (2: invalid settings).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import typer
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from tokenward import __version__
from tokenward.cli.token import ISSUER_FILE
from tokenward.server.cli.common import discovery_url, served_issuer, single, when
from tokenward.server.composition import build_server
from tokenward.server.keys import KeyRing
from tokenward.server.preflight import check_secrets, server_secrets
from tokenward.server.secrets import ServerSecrets
from tokenward.server.settings import FILE_SETTINGS, ConfigError, Settings, load_settings
from tokenward.server.storage.sql.checks import DatabaseProblem, DatabaseState, inspect_database
from tokenward.server.storage.sql.migrate import sync_url

__all__ = ["app"]

app = single("Check the configuration, the database, the keys and the running server.")
HTTP_TIMEOUT = 5.0


@dataclass
class Report:
    """Check results, printed as they come."""

    failures: int = 0
    #: The keys section, printed after the checks.
    keys: list[str] = field(default_factory=list)

    def ok(self, text: str) -> None:
        typer.echo(f"  ok    {text}")

    def fail(self, text: str) -> None:
        self.failures += 1
        typer.echo(f"  FAIL  {text}")

    def note(self, text: str) -> None:
        typer.echo(f"  --    {text}")


def _source(name: str, settings: Settings) -> str:
    variable = f"TOKENWARD_{name.upper()}"
    if variable in os.environ:
        return "environment"
    if name in FILE_SETTINGS and os.environ.get(variable + "_FILE"):
        return f"file {os.environ[variable + '_FILE']}"
    if name in settings.model_fields_set and name not in ("home", "database_url", "secrets_file"):
        return ".env"
    return "default"


def _shown(name: str, value: Any) -> str:
    if isinstance(value, SecretStr):
        return "********"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: ********" for k in value) + "}" if value else "{}"
    if name == "database_url":
        return make_url(sync_url(str(value))).render_as_string(hide_password=True)
    return str(value)


def _with_served_issuer(settings: Settings) -> tuple[Settings, bool]:
    """With ``TOKENWARD_ISSUER`` unset, the issuer ``tokenward serve`` recorded in the home
    (``serve --port 18000``), if any; the flag says it was used."""
    served = served_issuer(settings)
    if served == settings.issuer:
        return settings, False
    return load_settings(issuer=served), True


def _print_settings(settings: Settings, from_home: bool) -> None:
    typer.echo("settings")
    for name in Settings.model_fields:
        value = getattr(settings, name)
        source = _source(name, settings)
        if name == "issuer" and from_home:
            source = f"served, {settings.home_dir / ISSUER_FILE}"
        if name in ("pepper", "key_encryption_key") and value is None and settings.is_sqlite:
            value, source = SecretStr("-"), f"development secrets file {settings.secrets_file}"
        if name == "home" and value is None:
            value = settings.home_dir
        typer.echo(f"  TOKENWARD_{name.upper():<40} {_shown(name, value)}  ({source})")


def _check_database(settings: Settings, report: Report) -> DatabaseState | None:
    try:
        state = inspect_database(settings.database_url)
    except DatabaseProblem as exc:
        report.fail(str(exc))
        return None
    if not state.exists:
        report.fail(f"no database at {state.location}: `tokenward serve` or `migrate` creates it")
        return None
    if not state.current:
        report.fail(
            f"database {state.location} at schema {state.revision or 'none'}, this tokenward "
            f"needs {state.head}: run `tokenward migrate`"
        )
        return None
    report.ok(f"database {state.location} reachable, schema current ({state.revision})")
    return state


def _check_secrets(
    settings: Settings, state: DatabaseState, report: Report
) -> ServerSecrets | None:
    needs_file = settings.pepper is None or settings.key_encryption_key is None
    if settings.is_sqlite and needs_file and not settings.secrets_file.exists():
        text = f"development secrets file {settings.secrets_file} does not exist"
        if state.fingerprints or state.sealed_keys:
            report.fail(text + ": restore it next to the database (docs/backup.md)")
        else:
            report.note(text + " yet (the first `tokenward serve` creates it)")
        return None
    try:
        secrets = server_secrets(settings, state)
        check_secrets(settings, secrets, state, record=False)
    except ConfigError as exc:
        report.fail(str(exc))
        return None
    recorded = "match the database" if state.fingerprints else "not recorded yet"
    report.ok(f"pepper and key-encryption key: {recorded}")
    return secrets


def _check_keys(settings: Settings, secrets: ServerSecrets, report: Report) -> set[str]:
    """Print the keys and their states; return the kids of the active ones."""
    server = build_server(settings, server_secrets=secrets)

    async def read() -> tuple[list[Any], dict[str, str]]:
        try:
            rows = await server.stores.keys.list_keys()
            ring = KeyRing(secrets.encryptor, max_token_ttl=settings.max_token_ttl)
            ring.load(rows, now=int(server.clock()))
            return await server.admin.list_keys(), ring.unreadable
        finally:
            await server.aclose()

    keys, unreadable = asyncio.run(read())
    for key in keys:
        report.keys.append(
            f"  {key.kid}  {key.alg}  {key.state:<8} signs from {when(key.activates_at)}"
        )
    report.keys += [f"  {kid}  UNREADABLE" for kid in sorted(unreadable)]
    for kid, cause in sorted(unreadable.items()):
        report.fail(f"signing key {kid} is not used: {cause}")
    if not keys:
        report.note("no signing key yet (the first `tokenward serve` creates one)")
    elif not unreadable:
        report.ok(f"{len(keys)} signing key{'s' if len(keys) > 1 else ''}, all readable")
    return {k.kid for k in keys if k.state == "active"}


def _check_issuer(settings: Settings, active: set[str], report: Report) -> None:
    url = discovery_url(settings.issuer)
    try:
        metadata = _get_json(url)
        if metadata.get("issuer") != settings.issuer:
            report.fail(f"{url} names issuer {metadata.get('issuer')!r}, not {settings.issuer}")
            return
        published = {k.get("kid") for k in _get_json(str(metadata["jwks_uri"])).get("keys", [])}
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        report.fail(f"the issuer does not answer at {url}: {_http_reason(exc)}")
        return
    report.ok(f"the issuer answers at {url}")
    if active and not active <= published:
        report.fail(
            "the server at the issuer does not publish this database's active key: is it "
            "running with another TOKENWARD_HOME or TOKENWARD_DATABASE_URL?"
        )


def _get_json(url: str) -> dict[str, Any]:
    response = httpx.get(url, timeout=HTTP_TIMEOUT, follow_redirects=False)
    response.raise_for_status()
    data = response.json()
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def _http_reason(exc: Exception) -> str:
    if isinstance(exc, httpx.ConnectError):
        return (
            "connection refused: is `tokenward serve` running with this home? (or set "
            "TOKENWARD_ISSUER to the URL it serves)"
        )
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    return str(exc) or type(exc).__name__


def _step(report: Report, check: Callable[[], Any]) -> Any:
    try:
        return check()
    except ConfigError as exc:
        report.fail(str(exc))
        return None


@app.command()
def doctor() -> None:
    """Print the resolved settings, database, keys; check the issuer answers. Writes nothing."""
    settings, from_home = _with_served_issuer(load_settings())
    typer.echo(f"tokenward {__version__}, home {settings.home_dir}")
    if Path(".env").exists():
        typer.echo(f"settings also read from {Path('.env').absolute()}")
    _print_settings(settings, from_home)
    report = Report()
    typer.echo("checks")
    state = _check_database(settings, report)
    secrets = _check_secrets(settings, state, report) if state else None
    active = _step(report, lambda: _check_keys(settings, secrets, report)) if secrets else set()
    _check_issuer(settings, active or set(), report)
    if report.keys:
        typer.echo("keys")
        typer.echo("\n".join(report.keys))
    problems = report.failures
    typer.echo("all is well" if not problems else f"{problems} problem{'s' * (problems > 1)}")
    raise typer.Exit(1 if problems else 0)
