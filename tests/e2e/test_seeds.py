"""The five provider guides in /work/shared/seeds, replayed against a real ``tokenward serve``.

One server for the module (``tokenward serve`` on loopback, SQLite); the API and clients are
created with the real CLI exactly as the README tells users to. Each seed's request is sent the
way the guide sends it (real ``curl`` for seed 000 and 003 when curl is installed), then the
access token is verified as a resource server would: RFC 8414 discovery (both
``/.well-known/oauth-authorization-server`` and ``/.well-known/openid-configuration``), the
JWKS at ``jwks_uri``, the signature, ``iss``, ``aud``, ``sub``/``client_id``, ``scope``,
``exp - iat == expires_in``.

The last test reads the server log: one JSON audit event per issuance and per failure, with
client_id / scope / aud / jti / outcome / reason, and no secret, token or assertion anywhere
(checklist 2.4 and section 0 item 2).

Not replayed: seed 004's second request, client authentication with a JWT assertion
(private_key_jwt), which is not part of this issue.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.e2e.helpers import Discovered, audit_events, discover, until, verify_access_token
from tests.support.tokenward_server import ServerProcess, TokenwardEnv, tokenward_server

API = "https://api.example.com"
HELLO_API = "https://example.com/hello_world"
FORM = "application/x-www-form-urlencoded"
CURL = shutil.which("curl")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


@dataclass
class Sent:
    """One token request of this module and what came back (for the audit test)."""

    client_id: str | None
    status: int
    body: dict[str, Any]
    secrets: list[str]


@dataclass
class Live:
    env: TokenwardEnv
    server: ServerProcess
    billing: dict[str, Any]
    shipping: dict[str, Any]
    curity: dict[str, Any]
    sent: list[Sent] = field(default_factory=list)

    @property
    def token_url(self) -> str:
        return f"{self.server.url}/token"

    def record(self, client_id: str | None, response: httpx.Response, *used: str) -> dict[str, Any]:
        body: dict[str, Any] = response.json()
        self.sent.append(Sent(client_id, response.status_code, body, list(used)))
        return body


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    env = TokenwardEnv(home=tmp_path_factory.mktemp("seeds"))
    with tokenward_server(env) as server:
        env.cli(
            "apis", "create", "--identifier", API, "--name", "Example API",
            "--scope", "countries:read", "--scope", "shipments:write",
        )  # fmt: skip
        env.cli("apis", "create", "--identifier", HELLO_API, "--name", "Hello", "--scope", "read")
        billing = env.cli_json(
            "clients", "create", "--name", "billing", "--scope", "countries:read"
        )
        shipping = env.cli_json(
            "clients", "create", "--name", "shipping",
            "--scope", "countries:read", "--scope", "shipments:write",
        )  # fmt: skip
        curity = env.cli_json(
            "clients", "create", "--name", "server", "--client-id", "server",
            "--secret", "Secr3t!", "--token-ttl", "299", "--scope", "read",
        )  # fmt: skip
        yield Live(env, server, billing, shipping, curity)


@pytest.fixture(scope="module")
def found(live: Live) -> Discovered:
    oauth = discover(live.server.url)
    oidc = discover(live.server.url, "openid-configuration")
    # RFC 9068 §4 / AT-09: both documents agree, and so do their key sets.
    assert oidc.metadata == oauth.metadata
    assert {k.kid for k in oidc.keys} == {k.kid for k in oauth.keys}
    assert oauth.metadata["issuer"] == live.env.issuer
    assert oauth.metadata["token_endpoint"] == f"{live.env.issuer}/token"
    return oauth


def check_token(
    body: dict[str, Any], found: Discovered, *, client_id: str, aud: str, scope: str, ttl: int = 900
) -> None:
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == ttl
    assert "refresh_token" not in body
    _, claims = verify_access_token(body["access_token"], found)
    assert claims["sub"] == claims["client_id"] == client_id
    assert claims["aud"] == aud
    assert claims["scope"] == scope
    assert claims["exp"] - claims["iat"] == ttl


def run_curl(*args: str) -> tuple[int, dict[str, Any]]:
    assert CURL is not None
    out = subprocess.run(
        [CURL, "-sS", "-w", "\n%{http_code}", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    body, _, status = out.rpartition("\n")
    return int(status), json.loads(body)


def test_cli_created_clients(live: Live) -> None:
    for client in (live.billing, live.shipping):
        assert UUID.fullmatch(client["client_id"])  # seed 002: UUID client ids
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", client["client_secret"])  # TE-27
    assert live.curity["client_id"] == "server"
    assert live.curity["token_ttl"] == 299


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_seed_000_curl_basic_and_urlencoded_scope(live: Live, found: Discovered) -> None:
    """curl -X POST URL -H 'Content-Type: ...' -u 'id:secret' -d 'grant_type=...'
    --data-urlencode 'scope=countries:read'"""
    cid, secret = live.billing["client_id"], live.billing["client_secret"]
    status, body = run_curl(
        "-X", "POST", live.token_url, "-H", f"Content-Type: {FORM}", "-u", f"{cid}:{secret}",
        "-d", "grant_type=client_credentials", "--data-urlencode", "scope=countries:read",
    )  # fmt: skip
    live.sent.append(Sent(cid, status, body, [secret]))
    assert status == 200, body
    assert body["scope"] == "countries:read"
    check_token(body, found, client_id=cid, aud=API, scope="countries:read")


def test_seed_000_same_request_with_httpx(live: Live, found: Discovered) -> None:
    cid, secret = live.billing["client_id"], live.billing["client_secret"]
    response = httpx.post(
        live.token_url,
        auth=(cid, secret),
        content=b"grant_type=client_credentials&scope=countries%3Aread",
        headers={"Content-Type": FORM},
    )
    body = live.record(cid, response, secret)
    assert response.status_code == 200, body
    check_token(body, found, client_id=cid, aud=API, scope="countries:read")


def test_seed_001_hand_built_basic_two_scopes_via_openid_discovery(live: Live) -> None:
    """authorization: Basic base64(client_id:client_secret), lower-case header names, two
    space-separated scopes; the token endpoint found through openid-configuration (seed 001's
    openid-client sample does exactly that)."""
    found = discover(live.server.url, "openid-configuration")
    cid, secret = live.shipping["client_id"], live.shipping["client_secret"]
    basic = base64.b64encode(f"{cid}:{secret}".encode()).decode()
    response = httpx.post(
        found.metadata["token_endpoint"],
        headers={"authorization": f"Basic {basic}", "content-type": FORM},
        content=b"grant_type=client_credentials&scope=countries:read%20shipments:write",
    )
    body = live.record(cid, response, secret)
    assert response.status_code == 200, body
    assert body["scope"] == "countries:read shipments:write"
    check_token(body, found, client_id=cid, aud=API, scope="countries:read shipments:write")


def test_seed_002_json_body_with_uuid_client_and_star(live: Live, found: Discovered) -> None:
    cid, secret = live.shipping["client_id"], live.shipping["client_secret"]
    payload = {
        "grant_type": "client_credentials",
        "client_id": cid,
        "client_secret": secret,
        "scope": "*",
    }
    response = httpx.post(
        live.token_url, content=json.dumps(payload), headers={"Content-Type": "application/json"}
    )
    body = live.record(cid, response, secret)
    assert response.status_code == 200, body
    assert response.headers["content-type"] == "application/json"
    assert isinstance(body["expires_in"], int)
    check_token(body, found, client_id=cid, aud=API, scope="countries:read shipments:write")


@pytest.mark.parametrize(
    ("form", "scope"),
    [
        ("grant_type=client_credentials&client_id=server&client_secret=Secr3t!", "read"),
        ("grant_type=client_credentials&client_id=server&client_secret=Secr3t!&scope=read", "read"),
    ],
)
def test_seed_003_body_credentials_and_client_lifetime(
    live: Live, found: Discovered, form: str, scope: str
) -> None:
    """-d 'grant_type=client_credentials&client_id=server&client_secret=Secr3t![&scope=read]'
    -> "expires_in": 299 (the client's configured lifetime)."""
    if CURL is not None:
        status, body = run_curl(
            "-X", "POST", live.token_url, "-H", f"content-type: {FORM}", "-d", form
        )
        live.sent.append(Sent("server", status, body, ["Secr3t!"]))
    else:
        response = httpx.post(live.token_url, content=form.encode(), headers={"content-type": FORM})
        status, body = response.status_code, live.record("server", response, "Secr3t!")
    assert status == 200, body
    assert body["scope"] == scope
    check_token(body, found, client_id="server", aud=HELLO_API, scope=scope, ttl=299)


def test_seed_004_basic_with_charset_parameter(live: Live, found: Discovered) -> None:
    """-H 'Authorization: Basic <base64Encoded clientid:secret>'
    -H 'Content-Type: application/x-www-form-urlencoded;charset=UTF-8'
    -d 'grant_type=client_credentials&scope=<scope value>'"""
    cid, secret = live.billing["client_id"], live.billing["client_secret"]
    basic = base64.b64encode(f"{cid}:{secret}".encode()).decode()
    response = httpx.post(
        live.token_url,
        headers={"Authorization": f"Basic {basic}", "Content-Type": f"{FORM};charset=UTF-8"},
        content=b"grant_type=client_credentials&scope=countries:read",
    )
    body = live.record(cid, response, secret)
    assert response.status_code == 200, body
    check_token(body, found, client_id=cid, aud=API, scope="countries:read")


def test_failures_over_the_wire(live: Live) -> None:
    """A few refusals, exact bodies, through the real server (the in-process tables cover the
    rest); they also feed the audit test below."""
    cid = live.billing["client_id"]
    wrong = "wrong-" + secrets.token_urlsafe(24)
    unknown = httpx.post(
        live.token_url, auth=("nosuch-client", wrong), data={"grant_type": "client_credentials"}
    )
    assert live.record("nosuch-client", unknown, wrong) == {
        "error": "invalid_client",
        "error_description": "client authentication failed",
    }
    assert unknown.status_code == 401
    assert unknown.headers["www-authenticate"] == 'Basic realm="tokenward"'
    bad_secret = httpx.post(
        live.token_url,
        data={"grant_type": "client_credentials", "client_id": cid, "client_secret": wrong},
    )
    assert live.record(cid, bad_secret, wrong)["error"] == "invalid_client"
    assert bad_secret.status_code == 401
    scope = httpx.post(
        live.token_url,
        auth=(cid, live.billing["client_secret"]),
        data={"grant_type": "client_credentials", "scope": "shipments:write"},
    )
    assert live.record(cid, scope, live.billing["client_secret"]) == {
        "error": "invalid_scope",
        "error_description": "requested scope is not granted to this client",
    }
    assertion = (
        "eyJhbGciOiJFUzI1NiJ9." + secrets.token_urlsafe(40) + "." + secrets.token_urlsafe(40)
    )
    asserted = httpx.post(
        live.token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": "nosuch-client",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    )
    assert live.record("nosuch-client", asserted, assertion)["error"] == "invalid_client"
    in_query = httpx.post(
        f"{live.token_url}?client_secret={quote(wrong)}",
        auth=(cid, live.billing["client_secret"]),
        data={"grant_type": "client_credentials"},
    )
    assert (
        live.record(None, in_query, wrong)["error_description"]
        == "credentials must not be sent in the URL"
    )


def test_audit_log_one_event_per_request_and_no_secrets(live: Live) -> None:
    """Every token request of this module produced exactly one audit event, in order."""
    if not live.sent:
        pytest.skip("run with the module's other tests")

    def complete() -> bool:
        return len(audit_events(live.server.log())) >= len(live.sent)

    until(complete, what="the audit events being flushed")
    log = live.server.log()
    events = audit_events(log)
    assert len(events) == len(live.sent)
    for sent, event in zip(live.sent, events, strict=True):
        assert event["client_id"] == sent.client_id
        if sent.status == 200:
            claims = json.loads(
                base64.urlsafe_b64decode(sent.body["access_token"].split(".")[1] + "==")
            )
            assert event["event"] == "token.issued"
            assert event["outcome"] == "success"
            assert event["jti"] == claims["jti"]
            assert event["scope"] == sent.body["scope"]
            assert event["aud"] == claims["aud"]
        else:
            assert event["event"] == "token.failed"
            assert event["outcome"] == "failure"
            assert event["error"] == sent.body["error"]
            assert event["reason"]
    # No secret, token or assertion - nor an 8-character prefix of one - anywhere in the log.
    forbidden: set[str] = set()
    for client in (live.billing, live.shipping, live.curity):
        if "client_secret" in client:
            forbidden.add(client["client_secret"])
    for sent in live.sent:
        forbidden.update(sent.secrets)
        if "access_token" in sent.body:
            token = sent.body["access_token"]
            forbidden.add(token)
            forbidden.update(token.split(".")[1:])
    for value in sorted(forbidden):
        assert value not in log
        if len(value) >= 8:
            assert value[:8] not in log, f"a prefix of a secret or token is in the log: {value[:8]}"
