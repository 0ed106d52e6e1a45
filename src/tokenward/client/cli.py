"""The body of `tokenward token`: fetch one token and say what to print.

A plain function so the CLI framework stays a thin shell around it; errors are the typed
`TokenError`s of `tokenward.client.errors`, for the shell to turn into a message and exit code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from tokenward.client._assertion import ClientKey
from tokenward.client.manager import TokenManager

__all__ = ["token_command"]


def token_command(
    *,
    issuer: str | None,
    client_id: str,
    client_secret: str | None,
    scopes: Sequence[str],
    resource: str | None,
    auth_method: str | None,
    as_json: bool,
    token_endpoint: str | None = None,
    private_key_file: str | None = None,
    key_id: str | None = None,
) -> str:
    """The access token alone, or (`as_json`) the token response members as JSON."""
    key = ClientKey.from_file(private_key_file, kid=key_id) if private_key_file else None
    with TokenManager(
        issuer=issuer,
        token_endpoint=token_endpoint,
        client_id=client_id,
        client_secret=client_secret,
        client_key=key,
        scopes=scopes,
        resource=resource,
        auth_method=auth_method,
    ) as manager:
        token = manager.get_token()
    if not as_json:
        return token.access_token
    response: dict[str, object] = {
        "access_token": token.access_token,
        "token_type": token.token_type,
    }
    if token.expires_in is not None:
        lifetime = token.expires_in
        response["expires_in"] = int(lifetime) if lifetime.is_integer() else lifetime
    if token.scope is not None:
        response["scope"] = token.scope
    return json.dumps(response, indent=2)
