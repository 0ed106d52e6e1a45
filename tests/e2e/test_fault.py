"""The fault test: two ``tokenward serve --workers 2`` instances on one real PostgreSQL, under a
bounded load, while the database is stopped, a worker is killed, and the database comes back.

Load: eight client threads, each with its own keep-alive connection (httpx), four per
instance: two ask for JWTs with a known client, one for opaque tokens (whose row needs the
database) with a known client, one with a new unknown client id each time. Every answer is
checked and counted:

* **right**: a JWT whose signature verifies against the JWKS and whose claims name the client
  and the API; an opaque token; for the unknown ids, the RFC 6749 ``invalid_client`` 401; or,
  for anything, a clean 503 (``temporarily_unavailable``, ``Retry-After``). Zero answers may
  be anything else (a 500, a 401 for a known client, a token that does not verify).
* **lost**: no answer at all (a transport error). Only requests the killed worker had taken
  may be lost: those in flight on its connections, and connections waiting in its accept
  queue, which the kernel resets when it closes the dead worker's listening socket (new
  connections can land there from the kill until then; ``/proc`` tells when the victim holds
  no socket any more, tests/support/procfs.py). So every lost request must be on instance A,
  between the kill and one second after the victim's sockets are gone (that second is for a
  busy client thread to record it); none on instance B, none later.

Timeline: load for a moment; stop PostgreSQL (``pg_ctl stop -m immediate``: every connection
cut); kill one worker of instance A with SIGKILL and see its replacement start while the
database is down; start PostgreSQL again; then wait, without restarting anything, until both
instances are ready on every worker and every kind of request is served again. JWTs must have
been issued during the outage (from the cache) on both instances. A third instance, C,
started while the database is down, must start (``/livez``), say it is not ready, and become
ready once the database is back.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from joserfc.jwk import KeySet

from tests.server.harness import KEK, PEPPER, verify
from tests.support.postgres import StoppablePostgres
from tests.support.procfs import children, holds_sockets, listeners, wait_for
from tests.support.tokenward_server import ServerProcess, TokenwardEnv, tokenward_server

API = "https://api.example.com"
UNAVAILABLE = {
    "error": "temporarily_unavailable",
    "error_description": "the service is temporarily unavailable",
}
INVALID_CLIENT = {"error": "invalid_client", "error_description": "client authentication failed"}

pytestmark = pytest.mark.slow


@dataclass
class Answer:
    at: float
    kind: str
    status: int


@dataclass
class Tally:
    answers: list[Answer] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    lost: list[tuple[float, str, str]] = field(default_factory=list)  # (when, server, error)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def served(self, kind: str, *, since: float, status: int = 200) -> int:
        with self.lock:
            return sum(
                1 for a in self.answers if (a.kind, a.status) == (kind, status) and a.at >= since
            )

    def during(self, kind: str, start: float, end: float) -> set[int]:
        with self.lock:
            return {a.status for a in self.answers if a.kind == kind and start < a.at < end}


Request = Callable[[httpx.Client], httpx.Response]
Check = Callable[[httpx.Response], "str | None"]


@dataclass
class Load:
    """Client threads, each on its own keep-alive connection, issuing tokens until stopped."""

    tally: Tally = field(default_factory=Tally)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def add(self, kind: str, server: ServerProcess, request: Request, check: Check) -> None:
        def run() -> None:
            with httpx.Client(base_url=server.url, timeout=15) as http:
                while not self.stop.is_set():
                    self._one(kind, server, http, request, check)
                    time.sleep(0.005)

        self.threads.append(threading.Thread(target=run, name=kind, daemon=True))

    def _one(self, kind: str, server: ServerProcess, http: httpx.Client, request: Request,
             check: Check) -> None:  # fmt: skip
        try:
            response = request(http)
        except httpx.TransportError as exc:
            with self.tally.lock:
                self.tally.lost.append((time.monotonic(), server.url, f"{kind}: {exc!r}"))
            return
        problem = check(response)
        with self.tally.lock:
            self.tally.answers.append(Answer(time.monotonic(), kind, response.status_code))
            if problem:
                self.tally.wrong.append(f"{kind}: {problem}")

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


def clean_503(response: httpx.Response) -> str | None:
    if response.json() == UNAVAILABLE and response.headers.get("retry-after") == "1":
        return None
    return f"unclean 503: {response.text} {dict(response.headers)}"


def jwt_check(client_id: str, keys: KeySet) -> Check:
    def check(response: httpx.Response) -> str | None:
        if response.status_code == 503:
            return clean_503(response)
        if response.status_code != 200:
            return f"{response.status_code} {response.text}"
        claims = verify(response.json()["access_token"], keys, ["ES256"])
        if (claims["client_id"], claims["aud"]) != (client_id, API):
            return f"wrong claims {claims}"
        return None

    return check


def opaque_check(response: httpx.Response) -> str | None:
    if response.status_code == 503:
        return clean_503(response)
    if response.status_code != 200 or not response.json()["access_token"].startswith("tw_at_"):
        return f"{response.status_code} {response.text}"
    return None


def unknown_check(response: httpx.Response) -> str | None:
    if response.status_code == 503:
        return clean_503(response)
    if response.status_code != 401 or response.json() != INVALID_CLIENT:
        return f"{response.status_code} {response.text}"
    return None


def token_request(client: dict[str, Any]) -> Request:
    auth = (client["client_id"], client["client_secret"])

    def request(http: httpx.Client) -> httpx.Response:
        return http.post("/token", data={"grant_type": "client_credentials"}, auth=auth)

    return request


def unknown_request(http: httpx.Client) -> httpx.Response:
    client_id = f"unknown-{random.randrange(10**9)}"
    return http.post("/token", data={"grant_type": "client_credentials"}, auth=(client_id, "x"))


def readyz(server: ServerProcess, count: int = 16) -> list[dict[str, Any]]:
    """``/readyz`` on ``count`` fresh connections (spread over the workers); ``http`` is the
    status code."""
    answers = []
    with httpx.Client(timeout=5, limits=httpx.Limits(max_keepalive_connections=0)) as http:
        for _ in range(count):
            response = http.get(f"{server.url}/readyz")
            answers.append({**response.json(), "http": response.status_code})
    return answers


@pytest.fixture
def envs(
    stoppable_postgres: StoppablePostgres, tmp_path_factory: pytest.TempPathFactory
) -> list[TokenwardEnv]:
    """Instances A and B, and C which starts while the database is down: one deployment, so
    one issuer (as behind a load balancer)."""
    url = stoppable_postgres.server.create_database("fault")
    return [
        TokenwardEnv(
            home=tmp_path_factory.mktemp(name),
            database_url=url,
            extra={
                "TOKENWARD_PEPPER": PEPPER,
                "TOKENWARD_KEY_ENCRYPTION_KEY": KEK,
                "TOKENWARD_FAILED_AUTH_LIMIT": "1000000",
                "TOKENWARD_FAILED_AUTH_LIMIT_PER_ADDRESS": "1000000",  # one source: the load
                "TOKENWARD_ISSUER": "https://auth.fault.example",
            },
        )
        for name in ("a", "b", "c")
    ]


@pytest.fixture
def instances(envs: list[TokenwardEnv]) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    with tokenward_server(envs[0], workers=2) as a, tokenward_server(envs[1], workers=2) as b:
        yield a, b


@pytest.fixture
def late(envs: list[TokenwardEnv]) -> Iterator[list[ServerProcess]]:
    """Where the test puts instance C once started; stopped at the end."""
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.stop()


def start_during_outage(env: TokenwardEnv, late: list[ServerProcess]) -> ServerProcess:
    """Instance C, started while the database is down: it serves (``/livez``), not ready."""
    server = ServerProcess(env, workers=1, ready_path="/livez")
    late.append(server)
    return server


def make_load(a: ServerProcess, b: ServerProcess) -> Load:
    env = a.env
    env.cli("apis", "create", "--identifier", API, "--name", "API", "--scope", "read")
    jwt = env.cli_json("clients", "create", "--name", "jwt", "--scope", "read")
    opaque = env.cli_json(
        "clients", "create", "--name", "opaque", "--scope", "read", "--token-format", "opaque"
    )
    keys = KeySet.import_key_set(httpx.get(f"{a.url}/jwks.json").json())
    load = Load()
    for name, server in (("a", a), ("b", b)):
        for index in range(2):
            load.add(f"jwt-{name}{index}", server, token_request(jwt),
                     jwt_check(jwt["client_id"], keys))  # fmt: skip
        load.add(f"opaque-{name}", server, token_request(opaque), opaque_check)
        load.add(f"unknown-{name}", server, unknown_request, unknown_check)
    return load


@dataclass
class Timeline:
    down_at: float = 0.0
    killed_at: float = 0.0
    gone_at: float = 0.0  # the killed worker holds no socket any more
    replaced_after: float = 0.0
    up_at: float = 0.0
    recovered_after: float = 0.0
    readiness_during: list[list[dict[str, Any]]] = field(default_factory=list)


def kill_a_worker(a: ServerProcess, times: Timeline) -> None:
    victim = children(a.proc.pid)[0]
    os.kill(victim, signal.SIGKILL)
    times.killed_at = time.monotonic()
    wait_for(lambda: not holds_sockets(victim), timeout=10, what="the victim's sockets gone")
    times.gone_at = time.monotonic()

    def replaced() -> bool:
        pids = children(a.proc.pid)
        return len(pids) == 2 and victim not in pids and listeners(a.env.port) == 2

    try:
        wait_for(replaced, timeout=30, what="a replacement")
    except AssertionError:
        raise AssertionError(f"no replacement: {children(a.proc.pid)}\n{a.log()[-4000:]}") from None
    times.replaced_after = time.monotonic() - times.killed_at


def recover(a: ServerProcess, b: ServerProcess, tally: Tally, times: Timeline) -> None:
    """Wait until every worker is ready and every kind of request is served again."""
    state: dict[str, Any] = {}

    def recovered() -> bool:
        state["ready"] = [[r["http"] for r in readyz(s, 8)] for s in (a, b)]
        kinds = {"opaque-a": 200, "opaque-b": 200, "jwt-a0": 200, "jwt-b0": 200,
                 "unknown-a": 401, "unknown-b": 401}  # fmt: skip
        state["served"] = {
            k: tally.served(k, since=times.up_at, status=v) for k, v in kinds.items()
        }
        ready = {status for statuses in state["ready"] for status in statuses} == {200}
        return ready and all(state["served"].values())

    try:
        wait_for(recovered, timeout=30, what="recovery")
    except AssertionError:
        raise AssertionError(f"no recovery: {state}\n{a.log()[-4000:]}") from None
    times.recovered_after = time.monotonic() - times.up_at


def test_database_outage_and_a_killed_worker_lose_nothing_but_its_requests(
    stoppable_postgres: StoppablePostgres,
    instances: tuple[ServerProcess, ServerProcess],
    envs: list[TokenwardEnv],
    late: list[ServerProcess],
) -> None:
    a, b = instances
    supervisors = (a.proc.pid, b.proc.pid)
    times = Timeline()
    with make_load(a, b) as load:
        tally = load.tally
        wait_for(lambda: tally.served("opaque-b", since=0) > 3, timeout=20, what="load running")
        stoppable_postgres.stop()
        times.down_at = time.monotonic()
        kill_a_worker(a, times)
        c = start_during_outage(envs[2], late)
        time.sleep(max(0.0, times.down_at + 4 - time.monotonic()))  # down for 4 s at least
        times.readiness_during = [readyz(a), readyz(b), readyz(c, 1)]
        stoppable_postgres.start()
        times.up_at = time.monotonic()
        recover(a, b, tally, times)
        wait_for(lambda: readyz(c, 1)[0]["http"] == 200, timeout=10, what="C ready")
        time.sleep(0.5)

    print(
        f"\nworker replaced {times.replaced_after:.2f} s after SIGKILL (database down); "
        f"everything served {times.recovered_after:.2f} s after the database returned; "
        f"{len(tally.answers)} answers, {len(tally.lost)} lost, {len(tally.wrong)} wrong"
    )
    assert tally.wrong == []
    # Lost: only what the killed worker had taken, so on A, while it was being torn down.
    assert all(url == a.url for _, url, _ in tally.lost), tally.lost
    assert all(times.killed_at <= at <= times.gone_at + 1 for at, _, _ in tally.lost), (
        times, tally.lost)  # fmt: skip
    # JWTs went on from the cache during the outage, on both instances.
    for kind in ("jwt-a0", "jwt-a1", "jwt-b0", "jwt-b1"):
        assert 200 in tally.during(kind, times.down_at, times.up_at), kind
    # Readiness during the outage: B ready on every worker, the database reported unreachable;
    # on A the survivor is ready, its replacement (which never loaded) may not be.
    during_a, during_b, during_c = times.readiness_during
    assert {r["http"] for r in during_b} == {200}
    assert all(r["database"]["reachable"] is False for r in during_b), during_b
    assert {r["http"] for r in during_a} <= {200, 503}
    # C started during the outage: serving (it answered /livez), not ready until it returned.
    assert during_c[0]["http"] == 503
    assert during_c[0]["registry"]["loaded"] is False
    # Nothing was restarted: the same supervisors, each with two workers.
    assert (a.proc.poll(), b.proc.poll()) == (None, None)
    assert (a.proc.pid, b.proc.pid) == supervisors
    assert [len(children(pid)) for pid in supervisors] == [2, 2]
    for server in (a, b):
        log = server.log()
        assert "Traceback" not in log
        assert "database unreachable" in log
        assert "database reachable again" in log
