"""``examples/countries_api.py`` run as users run it: a real uvicorn process against a real
``tokenward serve``, with the API and clients created by the real CLI and tokens obtained by
``tokenward.client`` (``TokenManager`` + ``httpx.Client(auth=HttpxAuth(...))``).

Checked over HTTP: the right scope passes (200 / 201); the wrong scope is 403
``insufficient_scope``; no token is a bare 401 challenge; a token signed by a foreign key (with
the server's own ``kid`` and a past ``exp``) and a tampered token are 401 ``invalid_token``.
Then ``tokenward keys rotate --activate-in 0 --force``: new tokens carry the new ``kid``, the
example API's verifier picks the key up by its one unknown-``kid`` JWKS refetch, and tokens
signed by the old key keep working because the old key is still published.

A second tokenward server holds an API created with ``--token-format opaque``; the example API
is given the credentials of a client registered with ``--introspect`` and checks the opaque
tokens by RFC 7662 introspection, including a token of a client disabled after issuance.

The forged tokens keep the server's real ``kid`` on purpose: an unknown ``kid`` would spend the
verifier's refetch cooldown (10 s) and make the rotation test wait.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from tests.e2e.helpers import until
from tests.lifecycle.harness import assertion_form, mint, new_key, public_jwks
from tests.server.harness import b64decode
from tests.support.live import free_port
from tests.support.tokenward_server import (
    LoggedProcess,
    ServerProcess,
    TokenwardEnv,
    tokenward_server,
)
from tokenward.client import HttpxAuth, Token, TokenManager

REPO = Path(__file__).resolve().parents[2]
AUDIENCE = "https://api.example.com"
OPAQUE_AUDIENCE = "https://opaque.example.com"
SCOPES = ("--scope", "countries:read", "--scope", "shipments:write")
SHIPMENT = {"country": "fr", "weight_kg": 2.5}


class ExampleApi(LoggedProcess):
    """``uvicorn examples.countries_api:app`` on a free loopback port, in its own session."""

    def __init__(self, home: Path, environ: dict[str, str]) -> None:
        self.port = free_port()
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TOKENWARD_", "API_", "INTROSPECTION_"))
        }
        env.update(environ)
        argv = [sys.executable, "-m", "uvicorn", "examples.countries_api:app"]
        super().__init__(
            [*argv, "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            cwd=REPO,
            log_path=home / f"example-api-{self.port}.log",
            url=f"http://127.0.0.1:{self.port}",
            ready_path="/openapi.json",
            name="the example API",
        )


@contextlib.contextmanager
def example_api(home: Path, **environ: str) -> Iterator[ExampleApi]:
    api = ExampleApi(home, environ)
    try:
        yield api
    finally:
        api.stop()


@dataclass
class Live:
    env: TokenwardEnv
    server: ServerProcess
    api: ExampleApi
    clients: dict[str, dict[str, Any]]

    def manager(self, client: str, *scopes: str) -> TokenManager:
        creds = self.clients[client]
        return TokenManager(
            issuer=self.env.issuer,
            client_id=creds["client_id"],
            client_secret=creds["client_secret"],
            scopes=list(scopes),
        )

    @contextlib.contextmanager
    def session(self, client: str, *scopes: str) -> Iterator[httpx.Client]:
        """An httpx client that gets and attaches ``client``'s tokens by itself."""
        with (
            self.manager(client, *scopes) as tokens,
            httpx.Client(base_url=self.api.url, auth=HttpxAuth(tokens), timeout=10) as http,
        ):
            yield http

    def call(self, method: str, path: str, token: str | None) -> httpx.Response:
        """One request with exactly this bearer token (or none)."""
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        body = SHIPMENT if method == "POST" else None
        return httpx.request(method, self.api.url + path, headers=headers, json=body, timeout=10)


def create_clients(env: TokenwardEnv, *specs: tuple[str, Sequence[str]]) -> dict[str, Any]:
    return {name: env.cli_json("clients", "create", "--name", name, *args) for name, args in specs}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    env = TokenwardEnv(home=tmp_path_factory.mktemp("example-api"))
    with tokenward_server(env) as server:
        env.cli("apis", "create", "--identifier", AUDIENCE, "--name", "Countries", *SCOPES)
        clients = create_clients(
            env,
            ("reader", ["--scope", "countries:read"]),
            ("shipper", ["--scope", "shipments:write"]),
        )
        with example_api(env.home, TOKENWARD_ISSUER=env.issuer, API_AUDIENCE=AUDIENCE) as api:
            yield Live(env, server, api, clients)


def challenge(response: httpx.Response) -> str:
    return response.headers["www-authenticate"]


def kid_of(token: str) -> str:
    kid: str = json.loads(b64decode(token.split(".")[0]))["kid"]
    return kid


def b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def published_kids(live: Live) -> set[str]:
    jwks = httpx.get(f"{live.server.url}/.well-known/jwks.json", timeout=10)
    if jwks.status_code != 200:  # not at the usual place: ask discovery
        meta = httpx.get(f"{live.server.url}/.well-known/oauth-authorization-server", timeout=10)
        jwks = httpx.get(meta.json()["jwks_uri"], timeout=10)
    return {key["kid"] for key in jwks.json()["keys"]}


