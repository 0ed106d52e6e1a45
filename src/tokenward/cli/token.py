"""``tokenward token``: fetch one access token with the client library and print it.

Part of the base install: it needs no server code, only ``tokenward.client``.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

__all__ = ["DEFAULT_ISSUER", "ISSUER_FILE", "local_issuer", "token"]

#: The issuer of a local ``tokenward serve`` with default settings.
DEFAULT_ISSUER = "http://127.0.0.1:8000"

#: In the home, the issuer a ``tokenward serve`` without ``TOKENWARD_ISSUER`` last served
#: (``serve --port 18000`` writes ``http://127.0.0.1:18000``).
ISSUER_FILE = "issuer"


def local_issuer() -> str:
    """``TOKENWARD_ISSUER``, else the issuer the local server recorded in its home
    (``TOKENWARD_HOME``, else ``$XDG_DATA_HOME/tokenward``, as the server resolves it), else
    :data:`DEFAULT_ISSUER`."""
    explicit = os.environ.get("TOKENWARD_ISSUER")
    if explicit:
        return explicit
    home = os.environ.get("TOKENWARD_HOME") or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share"),
        "tokenward",
    )
    try:
        recorded = Path(os.path.expanduser(home), ISSUER_FILE).read_text().strip()
    except OSError:
        return DEFAULT_ISSUER
    return recorded or DEFAULT_ISSUER


@click.command()
@click.option("--client-id", envvar="TOKENWARD_CLIENT_ID", required=True, help="Client id.")
@click.option(
    "--client-secret",
    envvar="TOKENWARD_CLIENT_SECRET",
    help="Client secret (prefer the TOKENWARD_CLIENT_SECRET variable: argv is visible).",
)
@click.option(
    "--private-key-file",
    envvar="TOKENWARD_CLIENT_KEY_FILE",
    type=click.Path(exists=True, dir_okay=False),
    help="private_key_jwt: the client's private key, PEM or a JWK as JSON.",
)
@click.option("--key-id", help="The kid the public key is registered under (default: its own).")
@click.option(
    "--issuer",
    help="Issuer URL (default: TOKENWARD_ISSUER, else the local `tokenward serve`'s, any port).",
)
@click.option("--scope", "scopes", multiple=True, help="A scope to request (repeat).")
@click.option("--resource", help="The API (RFC 8707 resource).")
@click.option(
    "--auth-method",
    type=click.Choice(
        ["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt"]
    ),
    help="Default: private_key_jwt with --private-key-file, else client_secret_basic.",
)
@click.option("--token-endpoint", help="Skip discovery and use this token endpoint.")
@click.option("--json", "as_json", is_flag=True, help="Print the token response as JSON.")
def token(
    client_id: str,
    client_secret: str | None,
    private_key_file: str | None,
    key_id: str | None,
    issuer: str | None,
    scopes: tuple[str, ...],
    resource: str | None,
    auth_method: str | None,
    token_endpoint: str | None,
    as_json: bool,
) -> None:
    """Get an access token (client library) and print it, for shell scripts and curl."""
    from tokenward.client import TokenError
    from tokenward.client.cli import token_command

    if issuer is None and token_endpoint is None:
        issuer = local_issuer()
    try:
        out = token_command(
            issuer=issuer,
            client_id=client_id,
            client_secret=client_secret,
            scopes=scopes,
            resource=resource,
            auth_method=auth_method,
            as_json=as_json,
            token_endpoint=token_endpoint,
            private_key_file=private_key_file,
            key_id=key_id,
        )
    except (TokenError, ValueError, OSError) as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
    click.echo(out)
