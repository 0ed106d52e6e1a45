"""Issue 8, against real ``tokenward serve`` processes on loopback: the four findings, each with
a test that failed before the change, and the protections that answer them.

1. No existence oracle: an unknown client id (or assertion ``sub``) answered ~250 ms slower
   than a wrong secret (it waited for a registry refresh). Now every failure does the same
   work; a client created on another instance still works at once.
2. No lock-out: 20 wrong secrets from anywhere locked the real client out; the count was per
   worker. Now failures count per (client id, source address) and per source address, shared
   by every worker, and the source is the socket's peer unless a trusted proxy says otherwise.
3. No 500: a lone surrogate in a JSON ``client_secret`` was a 500 for a known id (401 for an
   unknown one). Now it is a 400 at parse time at all three endpoints.
4. Transport limits: huge header lines were served, a trickled body never timed out, a
   repeated parameter's name was echoed without bound.

Source addresses are real: requests are sent from 127.0.0.2 and 127.0.0.3 (loopback, bound by
the client socket), or through a "proxy" at 127.0.0.1 named in ``TOKENWARD_TRUSTED_PROXIES``.
"""

from __future__ import annotations

import base64
import json
import socket
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc.jwk import ECKey

from tests.e2e.helpers import audit_events, read_response, until
from tests.support.tokenward_server import ServerProcess, TokenwardEnv, tokenward_server
from tokenward.client import ClientKey
from tokenward.client._assertion import ASSERTION_TYPE, client_assertion
from tokenward.protocol.params import MAX_BODY_BYTES

API = "https://api.example.com"
FORM = {"grant_type": "client_credentials", "scope": "read"}
INVALID_CLIENT = {"error": "invalid_client", "error_description": "client authentication failed"}


@dataclass
class Live:
    env: TokenwardEnv
    server: ServerProcess
    secret_client: dict[str, Any]
    disabled: dict[str, Any]
    key_client: str
    key: ClientKey
    _clients: dict[str, httpx.Client] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def http(self, source: str = "127.0.0.1") -> httpx.Client:
        """A client whose requests leave from ``source`` (a loopback address)."""
        if source not in self._clients:
            transport = httpx.HTTPTransport(local_address=source)
            self._clients[source] = httpx.Client(transport=transport, timeout=30)
        return self._clients[source]

    def token(
        self, auth: tuple[str, str], *, source: str = "127.0.0.1", **kwargs: Any
    ) -> httpx.Response:
        return self.http(source).post(f"{self.url}/token", data=FORM, auth=auth, **kwargs)

    def assertion(
        self, sub: str, *, key: ClientKey | None = None, source: str = "127.0.0.1"
    ) -> httpx.Response:
        signed = client_assertion(
            client_id=sub, audience=self.env.issuer, key=key or self.key, secret=None
        )
        form = {**FORM, "client_assertion_type": ASSERTION_TYPE, "client_assertion": signed}
        return self.http(source).post(f"{self.url}/token", data=form)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


def key_pair(home: Path, name: str) -> tuple[ClientKey, Path]:
    """A P-256 private key file and the JWKS to register (kid: its thumbprint)."""
    key = ECKey.generate_key("P-256")
    pem = home / f"{name}.pem"
    pem.write_bytes(key.as_pem(private=True))
    client_key = ClientKey.from_file(pem)
    jwks = home / f"{name}.jwks.json"
    public = {**key.as_dict(private=False), "kid": client_key.kid, "alg": "ES256"}
    jwks.write_text(json.dumps({"keys": [public]}))
    return client_key, jwks