# -- the API and its /docs -----------------------------------------------------------------------


def test_docs_authorize_button_uses_client_credentials(live: Live) -> None:
    doc = httpx.get(f"{live.api.url}/openapi.json", timeout=10).json()
    (scheme_name, scheme), *_ = doc["components"]["securitySchemes"].items()
    flow = scheme["flows"]["clientCredentials"]
    assert scheme["type"] == "oauth2"
    assert flow["tokenUrl"] == f"{live.env.issuer}/token"
    assert set(flow["scopes"]) == {"countries:read", "shipments:write"}
    assert doc["paths"]["/countries"]["get"]["security"] == [{scheme_name: ["countries:read"]}]
    assert doc["paths"]["/shipments"]["post"]["security"] == [{scheme_name: ["shipments:write"]}]


# -- the right scope, the wrong scope, no token ----------------------------------------------------


def test_right_scope_passes(live: Live) -> None:
    with live.session("reader", "countries:read") as http:
        countries = http.get("/countries")
    assert countries.status_code == 200, countries.text
    assert {"code": "FR", "name": "France"} in countries.json()

    with live.session("shipper", "shipments:write") as http:
        created = http.post("/shipments", json=SHIPMENT)
    assert created.status_code == 201, created.text
    shipment = created.json()
    assert shipment["country"] == "FR"
    assert shipment["created_by"] == live.clients["shipper"]["client_id"]


@pytest.mark.parametrize(
    ("client", "scope", "method", "path", "missing"),
    [
        ("reader", "countries:read", "POST", "/shipments", "shipments:write"),
        ("shipper", "shipments:write", "GET", "/countries", "countries:read"),
    ],
)
def test_wrong_scope_is_403_insufficient_scope(
    live: Live, client: str, scope: str, method: str, path: str, missing: str
) -> None:
    with live.session(client, scope) as http:
        response = http.request(method, path, json=SHIPMENT if method == "POST" else None)
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in challenge(response)
    assert f'scope="{missing}"' in challenge(response)
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(("method", "path"), [("GET", "/countries"), ("POST", "/shipments")])
def test_no_token_is_401_with_a_bare_challenge(live: Live, method: str, path: str) -> None:
    response = live.call(method, path, None)
    assert response.status_code == 401
    assert challenge(response) == f'Bearer realm="{AUDIENCE}"'
    assert "error" not in response.json()


# -- tokens that must not pass -------------------------------------------------------------------


