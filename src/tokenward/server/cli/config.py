"""``tokenward export``, ``tokenward validate FILE`` and ``tokenward apply FILE``: the APIs,
scopes and clients as a YAML file (configuration as code, docs/configuration-as-code.md).

YAML because operators keep such files next to their Kubernetes manifests and Helm values, and
lists of clients with nested scopes and keys read better than TOML's arrays of tables. It is
read with PyYAML's safe loader (no object tags), duplicate keys refused; JSON, a subset of
YAML, is accepted too. The surfaces here only read and write files: the diff and the changes
are ``server/admin/declarative.py`` over the admin layer.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sized
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from tokenward.server.admin import Admin
from tokenward.server.admin.bootstrap import admin_audience
from tokenward.server.admin.declarative import (
    Declaration,
    DeclarationError,
    apply_plan,
    export,
    parse_declaration,
    plan,
)
from tokenward.server.admin.views import NewSecretView
from tokenward.server.cli.common import run_admin, served_issuer, single
from tokenward.server.settings import ConfigError, Settings, load_settings

__all__ = ["apply_app", "export_app", "validate_app"]

export_app = single("Write the APIs, scopes and clients as YAML (never secrets).")
validate_app = single("Check a configuration file without a server.")
apply_app = single("Make the server match a configuration file.")

HEADER = (
    "# tokenward configuration: APIs, scopes and clients (never secrets).\n"
    "# Check it with `tokenward validate FILE`; apply it with `tokenward apply FILE` "
    "(`--dry-run` shows the changes).\n"
)


class _StrictLoader(yaml.SafeLoader):
    """The safe loader, refusing a key given twice (YAML would keep the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def dump(data: dict[str, Any]) -> str:
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return HEADER + body


def _read(path: str) -> tuple[str, Path]:
    if path == "-":
        return sys.stdin.read(), Path.cwd()
    try:
        return Path(path).read_text(encoding="utf-8"), Path(path).absolute().parent
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError(f"cannot read {path}: {reason}") from None


def load_declaration(path: str) -> tuple[Declaration, Path]:
    """Parse and check ``path``; every problem is one line ``PATH: where: what`` (status 2)."""
    text, base = _read(path)
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: {where}{problem}") from None
    try:
        return parse_declaration(data), base
    except DeclarationError as exc:
        _problems(path, exc)
        raise AssertionError("unreachable") from None


def _problems(path: str, exc: DeclarationError) -> None:
    for problem in exc.problems:
        typer.echo(f"error: {path}: {problem}", err=True)
    raise typer.Exit(2)


@export_app.command("export")
def export_command(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file.")
    ] = None,
) -> None:
    """Write the APIs, scopes and clients as YAML: stdout, or --output FILE."""
    settings = load_settings()
    default_alg, own_api = settings.signing_alg, _own_api(settings)
    data = run_admin(
        lambda admin: export(admin, default_alg=default_alg, own_api=own_api), writes=False
    )
    text = dump(data)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        apis, clients = _count(data["apis"], "API"), _count(data["clients"], "client")
        typer.echo(f"wrote {apis} and {clients} to {output}")


@validate_app.command("validate")
def validate_command(
    path: Annotated[str, typer.Argument(help="The file ('-': stdin).", metavar="FILE")],
) -> None:
    """Check a file's structure and that every scope and API a client names is defined in it."""
    declaration, _ = load_declaration(path)
    apis, clients = _count(declaration.apis, "API"), _count(declaration.clients, "client")
    typer.echo(f"{path}: valid ({apis}, {clients})")


def _own_api(settings: Settings) -> str | None:
    """tokenward's own admin API, which no configuration file declares."""
    return admin_audience(served_issuer(settings)) if settings.admin_api else None


def _count(items: Sized, noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def _secret_lines(created: list[NewSecretView]) -> list[str]:
    return [
        f"client_secret of {new.client_id}: {new.client_secret}  (shown once; store it now)"
        for new in created
    ]


@apply_app.command("apply")
def apply_command(
    path: Annotated[str, typer.Argument(help="The file ('-': stdin).", metavar="FILE")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the changes only.")] = False,
    prune: Annotated[
        bool, typer.Option("--prune", help="Also delete APIs and clients the file omits.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Make the server's APIs, scopes and clients match FILE (actor `apply`)."""
    declaration, base = load_declaration(path)
    settings = load_settings()
    default_alg, own_api = settings.signing_alg, _own_api(settings)

    async def work(admin: Admin) -> tuple[list[str], list[NewSecretView]]:
        steps = await plan(
            admin,
            declaration,
            prune=prune,
            default_alg=default_alg,
            environ=os.environ,
            base=base,
            own_api=own_api,
        )
        created = (
            [] if dry_run else await apply_plan(admin, declaration, steps, default_alg=default_alg)
        )
        return [str(c) for c in steps.changes], created

    try:
        changes, created = run_admin(work, writes=not dry_run)
    except DeclarationError as exc:
        _problems(path, exc)
    _report(changes, created, dry_run=dry_run, as_json=as_json)


def _report(
    changes: list[str], created: list[NewSecretView], *, dry_run: bool, as_json: bool
) -> None:
    if as_json:
        secrets = {new.client_id: new.client_secret for new in created}
        typer.echo(
            json.dumps({"changes": changes, "dry_run": dry_run, "secrets": secrets}, indent=2)
        )
        return
    count = f"{len(changes)} change{'s' if len(changes) != 1 else ''}"
    tail = "(dry run: nothing changed)" if dry_run else f"applied {count}"
    lines = changes + _secret_lines(created) + ([tail] if changes else ["no changes"])
    typer.echo("\n".join(lines))