def seed(env: TokenwardEnv) -> tuple[dict[str, Any], dict[str, Any], str, ClientKey]:
    env.cli("apis", "create", "--identifier", API, "--name", "API", "--scope", "read")
    secret_client = env.cli_json("clients", "create", "--name", "s", "--scope", "read")
    disabled = env.cli_json("clients", "create", "--name", "d", "--scope", "read")
    env.cli("clients", "disable", disabled["client_id"])
    key, jwks = key_pair(env.home, "pk")
    created = env.cli_json(
        "clients", "create", "--name", "pk", "--scope", "read",
        "--auth-method", "private_key_jwt", "--jwks-file", str(jwks),
    )  # fmt: skip
    return secret_client, disabled, created["client_id"], key


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    env = TokenwardEnv(home=tmp_path_factory.mktemp("hardening"))
    env.extra.update(
        {
            # No poll: whatever a CLI change reaches the server through is the failure path.
            "TOKENWARD_CACHE_REFRESH_SECONDS": "60",
            "TOKENWARD_FAILED_AUTH_LIMIT": "5",
            "TOKENWARD_FAILED_AUTH_LIMIT_PER_ADDRESS": "1000",
            "TOKENWARD_HEADER_TIMEOUT": "1.5",
            "TOKENWARD_BODY_TIMEOUT": "1.5",
            "TOKENWARD_ERROR_REFLECTION_LIMIT": "20",
        }
    )
    secret_client, disabled, key_client, key = seed(env)
    with tokenward_server(env) as server:
        running = Live(env, server, secret_client, disabled, key_client, key)
        yield running
        running.close()


def creds(client: dict[str, Any]) -> tuple[str, str]:
    return client["client_id"], client["client_secret"]


# -- finding 1: no existence oracle -----------------------------------------------------------


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def test_finding1_unknown_ids_answer_as_fast_as_wrong_secrets(live: Live) -> None:
    """Before: an unknown id waited ~250 ms for a registry check; a wrong secret took ~1 ms.
    Interleaved samples, so machine noise hits every case alike; the bound (50 ms) is far
    below the old gap and far above noise. Exact figures: bench/bench_auth_timing.py."""
    client_id = live.secret_client["client_id"]
    cases: dict[str, Callable[[int], httpx.Response]] = {
        "unknown id": lambda i: live.token((f"nosuch-{i}", "x"), source="127.0.0.4"),
        "wrong secret": lambda i: live.token((client_id, f"wrong-{i}"), source=f"127.0.1.{i}"),
        "disabled client": lambda i: live.token(creds(live.disabled), source=f"127.0.4.{i}"),
        "unknown sub": lambda i: live.assertion(f"nosuch-sub-{i}"),
        "bad signature": lambda i: live.assertion(
            live.key_client, key=other_key(live), source=f"127.0.2.{i}"
        ),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for i in range(1, 25):  # one source per request (limit 5): connections made up front
        live.http(f"127.0.1.{i}"), live.http(f"127.0.2.{i}"), live.http(f"127.0.4.{i}")
    for i in range(1, 25):
        for name, send in cases.items():
            started = time.perf_counter()
            response = send(i)
            samples[name].append(time.perf_counter() - started)
            assert response.status_code == 401, (name, response.text)
            assert response.json() == INVALID_CLIENT
    medians = {name: _median_ms(values) for name, values in samples.items()}
    assert max(medians.values()) - min(medians.values()) < 50, medians


_OTHER: list[ClientKey] = []


def other_key(live: Live) -> ClientKey:
    """A key the server does not know, with the registered key's kid: a bad signature."""
    if not _OTHER:
        pem = ECKey.generate_key("P-256").as_pem(private=True)
        _OTHER.append(ClientKey.from_pem(pem, kid=live.key.kid))
    return _OTHER[0]


def test_finding1_a_client_created_on_another_instance_works_at_once(live: Live) -> None:
    """The server does not poll (60 s): a client the CLI (another process) creates, and a
    secret it adds, work at the first request - no sleep, no retry."""
    created = live.env.cli_json("clients", "create", "--name", "late", "--scope", "read")
    assert live.token(creds(created), source="127.0.0.9").status_code == 200
    added = live.env.cli_json("clients", "secrets", "add", created["client_id"])
    second = (created["client_id"], added["client_secret"])
    assert live.token(second, source="127.0.0.9").status_code == 200


# -- finding 2: a throttle that protects the client -------------------------------------------


def test_finding2_a_guesser_does_not_lock_the_client_out(live: Live) -> None:
    """Before: after 20 wrong secrets from anywhere, the right one got 429 too."""
    client_id, secret = creds(live.secret_client)
    for i in range(5):
        assert live.token((client_id, f"guess-{i}"), source="127.0.0.2").status_code == 401
    throttled = live.token((client_id, secret), source="127.0.0.2")
    assert throttled.status_code == 429
    assert throttled.json() == {
        "error": "slow_down",
        "error_description": "too many failed attempts, retry later",
    }
    assert 0 < int(throttled.headers["retry-after"]) <= 2 * 60 + 1
    assert live.token((client_id, secret), source="127.0.0.3").status_code == 200


def test_finding2_unknown_ids_are_throttled_alike(live: Live) -> None:
    statuses = [live.token(("nosuch-x", "x"), source="127.0.0.5").status_code for _ in range(6)]
    assert statuses == [401] * 5 + [429]


def test_finding2_the_count_is_shared_by_every_worker(tmp_path: Path) -> None:
    """Before: each of two workers allowed the full count. Now a worker learns the others'
    counts within a second: after 6 failures spread over both, every worker answers 429."""
    env = TokenwardEnv(home=tmp_path, extra={"TOKENWARD_FAILED_AUTH_LIMIT": "5"})
    env.cli("apis", "create", "--identifier", API, "--name", "API", "--scope", "read")
    client = env.cli_json("clients", "create", "--name", "s", "--scope", "read")
    fresh = httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0))
    with tokenward_server(env, workers=2) as server, fresh:
        url = f"{server.url}/token"
        first = [fresh.post(url, data=FORM, auth=(client["client_id"], "bad")) for _ in range(6)]
        assert {r.status_code for r in first} <= {401, 429}
        time.sleep(2.5)  # past the one-second exchange of counts, on both workers
        later = [fresh.post(url, data=FORM, auth=creds(client)).status_code for _ in range(12)]
        assert set(later) == {429}