def assert_invalid_token(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in challenge(response)


def test_expired_token_signed_by_a_foreign_key_is_401(live: Live) -> None:
    with live.manager("reader", "countries:read") as tokens:
        real = tokens.get_token().access_token
    now = int(time.time())
    claims = {
        "iss": live.env.issuer,
        "aud": AUDIENCE,
        "sub": live.clients["reader"]["client_id"],
        "client_id": live.clients["reader"]["client_id"],
        "scope": "countries:read shipments:write",
        "iat": now - 3600,
        "exp": now - 1800,
        "jti": secrets.token_hex(16),
    }
    header = {"alg": "ES256", "typ": "at+jwt", "kid": kid_of(real)}
    forged = jwt.encode(header, claims, ECKey.generate_key("P-256"))
    for method, path in [("GET", "/countries"), ("POST", "/shipments")]:
        assert_invalid_token(live.call(method, path, forged))


def test_tampered_token_is_401(live: Live) -> None:
    with live.manager("reader", "countries:read") as tokens:
        token = tokens.get_token().access_token
    assert live.call("GET", "/countries", token).status_code == 200

    header, payload, signature = token.split(".")
    claims = json.loads(b64decode(payload))
    claims["scope"] = "countries:read shipments:write"  # try to grant ourselves more
    escalated = ".".join([header, b64encode(json.dumps(claims).encode()), signature])
    assert_invalid_token(live.call("POST", "/shipments", escalated))

    middle = len(payload) // 2  # one character of the claims changed
    flipped = payload[:middle] + ("A" if payload[middle] != "A" else "B") + payload[middle + 1 :]
    assert_invalid_token(live.call("GET", "/countries", f"{header}.{flipped}.{signature}"))


# -- key rotation (last: it changes the server's keys) -------------------------------------------


def test_key_rotation_new_and_old_tokens_keep_working(live: Live) -> None:
    with live.manager("reader", "countries:read") as tokens:
        old = tokens.get_token()
        assert live.call("GET", "/countries", old.access_token).status_code == 200
        old_kid = kid_of(old.access_token)

        live.env.cli("keys", "rotate", "--activate-in", "0", "--force")

        # The server picks the new key up within its cache refresh; drop the cached token
        # until a fresh one is signed by it.
        fresh: list[Token] = [old]

        def signed_by_new_key() -> bool:
            tokens.invalidate(fresh[0])
            fresh[0] = tokens.get_token()
            return kid_of(fresh[0].access_token) != old_kid

        until(signed_by_new_key, timeout=15, what="a token signed by the new key")
        assert {old_kid, kid_of(fresh[0].access_token)} <= published_kids(live)

        # The example API has never seen the new kid: one JWKS refetch and it passes.
        with httpx.Client(base_url=live.api.url, auth=HttpxAuth(tokens), timeout=10) as http:
            for _ in range(3):
                response = http.get("/countries")
                assert response.status_code == 200, response.text
            assert http.get("/countries").request.headers["authorization"] == (
                f"Bearer {fresh[0].access_token}"
            )

    # The old key is still published, so a token it signed still verifies.
    assert live.call("GET", "/countries", old.access_token).status_code == 200

    # A brand-new manager (another process, say) works too, on the other route.
    with live.session("shipper", "shipments:write") as http:
        created = http.post("/shipments", json=SHIPMENT)
    assert created.status_code == 201, created.text
    assert kid_of(created.request.headers["authorization"].removeprefix("Bearer ")) != old_kid


# -- opaque tokens, checked by introspection ----------------------------------------------------


@pytest.fixture(scope="module")
def opaque_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    env = TokenwardEnv(home=tmp_path_factory.mktemp("example-api-opaque"))
    with tokenward_server(env) as server:
        env.cli(
            "apis", "create", "--identifier", OPAQUE_AUDIENCE, "--name", "Countries (opaque)",
            *SCOPES, "--token-format", "opaque",
        )  # fmt: skip
        clients = create_clients(
            env,
            ("countries-api", ["--introspect", OPAQUE_AUDIENCE]),  # the resource server
            ("reader", ["--scope", "countries:read"]),
            ("doomed", ["--scope", "countries:read"]),
        )
        api_creds = clients["countries-api"]
        with example_api(
            env.home,
            TOKENWARD_ISSUER=env.issuer,
            API_AUDIENCE=OPAQUE_AUDIENCE,
            INTROSPECTION_CLIENT_ID=api_creds["client_id"],
            INTROSPECTION_CLIENT_SECRET=api_creds["client_secret"],
        ) as api:
            yield Live(env, server, api, clients)


def test_opaque_tokens_are_introspected(opaque_live: Live) -> None:
    live = opaque_live
    with live.manager("reader", "countries:read") as tokens:
        token = tokens.get_token().access_token
    assert token.startswith("tw_at_")
    assert "." not in token

    ok = live.call("GET", "/countries", token)
    assert ok.status_code == 200, ok.text
    assert live.call("POST", "/shipments", token).status_code == 403
    assert_invalid_token(live.call("GET", "/countries", "tw_at_" + secrets.token_urlsafe(32)))

    with live.session("reader", "countries:read") as http:
        assert http.get("/countries").status_code == 200


def test_opaque_token_of_a_disabled_client_is_401(opaque_live: Live) -> None:
    live = opaque_live
    with live.manager("doomed", "countries:read") as tokens:
        token = tokens.get_token().access_token
    # Not presented before: the API has no cached "active" answer for it.
    live.env.cli("clients", "disable", live.clients["doomed"]["client_id"])
    assert_invalid_token(live.call("GET", "/countries", token))


# -- a private_key_jwt client, and the `tokenward token` command ----------------------------------


def test_a_private_key_jwt_client_calls_the_api(live: Live) -> None:
    """Seed 004's client: it authenticates with a signed assertion, never a secret."""
    key = new_key("ES256")
    path = live.env.home / "signer-keys.json"
    path.write_text(json.dumps(public_jwks(key)))
    client = live.env.cli_json(
        "clients", "create", "--name", "signer", "--scope", "countries:read",
        "--auth-method", "private_key_jwt", "--jwks-file", str(path),
    )  # fmt: skip
    client_id = client["client_id"]
    now = int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": live.env.issuer,
        "iat": now,
        "exp": now + 60,
        "jti": secrets.token_urlsafe(16),
    }
    form = assertion_form(mint(key, claims), grant_type="client_credentials")
    response = httpx.post(f"{live.server.url}/token", data=form, timeout=10)
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    assert live.call("GET", "/countries", token).status_code == 200
    assert live.call("POST", "/shipments", token).status_code == 403
    replayed = httpx.post(f"{live.server.url}/token", data=form, timeout=10)
    assert replayed.status_code == 401
    assert replayed.json()["error"] == "invalid_client"


def test_the_token_command_prints_a_usable_token(live: Live) -> None:
    reader = live.clients["reader"]
    done = live.env.cli(
        "token", "--client-id", reader["client_id"], "--scope", "countries:read",
        "--issuer", live.env.issuer,
        env={"TOKENWARD_CLIENT_SECRET": reader["client_secret"]},
    )  # fmt: skip
    token = done.stdout.strip()
    assert live.call("GET", "/countries", token).status_code == 200
    refused = live.env.cli(
        "token", "--client-id", reader["client_id"], "--client-secret", "wrong",
        "--issuer", live.env.issuer, check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "invalid_client" in refused.stderr
    assert "wrong" not in refused.stderr
