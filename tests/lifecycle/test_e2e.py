"""The lifecycle against a real ``tokenward serve --workers 2``, driven by the real CLI, on
SQLite and PostgreSQL.

Checklist: CA-14 / C4 (20 concurrent copies of one assertion across two worker processes ->
exactly one success), RV-06 (a revocation is seen by every worker at once), C9 (disable and
``clients revoke-tokens`` make every token inactive at once), CA-22 (the CLI refuses bad keys).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.lifecycle.harness import AnyKey, assertion_form, mint, new_key, public_jwks
from tests.support.tokenward_server import ServerProcess, TokenwardEnv, tokenward_server

API = "https://api.example.com"
OPAQUE = "https://opaque.example.com"
SECRETS = {"TOKENWARD_PEPPER": "p" * 40, "TOKENWARD_KEY_ENCRYPTION_KEY": "cd" * 32}


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> TokenwardEnv:
    env = TokenwardEnv(home=tmp_path)
    if not database_url.startswith("sqlite"):
        env.database_url = database_url
        env.extra.update(SECRETS)
    return env


@pytest.fixture
def server(env: TokenwardEnv) -> Iterator[ServerProcess]:
    env.cli("apis", "create", "--identifier", API, "--name", "API", "--scope", "read")
    env.cli(
        "apis", "create", "--identifier", OPAQUE, "--name", "Opaque", "--scope", "o:read",
        "--token-format", "opaque",
    )  # fmt: skip
    with tokenward_server(env, workers=2) as running:
        yield running


def _assertion_client(env: TokenwardEnv) -> tuple[str, AnyKey]:
    key = new_key()
    path = env.home / "keys.json"
    path.write_text(json.dumps(public_jwks(key)))
    client = env.cli_json(
        "clients", "create", "--name", "signer", "--scope", "read",
        "--auth-method", "private_key_jwt", "--jwks-file", str(path),
    )  # fmt: skip
    assert client["assertion_alg"] == "ES256"
    assert "client_secret" not in client
    return client["client_id"], key


def _claims(client_id: str, issuer: str) -> dict[str, object]:
    now = int(time.time())
    return {
        "iss": client_id,
        "sub": client_id,
        "aud": issuer,
        "iat": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
    }


def test_replay_under_concurrency_two_workers(env: TokenwardEnv, server: ServerProcess) -> None:
    client_id, key = _assertion_client(env)
    assertion = mint(key, _claims(client_id, env.issuer))
    form = {"grant_type": "client_credentials", **assertion_form(assertion)}

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=20)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as http:
            return await asyncio.gather(*(http.post("/token", data=form) for _ in range(20)))

    responses = asyncio.run(burst())
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [401] * 19, [r.text for r in responses]
    assert {r.json()["error"] for r in responses if r.status_code == 401} == {"invalid_client"}


def _introspect_everywhere(server: ServerProcess, token: str, auth: httpx.BasicAuth) -> set[bool]:
    """Introspect several times over fresh connections, so both workers answer."""
    seen = set()
    for _ in range(6):
        with httpx.Client(base_url=server.url) as http:
            body = http.post("/introspect", data={"token": token}, auth=auth).json()
        assert "active" in body, body
        seen.add(body["active"])
    return seen


def test_revocation_revoke_tokens_and_disable(env: TokenwardEnv, server: ServerProcess) -> None:
    owner = env.cli_json(
        "clients", "create", "--name", "owner", "--scope", "read", "--scope", "o:read"
    )
    bystander = env.cli_json("clients", "create", "--name", "other", "--scope", "read")
    rs = env.cli_json(
        "clients", "create", "--name", "rs", "--introspect", API, "--introspect", OPAQUE
    )
    assert rs["introspect_apis"] == sorted([API, OPAQUE])
    rs_auth = httpx.BasicAuth(rs["client_id"], rs["client_secret"])
    owner_auth = httpx.BasicAuth(owner["client_id"], owner["client_secret"])

    def token(auth: httpx.BasicAuth, scope: str) -> str:
        response = httpx.post(
            f"{server.url}/token", data={"grant_type": "client_credentials", "scope": scope},
            auth=auth,
        )  # fmt: skip
        assert response.status_code == 200, response.text
        value: str = response.json()["access_token"]
        return value

    jwt_token, opaque_token = token(owner_auth, "read"), token(owner_auth, "o:read")
    assert opaque_token.startswith("tw_at_")
    assert _introspect_everywhere(server, jwt_token, rs_auth) == {True}
    assert _introspect_everywhere(server, opaque_token, rs_auth) == {True}

    revoked = httpx.post(f"{server.url}/revoke", data={"token": jwt_token}, auth=owner_auth)
    assert revoked.status_code == 200
    assert _introspect_everywhere(server, jwt_token, rs_auth) == {False}
    assert _introspect_everywhere(server, opaque_token, rs_auth) == {True}

    out = env.cli("clients", "revoke-tokens", owner["client_id"]).stdout
    assert f"revoked every token of {owner['client_id']}" in out
    assert _introspect_everywhere(server, opaque_token, rs_auth) == {False}
    assert env.cli_json("clients", "list")  # the CLI still works against the shared database

    other_auth = httpx.BasicAuth(bystander["client_id"], bystander["client_secret"])
    other_token = token(other_auth, "read")
    assert _introspect_everywhere(server, other_token, rs_auth) == {True}
    env.cli("clients", "disable", bystander["client_id"])
    assert _introspect_everywhere(server, other_token, rs_auth) == {False}


def test_cli_refuses_private_keys(env: TokenwardEnv) -> None:
    path = env.home / "private.json"
    path.write_text(json.dumps({"keys": [dict(new_key().as_dict(private=True))]}))
    proc = env.cli(
        "clients", "create", "--name", "bad", "--auth-method", "private_key_jwt",
        "--jwks-file", str(path), check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "private or symmetric key material" in proc.stderr
