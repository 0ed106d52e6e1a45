"""A real ``tokenward serve`` with its admin API set up by ``tokenward init``, and httpx clients
holding admin tokens: what an operator with curl has; and an operator signed in to its console
over HTTP, reading what the rendered pages show."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
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


# -- the console, as an operator's browser sees it over HTTP ----------------------------------

OPERATOR_PASSWORD = "correct horse battery staple"


def add_operator(env: TokenwardEnv, name: str, role: str = "admin") -> None:
    """``tokenward admins create NAME --password-stdin``, as an operator runs it."""
    proc = subprocess.run(
        [sys.executable, "-m", "tokenward", "admins", "create", name, "--role", role,
         "--password-stdin"],
        input=OPERATOR_PASSWORD + "\n", env=env.environ(), cwd=env.home, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def _found(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    assert match is not None, f"{pattern} not on the page: {text[:300]}"
    return match.group(1)


@contextlib.contextmanager
def console_session(site: AdminSite, name: str) -> Iterator[Console]:
    """An operator signed in to the console of ``site`` (cookies kept, redirects not followed)."""
    with httpx.Client(base_url=f"{site.url}/admin", timeout=20) as http:
        token = _found(r'name="login_token" value="([^"]+)"', http.get("/login").text)
        form = {"login_token": token, "name": name, "password": OPERATOR_PASSWORD}
        signed_in = http.post("/login", data=form)
        assert signed_in.status_code == 303, signed_in.text
        csrf = _found(r'<meta name="csrf-token" content="([^"]+)"', http.get("/").text)
        yield Console(http, csrf)


@dataclass
class Console:
    http: httpx.Client
    csrf: str

    def page(self, path: str, **params: str) -> HtmlPage:
        response = self.http.get(path, params=params)
        assert response.status_code == 200, response.text
        return HtmlPage.of(response.text)

    def post(self, path: str, **form: str | list[str]) -> httpx.Response:
        """A form as the page posts it, with the session's CSRF token."""
        return self.http.post(path, data={"csrf_token": self.csrf, **form})


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]


class HtmlPage(HTMLParser):
    """What a rendered page shows: its ``h1``, its ``dt``/``dd`` facts, its tables (cell text,
    whitespace collapsed), its ``input`` elements and its links."""

    CAPTURED = ("h1", "dt", "dd", "th", "td")

    def __init__(self) -> None:
        super().__init__()
        self.h1 = ""
        self.facts: dict[str, str] = {}
        self.tables: list[Table] = []
        self.inputs: list[dict[str, str | None]] = []
        self.links: list[str] = []
        self._capturing: list[tuple[str, list[str]]] = []
        self._term = ""

    @classmethod
    def of(cls, html: str) -> HtmlPage:
        page = cls()
        page.feed(html)
        page.close()
        return page

    def table(self, *headers: str) -> Table:
        """The table whose header row starts with ``headers``."""
        found = [t for t in self.tables if t.headers[: len(headers)] == list(headers)]
        assert len(found) == 1, [t.headers for t in self.tables]
        return found[0]

    def values(self, name: str) -> list[str]:
        """The values of the inputs called ``name``, in page order."""
        return [str(i["value"]) for i in self.inputs if i.get("name") == name]

    def checked(self, name: str) -> list[str]:
        """The values of the checked checkboxes called ``name``."""
        return sorted(
            str(i["value"]) for i in self.inputs if i.get("name") == name and "checked" in i
        )

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "table":
            self.tables.append(Table([], []))
        elif tag == "tr" and self.tables:
            self.tables[-1].rows.append([])
        elif tag == "input":
            self.inputs.append(values)
        elif tag == "a" and values.get("href"):
            self.links.append(str(values["href"]))
        if tag in self.CAPTURED:
            self._capturing.append((tag, []))

    def handle_data(self, data: str) -> None:
        for _, parts in self._capturing:
            parts.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr" and self.tables and not self.tables[-1].rows[-1]:
            self.tables[-1].rows.pop()  # the header row
        if not self._capturing or self._capturing[-1][0] != tag:
            return
        _, parts = self._capturing.pop()
        text = " ".join("".join(parts).split())
        if tag == "h1":
            self.h1 = text
        elif tag == "dt":
            self._term = text
        elif tag == "dd":
            self.facts[self._term] = text
        elif tag == "th" and self.tables:
            self.tables[-1].headers.append(text)
        elif tag == "td" and self.tables:
            self.tables[-1].rows[-1].append(text)