@dataclass
class Configured:
    """A server with trusted proxies and CORS origins configured."""

    env: TokenwardEnv
    server: ServerProcess
    client: dict[str, Any]

    def post(self, source: str, forwarded: str, *, right: bool) -> httpx.Response:
        client_id, secret = creds(self.client)
        with httpx.Client(transport=httpx.HTTPTransport(local_address=source)) as http:
            return http.post(
                f"{self.server.url}/token",
                data=FORM,
                auth=(client_id, secret if right else "bad"),
                headers={"X-Forwarded-For": forwarded},
            )


@pytest.fixture(scope="module")
def configured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Configured]:
    env = TokenwardEnv(
        home=tmp_path_factory.mktemp("configured"),
        extra={
            "TOKENWARD_FAILED_AUTH_LIMIT": "3",
            "TOKENWARD_TRUSTED_PROXIES": '["127.0.0.1"]',
            "TOKENWARD_CORS_ALLOWED_ORIGINS": '["https://docs.example"]',
        },
    )
    env.cli("apis", "create", "--identifier", API, "--name", "API", "--scope", "read")
    client = env.cli_json("clients", "create", "--name", "s", "--scope", "read")
    with tokenward_server(env) as server:
        yield Configured(env, server, client)


def test_finding2_the_source_comes_from_a_trusted_proxy_only(configured: Configured) -> None:
    post = configured.post
    # Through the proxy (127.0.0.1), the right-most untrusted hop is the source.
    for _ in range(3):
        assert post("127.0.0.1", "198.51.100.7, 203.0.113.9", right=False).status_code == 401
    assert post("127.0.0.1", "198.51.100.7, 203.0.113.9", right=True).status_code == 429
    assert post("127.0.0.1", "203.0.113.9, 203.0.113.10", right=True).status_code == 200
    # Not from the proxy: the header is ignored, the socket peer is the source.
    for _ in range(3):
        assert post("127.0.0.2", "203.0.113.11", right=False).status_code == 401
    assert post("127.0.0.2", "203.0.113.12", right=True).status_code == 429
    server = configured.server
    until(lambda: len(audit_events(server.log())) >= 9, what="audit flush")
    sources = {e["source"] for e in audit_events(server.log())}
    assert sources == {"203.0.113.9", "203.0.113.10", "127.0.0.2"}


