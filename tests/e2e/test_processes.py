"""The process model of ``tokenward serve`` (docs/operations.md), with real processes:

* connections spread evenly over the workers (each binds its own ``SO_REUSEPORT`` socket);
  which worker holds a connection is read from ``/proc``, nothing is added to responses;
* a worker that dies is replaced, with a growing delay when replacements die young, and the
  other workers keep serving;
* a graceful stop refuses new connections at once, answers a request stalled past the drain
  time with a 503 (not a 500), exits within the drain time plus a little, and flushes the audit
  buffer and the secrets' "last used" stamps.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.helpers import read_response
from tests.server.harness import jwt_parts
from tests.support.procfs import children, client_ports_by_pid, holds_sockets, listeners, wait_for
from tests.support.tokenward_server import ServerProcess, TokenwardEnv, tokenward_server

API = "https://api.example.com"
DRAIN = 2


def http_get(sock: socket.socket, path: str) -> bytes:
    """One keep-alive request on ``sock``; the whole response."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    return read_response(sock)


@pytest.fixture
def connections() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def open_connections(port: int, count: int, into: list[socket.socket]) -> None:
    """``count`` keep-alive connections, each answered once (so a worker has accepted it)."""
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        into.append(sock)
        assert http_get(sock, "/livez").startswith(b"HTTP/1.1 200")


def shares(server: ServerProcess, connections: list[socket.socket]) -> dict[int, int]:
    """How many of ``connections`` each worker holds."""
    mine = {sock.getsockname()[1] for sock in connections}
    held = client_ports_by_pid(server.worker_pids(), server.env.port)
    return {pid: len(ports & mine) for pid, ports in held.items()}


def test_connections_spread_evenly_over_the_workers(
    tw_env: TokenwardEnv, connections: list[socket.socket]
) -> None:
    """64 keep-alive connections on ``--workers 2``: each worker holds a fair share. With one
    shared socket, 5 and 69 were seen; with SO_REUSEPORT the split is binomial(64, 1/2), and
    fewer than 16 on one side happens about once in 40,000 runs."""
    with tokenward_server(tw_env, workers=2) as server:
        open_connections(tw_env.port, 64, connections)
        held = shares(server, connections)
        assert sum(held.values()) == 64, held
        assert min(held.values()) >= 16, held


def test_a_worker_that_dies_is_replaced_and_the_others_keep_serving(
    tw_env: TokenwardEnv, connections: list[socket.socket]
) -> None:
    with tokenward_server(tw_env, workers=2) as server:
        victim, survivor = server.worker_pids()
        os.kill(victim, signal.SIGKILL)
        newest = _replaced_by(server, victim, survivor)
        # Replacements that die young come back after a growing delay; the survivor stays.
        for _ in range(3):
            os.kill(newest, signal.SIGKILL)
            newest = _replaced_by(server, newest, survivor)
        assert server.proc.poll() is None
        open_connections(tw_env.port, 32, connections)
        held = shares(server, connections)
        assert held[newest] > 0, held
        assert held[survivor] > 0, held
        delays = [float(d) for d in re.findall(r"restarting in ([\d.]+) s", server.log())]
        assert len(delays) == 4, server.log()
        assert delays[-1] > delays[1] > 0, delays


def _replaced_by(server: ServerProcess, gone: int, survivor: int) -> int:
    def ready() -> bool:
        pids = children(server.proc.pid)
        return len(pids) == 2 and gone not in pids and listeners(server.env.port) == 2

    wait_for(ready, timeout=30, what=f"a replacement for worker {gone}")
    pids = children(server.proc.pid)
    assert survivor in pids
    (new,) = set(pids) - {survivor}
    return new


def _stalled_request(port: int) -> socket.socket:
    """A token request whose body never finishes arriving."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        b"POST /token HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 100\r\n\r\ngrant_type"
    )
    return sock


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.parametrize("workers", [1, 2])
def test_a_graceful_stop_is_bounded_and_refuses_new_connections(
    tw_env: TokenwardEnv, workers: int, connections: list[socket.socket]
) -> None:
    tw_env.extra["TOKENWARD_SHUTDOWN_DRAIN_SECONDS"] = str(DRAIN)
    with tokenward_server(tw_env, workers=workers) as server:
        # --workers 1 is one process; more are a supervisor's children.
        assert len(children(server.proc.pid)) == (0 if workers == 1 else workers)
        tw_env.cli("apis", "create", "--identifier", API, "--name", "API", "--scope", "read")
        client = tw_env.cli_json("clients", "create", "--name", "c", "--scope", "read")
        connections.extend(_stalled_request(tw_env.port) for _ in range(2 * workers))
        time.sleep(0.5)  # the stalled requests reach the app
        issued = httpx.post(
            f"{server.url}/token",
            data={"grant_type": "client_credentials"},
            auth=(client["client_id"], client["client_secret"]),
        )
        assert issued.status_code == 200
        # SIGTERM to the server process alone, as Kubernetes and systemd send it.
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        refused_after = wait_for(lambda: _refused(tw_env.port), timeout=2, what="refusal")
        assert all(_refused(tw_env.port) for _ in range(5))
        for sock in connections:
            answer = read_response(sock)
            assert answer.startswith(b"HTTP/1.1 503"), answer
            assert b"retry-after: 1" in answer.lower()
        answered_after = time.monotonic() - started
        assert server.proc.wait(timeout=DRAIN + 15) == 0
        stopped_after = time.monotonic() - started
        log = server.log()
    assert refused_after < 1.0
    assert DRAIN - 0.5 <= answered_after < DRAIN + 3
    assert stopped_after < DRAIN + 5, stopped_after  # not as long as the slowest request
    assert "Traceback" not in log
    assert "Exception in ASGI" not in log
    jti = jwt_parts(issued.json()["access_token"])[1]["jti"]
    assert jti in log  # the audit buffer was flushed on the way out
    shown = json.loads(tw_env.cli("clients", "show", client["client_id"]).stdout)
    assert shown["secrets"][0]["last_used_at"] is not None  # so were the "last used" stamps


@pytest.mark.parametrize("workers", [1, 2])
def test_a_second_stop_signal_does_not_wait_for_the_drain(
    tw_env: TokenwardEnv, workers: int, connections: list[socket.socket]
) -> None:
    """Two SIGTERMs (or Ctrl-C twice): the drain (60 s here) is cut short."""
    tw_env.extra["TOKENWARD_SHUTDOWN_DRAIN_SECONDS"] = "60"
    with tokenward_server(tw_env, workers=workers) as server:
        connections.append(_stalled_request(tw_env.port))
        time.sleep(0.5)
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: _refused(tw_env.port), timeout=2, what="refusal")
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(timeout=15)
        assert time.monotonic() - started < 10


def test_workers_stop_when_their_supervisor_is_killed(tw_env: TokenwardEnv) -> None:
    """``kill -9`` of the supervisor leaves no orphan serving the port."""
    with tokenward_server(tw_env, workers=2) as server:
        workers = server.worker_pids()
        server.proc.kill()
        server.proc.wait()
        wait_for(lambda: listeners(tw_env.port) == 0, timeout=10, what="the workers to stop")
        wait_for(lambda: not any(holds_sockets(pid) for pid in workers), timeout=10, what="exit")
        assert _refused(tw_env.port)
