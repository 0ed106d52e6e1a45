"""A real ``tokenward serve`` with its admin API set up by ``tokenward init``, and httpx clients
holding admin tokens: what an operator with curl has."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from tests.support.tokenward_server import ServerProcess, TokenwardEnv, tokenward_server

ADMIN = "tokenward:admin"
READ = "tokenward:admin:read"


@dataclass
class AdminSite:
    env: TokenwardEnv
    server: ServerProcess
    client_id: str
    secret: str

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def audience(self) -> str:
        return f"{self.env.issuer}/admin/api"

    def token_response(self, client_id: str, secret: str, **form: str) -> httpx.Response:
        data = {"grant_type": "client_credentials", **form}
        return httpx.post(f"{self.url}/token", data=data, auth=(client_id, secret), timeout=10)

    def token(self, client_id: str | None = None, secret: str | None = None, **form: str) -> str:
        response = self.token_response(client_id or self.client_id, secret or self.secret, **form)
        assert response.status_code == 200, response.text
        access_token: str = response.json()["access_token"]
        return access_token

    def api(self, token: str | None = None) -> httpx.Client:
        """A client of the admin API; with the admin client's token unless one is given."""
        headers = {"authorization": f"Bearer {token or self.token()}"}
        return httpx.Client(base_url=f"{self.url}/admin/api", headers=headers, timeout=20)

    def new_client(self, admin: httpx.Client, **spec: Any) -> tuple[str, str]:
        """Create a client through the API; its id and secret."""
        response = admin.post("/clients", json={"name": "test client", **spec})
        assert response.status_code == 201, response.text
        created = response.json()
        return created["client"]["client_id"], created["secret"]["client_secret"]


def api_path(identifier: str) -> str:
    """``/apis/{identifier}``, the URI percent-encoded."""
    return "/apis/" + quote(identifier, safe="")


def assert_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    """The admin API's one error shape."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["error"] == error
    assert isinstance(body["message"], str)
    assert set(body) <= {"error", "message", "details"}
    return body


def init(env: TokenwardEnv) -> tuple[str, str]:
    """``tokenward init --json``: the first admin client's id and secret."""
    setup = json.loads(env.cli("init", "--json").stdout)
    return setup["created"]["client"]["client_id"], setup["created"]["secret"]["client_secret"]


@contextlib.contextmanager
def admin_site(env: TokenwardEnv) -> Iterator[AdminSite]:
    client_id, secret = init(env)
    with tokenward_server(env) as server:
        yield AdminSite(env, server, client_id, secret)
