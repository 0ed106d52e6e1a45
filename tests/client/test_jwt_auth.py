"""The client library's JWT client authentication (RFC 7523 §2.2), against two real servers:

* tokenward (``tokenward serve``): private_key_jwt with a key from a PEM file and from a JWK,
  client_secret_jwt, sync and async managers, the httpx adapter, and ``tokenward token``;
* an Authlib authorization server (Flask, run with uvicorn on loopback) that knows nothing of
  tokenward: its ``JWTBearerClientAssertion`` checks ``iss``/``sub``, the issuer as ``aud``,
  ``exp`` and a single-use ``jti``.

Each token request carries a new assertion: both servers refuse a ``jti`` seen before, so the
second request of each test would fail otherwise.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from authlib.integrations.flask_oauth2 import AuthorizationServer  # type: ignore[import-untyped]
from authlib.oauth2.rfc6749 import ClientMixin, grants  # type: ignore[import-untyped]
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion  # type: ignore[import-untyped]
from flask import Flask, jsonify
from joserfc.jwk import ECKey, KeySet, OctKey
from uvicorn.middleware.wsgi import WSGIMiddleware  # type: ignore[attr-defined]

from tests.support.live import LiveServer, free_port
from tests.support.tokenward_server import ServerProcess, TokenwardEnv, tokenward_server
from tokenward.client import AsyncTokenManager, ClientKey, HttpxAuth, TokenManager
from tokenward.client._assertion import ASSERTION_TYPE

API = "https://api.example.com"


@dataclass
class Keys:
    pem: Path
    jwk: dict[str, Any]
    public_jwks: dict[str, Any]


def make_keys(home: Path) -> Keys:
    key = ECKey.generate_key("P-256")
    pem = home / "client.pem"
    pem.write_bytes(key.as_pem(private=True))
    kid = ClientKey.from_file(pem).kid
    public = {**key.as_dict(private=False), "kid": kid, "alg": "ES256"}
    return Keys(pem, dict(key.as_dict(private=True)), {"keys": [public]})


# -- against tokenward --------------------------------------------------------------------


@dataclass
class Tokenward:
    env: TokenwardEnv
    server: ServerProcess
    keys: Keys
    pk_client: str
    hs_client: dict[str, Any]


@pytest.fixture(scope="module")
def tokenward(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tokenward]:
    home = tmp_path_factory.mktemp("jwt-client")
    env = TokenwardEnv(home=home)
    keys = make_keys(home)
    (home / "jwks.json").write_text(json.dumps(keys.public_jwks))
    env.cli("apis", "create", "--identifier", API, "--name", "API", "--scope", "read")
    pk = env.cli_json(
        "clients", "create", "--name", "pk", "--scope", "read",
        "--auth-method", "private_key_jwt", "--jwks-file", str(home / "jwks.json"),
    )  # fmt: skip
    hs = env.cli_json(
        "clients", "create", "--name", "hs", "--scope", "read",
        "--auth-method", "client_secret_jwt",
    )  # fmt: skip
    with tokenward_server(env) as server:
        yield Tokenward(env, server, keys, pk["client_id"], hs)


def test_private_key_jwt_from_a_pem_file(tokenward: Tokenward) -> None:
    key = ClientKey.from_file(tokenward.keys.pem)
    issuer = tokenward.env.issuer
    for _ in range(2):  # two managers, two tokens: two assertions, two jti
        with TokenManager(issuer=issuer, client_id=tokenward.pk_client, client_key=key) as tokens:
            token = tokens.get_token(scopes=["read"])
        assert token.scope == "read"


@pytest.mark.anyio
async def test_private_key_jwt_from_a_jwk_async(tokenward: Tokenward) -> None:
    key = ClientKey.from_jwk(tokenward.keys.jwk)
    assert key.kid == tokenward.keys.public_jwks["keys"][0]["kid"]
    async with AsyncTokenManager(
        issuer=tokenward.env.issuer, client_id=tokenward.pk_client, client_key=key
    ) as tokens:
        first = await tokens.get_token(scopes=["read"])
        second = await tokens.get_token(scopes=["read"], resource=API)
    assert first.access_token != second.access_token


def test_client_secret_jwt_and_the_httpx_adapter(tokenward: Tokenward) -> None:
    client_id, secret = tokenward.hs_client["client_id"], tokenward.hs_client["client_secret"]
    with TokenManager(
        issuer=tokenward.env.issuer,
        client_id=client_id,
        client_secret=secret,
        auth_method="client_secret_jwt",
        scopes=["read"],
    ) as tokens:
        token = tokens.get_token()
        with httpx.Client(auth=HttpxAuth(tokens)) as http:
            # The adapter is used as with a secret: the cached token goes along.
            response = http.get(f"{tokenward.server.url}/.well-known/oauth-authorization-server")
    assert response.request.headers["authorization"] == f"Bearer {token.access_token}"
    assert token.scope == "read"


def test_tokenward_token_with_a_private_key_file(tokenward: Tokenward) -> None:
    proc = subprocess.run(
        [
            sys.executable, "-m", "tokenward", "token",
            "--issuer", tokenward.env.issuer,
            "--client-id", tokenward.pk_client,
            "--private-key-file", str(tokenward.keys.pem),
            "--scope", "read", "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["scope"] == "read"


def test_an_unregistered_key_is_refused(tokenward: Tokenward) -> None:
    stranger = ClientKey.from_pem(ECKey.generate_key("P-256").as_pem(private=True))
    from tokenward.client import TokenRequestError

    with (
        TokenManager(
            issuer=tokenward.env.issuer, client_id=tokenward.pk_client, client_key=stranger
        ) as tokens,
        pytest.raises(TokenRequestError) as refused,
    ):
        tokens.get_token()
    assert refused.value.error == "invalid_client"


def test_configuration_mistakes_are_refused_at_construction(tokenward: Tokenward) -> None:
    key = ClientKey.from_file(tokenward.keys.pem)
    with pytest.raises(ValueError, match="needs client_key"):
        TokenManager(issuer="https://as.example", client_id="c", auth_method="private_key_jwt")
    with pytest.raises(ValueError, match="not both"):
        TokenManager(issuer="https://as.example", client_id="c", client_key=key, client_secret="s")
    with pytest.raises(ValueError, match="needs the issuer"):
        TokenManager(token_endpoint="https://as.example/token", client_id="c", client_key=key)
    assert "kid" in repr(key)
    assert "BEGIN" not in repr(key)


# -- against another authorization server: Authlib ------------------------------------------


class AuthlibClient(ClientMixin):  # type: ignore[misc]
    def __init__(self, client_id: str, key: Any) -> None:
        self.client_id, self.key = client_id, key

    def get_client_id(self) -> str:
        return self.client_id

    def get_allowed_scope(self, scope: str | None) -> str:
        return scope or ""

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return bool(method == JWTBearerClientAssertion.CLIENT_AUTH_METHOD)

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"

    def check_client_secret(self, client_secret: str) -> bool:
        return False  # JWT methods only


class AssertionGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = [JWTBearerClientAssertion.CLIENT_AUTH_METHOD]


def authlib_app(issuer: str, clients: dict[str, AuthlibClient], seen: list[str]) -> Flask:
    app = Flask("authlib-as")
    server = AuthorizationServer(app, query_client=clients.get, save_token=lambda *_: None)
    server.register_grant(AssertionGrant)

    class Assertion(JWTBearerClientAssertion):  # type: ignore[misc]
        def get_audiences(self) -> list[str]:
            return [issuer]

        def validate_jti(self, claims: Any, jti: str) -> bool:
            fresh = jti not in seen
            seen.append(jti)
            return fresh

        def resolve_client_public_key(self, client: AuthlibClient) -> Any:
            return client.key

    server.register_client_auth_method(Assertion.CLIENT_AUTH_METHOD, Assertion())

    @app.post("/token")
    def token() -> Any:
        return server.create_token_response()

    @app.get("/.well-known/oauth-authorization-server")
    def metadata() -> Any:
        return jsonify(issuer=issuer, token_endpoint=f"{issuer}/token")

    return app


def test_against_an_authlib_authorization_server(tmp_path: Path) -> None:
    keys = make_keys(tmp_path)
    secret = "an-hs256-key-of-at-least-32-bytes-0123456789"
    seen: list[str] = []
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    clients = {
        "pk-client": AuthlibClient("pk-client", KeySet.import_key_set(keys.public_jwks)),  # type: ignore[arg-type]
        "hs-client": AuthlibClient("hs-client", OctKey.import_key(secret)),
    }
    live = LiveServer(WSGIMiddleware(authlib_app(issuer, clients, seen)), port=port).start()
    try:
        key = ClientKey.from_file(keys.pem)
        for _ in range(2):
            with TokenManager(issuer=live.url, client_id="pk-client", client_key=key) as tokens:
                assert tokens.get_token().access_token

        async def hs256() -> str:
            async with AsyncTokenManager(
                issuer=live.url,
                client_id="hs-client",
                client_secret=secret,
                auth_method="client_secret_jwt",
            ) as tokens:
                return (await tokens.get_token()).access_token

        assert anyio.run(hs256)
    finally:
        live.stop()
    assert len(seen) == len(set(seen)) == 3  # a new jti each time


def test_the_assertion_request_has_the_rfc_7523_shape(tmp_path: Path) -> None:
    from tokenward.client._config import ClientConfig
    from tokenward.client._wire import token_request

    keys = make_keys(tmp_path)
    config = ClientConfig.build(
        issuer="https://as.example",
        token_endpoint="https://as.example/token",
        client_id="c1",
        client_secret=None,
        client_key=ClientKey.from_file(keys.pem),
        scopes=[],
        resource=None,
        auth_method=None,
    )
    request = token_request(config, "https://as.example/token", config.key(None, None))
    form = dict(item.split("=", 1) for item in (request.body or b"").decode().split("&"))
    assert form["client_assertion_type"] == ASSERTION_TYPE.replace(":", "%3A")
    assert "authorization" not in {k.lower() for k in request.headers}
    header, claims = (_json(part) for part in form["client_assertion"].split(".")[:2])
    assert header == {"alg": "ES256", "kid": keys.public_jwks["keys"][0]["kid"], "typ": "JWT"}
    assert claims["iss"] == claims["sub"] == "c1"
    assert claims["aud"] == "https://as.example"
    assert claims["exp"] - claims["iat"] == 60
    assert len(claims["jti"]) >= 32


def _json(segment: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