def test_finding2_the_rfc7239_forwarded_header_when_configured(tmp_path: Path) -> None:
    """``TOKENWARD_TRUSTED_PROXY_HEADER=forwarded``: RFC 7239 ``for=`` (an IPv6 address counts
    by its /64), and ``X-Forwarded-For`` is then the client's own words, ignored."""
    env = TokenwardEnv(
        home=tmp_path,
        extra={
            "TOKENWARD_FAILED_AUTH_LIMIT": "2",
            "TOKENWARD_TRUSTED_PROXIES": '["127.0.0.1"]',
            "TOKENWARD_TRUSTED_PROXY_HEADER": "forwarded",
        },
    )
    env.cli("apis", "create", "--identifier", API, "--name", "API", "--scope", "read")
    client_id, secret = creds(env.cli_json("clients", "create", "--name", "s", "--scope", "read"))
    with tokenward_server(env) as server, httpx.Client(timeout=10) as http:

        def post(forwarded: str, password: str) -> int:
            headers = {"Forwarded": forwarded, "X-Forwarded-For": "203.0.113.77"}
            auth = (client_id, password)
            return http.post(
                f"{server.url}/token", data=FORM, auth=auth, headers=headers
            ).status_code

        guesser = 'for="[2001:db8::1]:4711";proto=http'
        assert [post(guesser, "bad"), post(guesser, "bad"), post(guesser, secret)] == [
            401,
            401,
            429,
        ]
        assert post('for="[2001:db8::2]"', secret) == 429  # the same /64
        assert post("for=198.51.100.20, for=127.0.0.1", secret) == 200
        until(lambda: len(audit_events(server.log())) >= 5, what="audit flush")
        sources = [e["source"] for e in audit_events(server.log())]
    assert sources == ["2001:db8::1", "2001:db8::1", "2001:db8::1", "2001:db8::2", "198.51.100.20"]


# -- finding 3: no 500 from any input ---------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["token", "introspect", "revoke"])
@pytest.mark.parametrize("which", ["known", "unknown"])
def test_finding3_a_lone_surrogate_is_a_400(live: Live, endpoint: str, which: str) -> None:
    """Before: 500 for a known client id, 401 for an unknown one."""
    client_id = live.secret_client["client_id"] if which == "known" else "nosuch"
    body = (
        '{"grant_type": "client_credentials", "token": "t", "client_id": "'
        + client_id
        + '", "client_secret": "\\ud800"}'
    )
    response = live.http("127.0.0.6").post(
        f"{live.url}/{endpoint}", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "request contains invalid Unicode",
    }


# -- finding 4: transport limits ---------------------------------------------------------------


def raw_exchange(url: str, data: bytes, *, trickle: float = 0.0) -> tuple[bytes, float]:
    """Send ``data`` on a new socket (one byte per ``trickle`` seconds when set); the whole
    answer until the server closes, and how long that took."""
    host, port = url.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        try:
            if trickle:
                for byte in data:
                    sock.sendall(bytes([byte]))
                    time.sleep(trickle)
            else:
                sock.sendall(data)
        except OSError:
            pass  # the server closed while we were still sending
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer, time.monotonic() - started


@pytest.mark.parametrize("size", [1 << 20, 8 << 20])
def test_finding4_a_huge_header_line_is_431(live: Live, size: int) -> None:
    """Before: a 1, 8 or 32 MiB header line was read and a token issued."""
    client_id, secret = creds(live.secret_client)
    pair = httpx.BasicAuth(client_id, secret)._auth_header
    body = b"grant_type=client_credentials"
    request = (
        b"POST /token HTTP/1.1\r\nHost: x\r\nAuthorization: " + pair.encode() + b"\r\n"
        b"X-Padding: " + b"a" * size + b"\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body
    )
    answer, _ = raw_exchange(live.url, request)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b'"error":"invalid_request"' in answer


def test_finding4_too_many_header_fields_is_431(live: Live) -> None:
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(150))
    answer, _ = raw_exchange(live.url, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]


def test_finding4_a_trickled_body_is_408_and_closed(live: Live) -> None:
    """Before: a body sent at one byte per second was waited for as long as it took."""
    body = b"grant_type=client_credentials&scope=read"
    request = (
        b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    host, port = live.url.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        answer = b""
        for byte in body:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            sock.settimeout(0.25)
            try:
                answer += sock.recv(65536)
            except TimeoutError:
                continue
            if answer:
                break
        sock.settimeout(10)
        while chunk := sock.recv(65536):
            answer += chunk
    elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b'"error_description":"request body not received in time"' in answer
    assert b"connection: close" in answer.lower()
    assert elapsed < 8  # the 1.5 s limit, not the 10 s the whole body would take


def _head(content_type: str, length: int) -> bytes:
    return b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (
        content_type.encode(),
        length,
    )


def test_a_refusal_waits_for_the_body_and_keeps_the_connection(live: Live) -> None:
    """A body sent after the head (as httpx does, in a second write) is read before a refusal
    seen in the head alone. Before: the 400 left at once and the connection closed under the
    body still arriving, so the client could read a reset instead of the answer (a flaky
    failure of test_no_input_gets_a_5xx under load)."""
    body = b"grant_type=client_credentials"
    host, port = live.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(_head("application/x-www-form-urlencoded; charset=latin-1", len(body)))
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(65536)  # no answer before the body
        sock.settimeout(10)
        sock.sendall(body)
        first = read_response(sock)
        assert first.startswith(b"HTTP/1.1 400 "), first
        assert b"only UTF-8 is accepted" in first
        assert b"connection: close" not in first.lower()
        sock.sendall(_head("application/x-www-form-urlencoded", len(body)) + body)
        second = read_response(sock)  # the same connection serves the next request
        assert second.startswith(b"HTTP/1.1 401 "), second


def test_a_body_over_the_limit_is_answered_and_drained_not_reset(live: Live) -> None:
    """A declared length over the limit is refused at once (413); what the client sends after
    the answer is read and dropped, then the server closes: the client reads the whole 413
    and an end of stream, never a reset."""
    too_big = 64 * MAX_BODY_BYTES  # 1 MiB: more than the server reads before it answers
    host, port = live.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        # Head and body in one go: the server answers with most of the body unread. Before:
        # it closed at once, the kernel answered the unread data with a reset, and the
        # client read ECONNRESET (the 413 itself is lost when the reset comes first).
        sock.sendall(_head("application/x-www-form-urlencoded", too_big) + b"a" * too_big)
        answer = read_response(sock)
        assert answer.startswith(b"HTTP/1.1 413 "), answer
        rest = b""
        while chunk := sock.recv(65536):
            rest += chunk
        assert rest == b""  # then the end of the stream


def test_finding4_a_slow_header_is_408(live: Live) -> None:
    answer, elapsed = raw_exchange(
        live.url,
        b"POST /token HTTP/1.1\r\nHost: x\r\nX-Slow: abcdefghijklmnopqrstuvwxyz",
        trickle=0.1,
    )
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert elapsed < 8


def test_finding4_a_reflected_parameter_name_is_capped(live: Live) -> None:
    """Before: a repeated parameter's name came back whole in error_description."""
    name = "n" * 5000
    response = live.http().post(
        f"{live.url}/token",
        content=f"{name}=1&{name}=2",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": f"parameter {'n' * 20}... repeated",
    }


def _head_and_json(answer: bytes) -> tuple[list[bytes], Any]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.lower().split(b"\r\n"), json.loads(body)


def test_a_full_server_answers_503_in_json_with_retry_after(tmp_path: Path) -> None:
    """Past ``max_concurrent_connections`` (uvicorn's ``limit_concurrency``), uvicorn's own
    answer was a plain-text 503 without ``Retry-After``."""
    env = TokenwardEnv(home=tmp_path, extra={"TOKENWARD_MAX_CONCURRENT_CONNECTIONS": "2"})
    get = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    post = b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    with tokenward_server(env) as server:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as held:
            held.sendall(get)  # one connection kept open, its request answered
            assert held.recv(65536).startswith(b"HTTP/1.1 200 ")
            answer, _ = raw_exchange(server.url, post)
            assert answer.startswith(b"HTTP/1.1 503 "), answer[:200]
            lines, document = _head_and_json(answer)
            assert b"retry-after: 1" in lines
            assert b"content-type: application/json" in lines
            assert b"connection: close" in lines
            assert document == {
                "error": "temporarily_unavailable",
                "error_description": "server busy, retry later",
            }
        # The held connection closed: the next request is served again.
        until(
            lambda: raw_exchange(server.url, post)[0].startswith(b"HTTP/1.1 400 "),
            what="a free slot",
        )


# -- what an incident responder sees ---------------------------------------------------------


def test_audit_events_carry_source_request_id_and_credential(live: Live) -> None:
    client_id, secret = creds(live.secret_client)
    ok = live.token((client_id, secret), source="127.0.0.7")
    pk = live.assertion(live.key_client)
    bad = live.token((client_id, "nope"), source="127.0.0.7")
    assert (ok.status_code, pk.status_code, bad.status_code) == (200, 200, 401)
    ids = {r.headers["x-request-id"] for r in (ok, pk, bad)}
    assert len(ids) == 3

    def events() -> dict[str, dict[str, Any]]:
        return {
            e["request_id"]: e
            for e in audit_events(live.server.log())
            if e.get("request_id") in ids
        }

    until(lambda: len(events()) == 3, what="audit flush")
    found = events()
    issued = found[ok.headers["x-request-id"]]
    assert issued["source"] == "127.0.0.7"
    assert issued["secret_id"] == live.secret_client["secret_id"]
    assert found[pk.headers["x-request-id"]]["kid"] == live.key.kid
    failed = found[bad.headers["x-request-id"]]
    assert (failed["event"], failed["source"], failed["reason"]) == (
        "token.failed",
        "127.0.0.7",
        "wrong or expired secret",
    )
    assert "secret_id" not in failed


def test_an_incoming_request_id_is_ignored_from_an_untrusted_peer(live: Live) -> None:
    response = live.token(creds(live.secret_client), headers={"X-Request-Id": "mine-123"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] != "mine-123"


# -- issuance quotas --------------------------------------------------------------------------


def test_a_quota_answers_429_with_retry_after_and_is_audited(live: Live) -> None:
    client = live.env.cli_json(
        "clients", "create", "--name", "q", "--scope", "read", "--quota-per-minute", "2"
    )
    assert client["quota_per_minute"] == 2
    while time.time() % 60 > 57:  # three requests inside one aligned minute
        time.sleep(0.2)
    statuses = [live.token(creds(client), source="127.0.0.8") for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    refused = statuses[2]
    assert refused.json() == {
        "error": "slow_down",
        "error_description": "token quota exceeded; reuse the tokens already issued",
    }
    assert 0 < int(refused.headers["retry-after"]) <= 60
    request_id = refused.headers["x-request-id"]

    def event() -> dict[str, Any] | None:
        found = [e for e in audit_events(live.server.log()) if e.get("request_id") == request_id]
        return found[0] if found else None

    until(lambda: event() is not None, what="audit flush")
    assert event() == {**(event() or {}), "reason": "quota per minute exceeded (2)"}
    updated = live.env.cli_json("clients", "update", client["client_id"], "--no-quotas")
    assert (updated["quota_per_minute"], updated["quota_per_hour"]) == (None, None)


# -- CORS -------------------------------------------------------------------------------------


def test_cors_is_off_by_default(live: Live) -> None:
    response = live.http().options(
        f"{live.url}/token",
        headers={"Origin": "https://docs.example", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 405
    assert "access-control-allow-origin" not in response.headers


def test_cors_for_listed_origins_only(configured: Configured) -> None:
    preflight = {"Access-Control-Request-Method": "POST"}
    auth = creds(configured.client)
    server = configured.server
    with httpx.Client(timeout=10, transport=httpx.HTTPTransport(local_address="127.0.0.3")) as http:
        url = f"{server.url}/token"
        allowed = http.options(url, headers={"Origin": "https://docs.example", **preflight})
        assert allowed.status_code == 204
        assert allowed.headers["access-control-allow-origin"] == "https://docs.example"
        assert allowed.headers["access-control-allow-methods"] == "POST"
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in allowed.headers
        other = http.options(url, headers={"Origin": "https://evil.example", **preflight})
        assert other.status_code == 403
        assert "access-control-allow-origin" not in other.headers
        post = http.post(url, data=FORM, auth=auth, headers={"Origin": "https://docs.example"})
        assert post.status_code == 200
        assert post.headers["access-control-allow-origin"] == "https://docs.example"
        assert "x-request-id" in post.headers["access-control-expose-headers"].lower()
        foreign = http.post(url, data=FORM, auth=auth, headers={"Origin": "https://evil.example"})
        assert foreign.status_code == 200
        assert "access-control-allow-origin" not in foreign.headers
        # Credentials never in the URL, CORS or not.
        query = http.post(
            url + "?client_secret=x", data=FORM, headers={"Origin": "https://docs.example"}
        )
        assert query.status_code == 400
        # Introspection and revocation are not for browsers.
        introspect = http.options(
            f"{server.url}/introspect", headers={"Origin": "https://docs.example", **preflight}
        )
        assert introspect.status_code == 405


# -- no 5xx from any input (hypothesis, against the real server) ------------------------------

RFC_ERRORS = {
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
    "unsupported_token_type",
    "slow_down",
}
NAMES = ["grant_type", "scope", "resource", "client_id", "client_secret", "client_assertion",
         "client_assertion_type", "token", "token_type_hint"]  # fmt: skip
text = st.text(max_size=40)  # any code point, lone surrogates included
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=6,
)
form_body = st.dictionaries(st.sampled_from(NAMES) | text, text, max_size=6).map(
    lambda d: "&".join(
        f"{k}={v}".encode("utf-8", "surrogatepass").decode("latin-1") for k, v in d.items()
    ).encode("latin-1")
)
json_body = st.dictionaries(st.sampled_from(NAMES) | text, json_value, max_size=6).map(
    lambda d: json.dumps(d).encode()
)
raw_body = st.binary(max_size=300)
basic = st.tuples(st.binary(max_size=40), st.binary(max_size=40)).map(
    lambda pair: b"Basic " + base64.b64encode(pair[0] + b":" + pair[1])
)


def _printable(raw: bytes) -> bytes:
    """What an HTTP client can put in a header value (no controls, no edge whitespace)."""
    return bytes(c for c in raw if c >= 0x20 and c != 0x7F).strip()


authorization = st.none() | basic | st.binary(max_size=60).map(lambda b: b"Basic " + _printable(b))
content_type = st.sampled_from(
    [
        "application/x-www-form-urlencoded",
        "application/json",
        "application/json; charset=latin-1",
        "text/plain",
        "",
    ]
)
header_value = st.binary(max_size=40).map(_printable)
extra_headers = st.dictionaries(
    st.sampled_from(["x-forwarded-for", "forwarded", "x-request-id", "origin", "accept"]),
    header_value,
    max_size=3,
)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    endpoint=st.sampled_from(["token", "introspect", "revoke"]),
    body=form_body | json_body | raw_body,
    media=content_type,
    auth=authorization,
    extra=extra_headers,
)
def test_no_input_gets_a_5xx(
    live: Live,
    endpoint: str,
    body: bytes,
    media: str,
    auth: bytes | None,
    extra: dict[str, bytes],
) -> None:
    headers = {name.encode(): value for name, value in extra.items() if value}
    headers[b"content-type"] = media.encode()
    if auth is not None and auth.strip():
        headers[b"authorization"] = auth.strip()
    response = live.http("127.0.3.1").post(
        f"{live.url}/{endpoint}", content=body, headers=list(headers.items())
    )
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/json", response.text
    document = response.json()
    assert document["error"] in RFC_ERRORS, document
